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
//! 3. measures Redis memory as issue 13 asks: one 131,072-entry 2-bit list
//!    after 3,000 `/issue` requests and 1,000 revocations (each its own
//!    jti), by `MEMORY USAGE` of every key and by `used_memory` before and
//!    after, next to the targets; then the same list filled to 100,000
//!    entries with 10,000 revoked, for the change times of a dense list.
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

use statuslist::domain::{ClientId, Jti, ListFormat, ListId, Status};
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
        issuance_ref: None,
        now: 1_700_000_000,
        keep_until: 1_700_003_661,
        events: None,
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
    const ISSUES: usize = 3_000;
    const REVOCATIONS: usize = 1_000;
    let client = ClientId::parse("bench-memory").expect("client id");
    let usage = |key: &str| -> u64 {
        let reply = server.command(&format!("MEMORY USAGE {key} SAMPLES 0"));
        reply.trim_start_matches(':').trim().parse().unwrap_or(0)
    };
    let used_memory = || -> u64 {
        server
            .command("INFO memory")
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let used_before = used_memory();
    let mut indexes = Vec::new();
    let mut list = None;
    for i in 0..ISSUES {
        match store
            .allocate(&request(&client, format!("mem-{i}"), 1))
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
    let used_issued = used_memory();
    revoke(store, &client, list, &indexes[..REVOCATIONS], 0).await;
    let used_revoked = used_memory();
    let Ok(Some(keys)) = store.list_keys(&list).await else {
        return;
    };
    let chunks: u64 = keys.chunks.iter().map(|k| usage(k)).sum();
    let (meta, owner, times) = (usage(&keys.meta), usage(&keys.owner), usage(&keys.times));
    let list_total = chunks + meta + owner;
    let records = store.record_keys(&client).await.unwrap_or_default();
    let record_bytes: u64 = records.iter().map(|k| usage(k)).sum();
    let held = (ISSUES + REVOCATIONS) as f64;
    println!(
        "Redis memory, one 131,072-entry 2-bit list after {ISSUES} issues and {REVOCATIONS} \
         revocations (MEMORY USAGE):"
    );
    println!(
        "  list keys: {} chunk(s) {chunks} + metadata {meta} + owner entry {owner} = \
         {list_total} B (target <= 40,960 B)",
        keys.chunks.len()
    );
    println!(
        "  change times: {times} B, {:.1} B per changed entry (target <= 24 B)",
        times as f64 / REVOCATIONS as f64
    );
    println!(
        "  idempotency records: {} keys (table state + shards), {record_bytes} B, \
         {:.1} B per record (target <= 64 B)",
        records.len(),
        record_bytes as f64 / held
    );
    println!(
        "  used_memory deltas: {:.1} B per /issue (record, counter, list share), \
         {:.1} B per revocation (record and change time)",
        used_issued.saturating_sub(used_before) as f64 / ISSUES as f64,
        used_revoked.saturating_sub(used_issued) as f64 / REVOCATIONS as f64
    );
    println!(
        "  all keys of the list with its change times: {} B",
        list_total + times
    );

    // Dense: 100,000 allocated, 10 % revoked.
    for b in 0..97 {
        if let Ok(AllocateOutcome::Allocated(a)) = store
            .allocate(&request(&client, format!("dense-{b}"), 1_000))
            .await
        {
            indexes.extend(a.indexes);
        }
    }
    revoke(
        store,
        &client,
        list,
        &indexes[REVOCATIONS..10_000],
        REVOCATIONS,
    )
    .await;
    println!(
        "  dense, {} allocated and 10,000 revoked: change times {} B, {:.1} B per changed entry",
        indexes.len(),
        usage(&keys.times),
        usage(&keys.times) as f64 / 10_000.0
    );
}

/// Revokes each of `indexes` with its own request (jti `revoke-<n>`, n
/// counted from `first`).
async fn revoke(
    store: &RedisStore,
    client: &ClientId,
    list: ListId,
    indexes: &[u64],
    first: usize,
) {
    for (n, idx) in indexes.iter().enumerate() {
        let jti = format!("revoke-{}", first + n);
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
                events: None,
            })
            .await
            .expect("revoke");
    }
}
