//! Load program for the Redis adapter (not criterion: it measures a server).
//!
//! Starts a private `redis-server` on a unix socket, then
//!
//! 1. runs allocations with 64 in flight for a few seconds (64 tasks sharing
//!    one `RedisStore`, i.e. one multiplexed connection; then 64 tasks over
//!    4 stores) and prints allocations per second (one script call, one
//!    round trip each);
//! 2. runs `redis-benchmark -t incr -c 64` against the same server and
//!    prints its rate and the ratio;
//! 3. fills one 131,072-entry 2-bit list with 100,000 allocations, revokes
//!    10 % of them and prints `MEMORY USAGE` of the list's keys.
//!
//! `cargo bench --bench redis_alloc` (release). `REDIS_ALLOC_SECS` sets the
//! duration of each timed run (default 5). Three rounds, each ending with the
//! redis-benchmark run, so a shared machine's load hits both alike.

#[path = "../tests/store/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use statuslist::domain::{ClientId, Jti, ListFormat, Status};
use statuslist::ports::{AllocateOutcome, AllocateRequest, StatusChange, Store, StoreSettings};
use statuslist::store::redis::{RedisSettings, RedisStore};

const IN_FLIGHT: usize = 64;

/// Timed rounds, each followed by a redis-benchmark run.
const ROUNDS: usize = 3;

fn main() {
    let secs: u64 = std::env::var("REDIS_ALLOC_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let server = support::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&server, Duration::from_secs(secs)));
}

async fn connect(server: &support::RedisServer) -> RedisStore {
    RedisStore::connect(RedisSettings::new(server.url()), StoreSettings::default())
        .await
        .expect("connect")
}

fn request(client: &ClientId, jti: String, count: u32) -> AllocateRequest {
    AllocateRequest {
        client: client.clone(),
        format: ListFormat::Token,
        digest: *blake3::hash(jti.as_bytes()).as_bytes(),
        jti: Jti::from_name(&jti),
        status_expiry: 2_000_000_000,
        count,
        now: 1_700_000_000,
        keep_until: 1_700_003_661,
    }
}

/// Allocations per second with `IN_FLIGHT` tasks spread over `stores`.
async fn rate(stores: &[Arc<RedisStore>], label: &str, d: Duration) -> f64 {
    let client = ClientId::parse(&format!("bench-{label}")).expect("client id");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..IN_FLIGHT {
        let store = Arc::clone(&stores[t % stores.len()]);
        let (stop, done, failed, client) = (
            Arc::clone(&stop),
            Arc::clone(&done),
            Arc::clone(&failed),
            client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let jti = format!("{t}-{i}");
                i += 1;
                match store.allocate(&request(&client, jti, 1)).await {
                    Ok(AllocateOutcome::Allocated(_)) => {}
                    Err(e) => {
                        // Counted, not fatal: on an overloaded machine a
                        // call may exceed the 500 ms command timeout.
                        eprintln!("allocate failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Ok(other) => panic!("allocate: {other:?}"),
                }
                done.fetch_add(1, Ordering::Relaxed);
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
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn redis_benchmark(server: &support::RedisServer) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .arg("-s")
        .arg(server.socket())
        .args(["-t", "incr", "-c", "64", "-n", "200000", "-q"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `-q` prints progress lines separated by '\r'; the last "INCR:" is the
    // result: "INCR: 123456.79 requests per second, p50=0.255 msec".
    let last = text.rsplit("INCR:").next()?;
    last.split_whitespace().next()?.parse().ok()
}

async fn run(server: &support::RedisServer, d: Duration) {
    println!("redis_alloc: private redis-server at {}", server.url());
    println!("in flight: {IN_FLIGHT}; each timed run {} s", d.as_secs());

    let one = vec![Arc::new(connect(server).await)];
    let four: Vec<Arc<RedisStore>> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(Arc::new(connect(server).await));
        }
        v
    };
    // Warm-up: load the scripts, open the first lists.
    rate(&one, "warmup", Duration::from_millis(500)).await;

    // The machine may be shared: interleave our runs with redis-benchmark
    // so that both see the same load, and report every round.
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        let a1 = rate(&one, &format!("one{round}"), d).await;
        let a4 = rate(&four, &format!("four{round}"), d).await;
        let incr = redis_benchmark(server);
        println!("round {round}:");
        println!("  allocate, 64 tasks on 1 connection:            {a1:>10.0} /s");
        println!("  allocate, 64 tasks on 4 connections:           {a4:>10.0} /s");
        match incr {
            Some(incr) => {
                println!("  redis-benchmark -t incr -c 64 -n 200000:       {incr:>10.0} /s");
                println!(
                    "  ratio allocate/INCR: {:.2} (1 connection), {:.2} (4 connections)",
                    a1 / incr,
                    a4 / incr
                );
                ratios.push(a1 / incr);
            }
            None => println!("  redis-benchmark did not run or its output did not parse"),
        }
    }
    // Server-side cost per call, to tell Redis time from client time.
    let stats = server.command("INFO commandstats");
    for line in stats.lines() {
        if line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_incr:") {
            println!("  {line}");
        }
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(median) = ratios.get(ratios.len() / 2) {
        println!("median ratio allocate/INCR (1 connection): {median:.2}");
    }

    memory(server, &one[0]).await;
}

async fn memory(server: &support::RedisServer, store: &RedisStore) {
    let client = ClientId::parse("bench-memory").expect("client id");
    let mut indexes = Vec::new();
    let mut list = None;
    for b in 0..10 {
        match store
            .allocate(&request(&client, format!("mem-{b}"), 10_000))
            .await
        {
            Ok(AllocateOutcome::Allocated(a)) => {
                list = Some(a.list);
                indexes.extend(a.indexes);
            }
            other => panic!("allocate: {other:?}"),
        }
    }
    let Some(list) = list else { return };
    let usage = |key: &str| -> u64 {
        let reply = server.command(&format!("MEMORY USAGE {key} SAMPLES 0"));
        reply.trim_start_matches(':').trim().parse().unwrap_or(0)
    };
    let keys = store.list_keys(&client, &list);
    let before: u64 = [&keys.bytes, &keys.meta, &keys.owner]
        .iter()
        .map(|k| usage(k))
        .sum();
    let revoked = indexes.iter().step_by(10).count();
    for (n, idx) in indexes.iter().step_by(10).enumerate() {
        let jti = format!("revoke-{n}");
        store
            .set_status(&StatusChange {
                client: client.clone(),
                list,
                idx: *idx,
                status: Status::Invalid,
                digest: *blake3::hash(jti.as_bytes()).as_bytes(),
                jti: Jti::from_name(&jti),
                now: 1_700_000_100,
                keep_until: 1_700_003_761,
            })
            .await
            .expect("revoke");
    }
    let (bytes, times, meta, owner) = (
        usage(&keys.bytes),
        usage(&keys.times),
        usage(&keys.meta),
        usage(&keys.owner),
    );
    println!("MEMORY USAGE, one 131,072-entry 2-bit list, 100,000 allocated, {revoked} revoked:");
    println!(
        "  bytes {bytes} + metadata {meta} + owner entry {owner} = {} B",
        bytes + meta + owner
    );
    println!("  (same keys before any revocation: {before} B)");
    println!(
        "  change-time hash: {times} B ({:.1} B per changed entry)",
        times as f64 / revoked as f64
    );
    println!(
        "  total over all keys of the list: {} B",
        bytes + meta + owner + times
    );
}
