//! Load program: allocations per second through the Redis adapter on one
//! Redis node against a private three-master Redis Cluster (three replicas)
//! on the same machine (not criterion: it measures servers).
//!
//! Both sides run with the same persistence (`appendonly yes`,
//! `appendfsync` from `REDIS_CLUSTER_FSYNC`, default `always`) over TCP on
//! 127.0.0.1. The load is `IN_FLIGHT` tasks over four stores, spread over
//! `REDIS_CLUSTER_CLIENTS` clients (default 12), each with
//! `REDIS_CLUSTER_SHARDS` shards on the cluster (`shards_per_client`,
//! default 3), so the hash tags spread over the masters. Rounds alternate one node and the cluster,
//! so a shared machine's load hits both alike.
//!
//! Besides the rates it prints the Redis CPU time per allocation (from
//! `INFO cpu` of every node before and after), on the single node and on
//! the cluster's masters and replicas: the figure that says how far one
//! master goes on a core of its own, i.e. how the cluster scales on
//! separate machines.
//!
//! `cargo bench --bench redis_cluster` (release). `REDIS_CLUSTER_SECS` sets
//! each timed run (default 5), `REDIS_CLUSTER_ROUNDS` the rounds (3),
//! `REDIS_CLUSTER_WAIT` the stores' `wait_replicas` (unset: the default).

#[path = "../tests/store/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use statuslist::domain::{ClientId, Jti, ListFormat};
use statuslist::ports::{AllocateOutcome, AllocateRequest, Store, StoreSettings};
use statuslist::store::redis::{RedisSettings, RedisStore};

use support::redis_cluster::{RedisCluster, free_port_pair};

const IN_FLIGHT: usize = 64;
const STORES: usize = 4;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn main() {
    let secs: u64 = env("REDIS_CLUSTER_SECS", 5);
    let rounds: usize = env("REDIS_CLUSTER_ROUNDS", 3);
    let clients: usize = env("REDIS_CLUSTER_CLIENTS", 12);
    let shards: u16 = env("REDIS_CLUSTER_SHARDS", 3);
    let fsync: String = env("REDIS_CLUSTER_FSYNC", "always".to_owned());
    println!("redis_cluster: load average before {}", load_average());

    let port = free_port_pair();
    let port_arg = port.to_string();
    // Kept alive (and stopped) by this binding.
    let _single = support::RedisServer::start_with_args(&[
        "--port",
        &port_arg,
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        &fsync,
    ]);
    let single_url = format!("redis://127.0.0.1:{port}");
    let cluster = RedisCluster::start_with_args(&["--appendfsync", &fsync]);
    println!(
        "one node: {single_url}; cluster: {} (masters {:?}); appendfsync {fsync}; \
         {IN_FLIGHT} in flight over {STORES} stores and {clients} clients ({shards} shards \
         each on the cluster); {secs} s per run",
        cluster.url(),
        cluster.masters().iter().map(|m| m.port).collect::<Vec<_>>()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let one = stores(&single_url, 1).await;
        let many = stores(&cluster.url(), shards).await;
        let ids: Vec<ClientId> = (0..clients)
            .map(|i| ClientId::parse(&format!("bench-{i}")).expect("client id"))
            .collect();
        // Warm-up: load the scripts, open the first lists.
        rate(&one, &ids, "warm", Duration::from_millis(500)).await;
        rate(&many, &ids, "warm", Duration::from_millis(500)).await;

        let single_ports = [port];
        let cluster_ports = cluster.ports();
        let (mut r1, mut r3) = (Vec::new(), Vec::new());
        let (mut cpu1, mut cpu3m, mut cpu3r) = (Vec::new(), Vec::new(), Vec::new());
        // Allocations per second of the cluster if each master had a core
        // of its own: bound by the busiest master.
        let mut ceilings = Vec::new();
        for round in 1..=rounds {
            let before = cpu(&single_ports);
            let (n, s) = rate(
                &one,
                &ids,
                &format!("one{round}"),
                Duration::from_secs(secs),
            )
            .await;
            let used = cpu(&single_ports) - before;
            r1.push(n as f64 / s);
            cpu1.push(used / n as f64);

            let masters: Vec<u16> = cluster.masters().iter().map(|m| m.port).collect();
            let replicas: Vec<u16> = cluster_ports
                .iter()
                .copied()
                .filter(|p| !masters.contains(p))
                .collect();
            let (bm, br) = (cpu(&masters), cpu(&replicas));
            let each: Vec<f64> = masters.iter().map(|m| cpu(&[*m])).collect();
            let (n3, s3) = rate(
                &many,
                &ids,
                &format!("many{round}"),
                Duration::from_secs(secs),
            )
            .await;
            let (um, ur) = (cpu(&masters) - bm, cpu(&replicas) - br);
            let busiest = masters
                .iter()
                .zip(&each)
                .map(|(m, before)| cpu(&[*m]) - before)
                .fold(0.0, f64::max);
            ceilings.push(n3 as f64 / busiest.max(f64::MIN_POSITIVE));
            r3.push(n3 as f64 / s3);
            cpu3m.push(um / n3 as f64);
            cpu3r.push(ur / n3 as f64);
            println!(
                "round {round}: one node {:>8.0} allocations/s ({:.1} µs Redis CPU each); \
                 cluster {:>8.0} allocations/s ({:.1} µs on masters + {:.1} µs on replicas each); \
                 load average {}",
                n as f64 / s,
                used / n as f64 * 1e6,
                n3 as f64 / s3,
                um / n3 as f64 * 1e6,
                ur / n3 as f64 * 1e6,
                load_average()
            );
        }
        let (m1, m3) = (median(&mut r1), median(&mut r3));
        let (c1, c3m, c3r) = (median(&mut cpu1), median(&mut cpu3m), median(&mut cpu3r));
        println!(
            "median: one node {m1:.0} allocations/s, cluster {m3:.0} allocations/s \
             (ratio {:.2}); Redis CPU per allocation: one node {:.1} µs, cluster masters \
             {:.1} µs + replicas {:.1} µs",
            m3 / m1,
            c1 * 1e6,
            c3m * 1e6,
            c3r * 1e6
        );
        // Each allocation is one script on one master: with a core of its
        // own, a master does 1 / (its CPU per allocation) of them, and the
        // cluster is bound by its busiest master (the slots of the hash tags
        // in use decide how even the load is). A replica applies what its
        // master wrote, on its own core, for less CPU, so it bounds nothing.
        let ceiling = median(&mut ceilings);
        println!(
            "Redis-bound ceiling with a core per Redis: one node ~{:.0} allocations/s; the \
             three masters ~{ceiling:.0} allocations/s (by the busiest master); keys per master \
             {:?}",
            1.0 / c1.max(f64::MIN_POSITIVE),
            cluster.keys_per_master("bench:*")
        );
    });
    println!("load average after {}", load_average());
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Seconds of CPU (user + system) the Redis nodes on `ports` have used.
fn cpu(ports: &[u16]) -> f64 {
    ports
        .iter()
        .map(|port| {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
            let mut conn = client.get_connection().expect("connect");
            let info: String = redis::cmd("INFO")
                .arg("cpu")
                .query(&mut conn)
                .expect("INFO cpu");
            info.lines()
                .filter_map(|l| l.trim_end().split_once(':'))
                .filter(|(k, _)| *k == "used_cpu_user" || *k == "used_cpu_sys")
                .filter_map(|(_, v)| v.parse::<f64>().ok())
                .sum::<f64>()
        })
        .sum()
}

async fn stores(url: &str, shards: u16) -> Vec<Arc<RedisStore>> {
    let mut v = Vec::new();
    for _ in 0..STORES {
        let mut settings = RedisSettings::new(url);
        settings.shards_per_client = shards;
        settings.prefix = "bench:".to_owned();
        settings.command_timeout = Duration::from_secs(5);
        // `REDIS_CLUSTER_WAIT=0` measures without `WAIT` (unset: the
        // adapter's default, 1 on the cluster, 0 on one node).
        settings.wait_replicas = std::env::var("REDIS_CLUSTER_WAIT")
            .ok()
            .and_then(|v| v.parse().ok());
        v.push(Arc::new(
            RedisStore::connect(settings, StoreSettings::default())
                .await
                .expect("connect"),
        ));
    }
    v
}

fn request(client: &ClientId, jti: String) -> AllocateRequest {
    AllocateRequest {
        client: client.clone(),
        format: ListFormat::Token,
        digest: *blake3::hash(jti.as_bytes()).as_bytes(),
        jti: Jti::from_name(&jti),
        status_expiry: 2_000_000_000,
        count: 1,
        issuance_ref: None,
        now: 1_700_000_000,
        keep_until: 1_700_003_661,
        events: None,
    }
}

/// Runs `IN_FLIGHT` allocating tasks over `stores` and `clients` for `d`;
/// returns (allocations, seconds).
async fn rate(
    stores: &[Arc<RedisStore>],
    clients: &[ClientId],
    label: &str,
    d: Duration,
) -> (u64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..IN_FLIGHT {
        let store = Arc::clone(&stores[t % stores.len()]);
        let client = clients[t % clients.len()].clone();
        let (stop, done, failed) = (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&failed));
        let label = label.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let jti = format!("{label}-{t}-{i}");
                i += 1;
                match store.allocate(&request(&client, jti)).await {
                    Ok(AllocateOutcome::Allocated(_)) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(other) => panic!("allocate: {other:?}"),
                    Err(e) => {
                        eprintln!("allocate failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(d).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!("  ({label}: {failed} calls failed and are not counted)");
    }
    (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}
