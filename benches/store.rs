//! Embedded store throughput: durable allocations (and status changes) per
//! second, with group commit and without it, next to the disk's own fsync
//! rate, all in the same run.
//!
//! A custom harness rather than criterion: the quantity of interest is a rate
//! under concurrency, with each acknowledged operation durable, which
//! criterion's per-iteration timing does not model.
//!
//! ```sh
//! cargo bench --bench store                       # 5 s per scenario
//! STORE_BENCH_SECS=3 cargo bench --bench store    # shorter
//! ```
//!
//! Scenarios, each on a fresh file in the system's temporary directory:
//! 1 and 64 concurrent tasks, each allocating in a loop for the set time,
//! then revoking a tenth of what it got;
//! - `durable, one commit per op`: fsync on every commit and `max_batch` 1,
//!   the store as it was before group commit (the baseline);
//! - `durable, group commit`: the default (`Immediate`, `max_batch` 256);
//! - `no fsync, group commit`: `EmbeddedDurability::None`, the logic alone.
//!
//! Each line gives allocations/s, revocations/s, commits/s (with durable
//! commits: fsyncs/s) and operations per commit. First comes the disk's
//! ceiling: 4 KiB write + `fdatasync` in a loop. The load average is
//! printed before and after. The issue's target (13, target 4): at least
//! 10,000 durable allocations/s with 64 concurrent requests.

use std::io::Write;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use futures::future::join_all;
use statuslist::domain::{ClientId, Jti, ListFormat, Status};
use statuslist::ports::{AllocateOutcome, AllocateRequest, StatusChange, Store, StoreSettings};
use statuslist::store::embedded::{DEFAULT_MAX_BATCH, EmbeddedOptions};
use statuslist::store::{EmbeddedDurability, EmbeddedStore};

const NOW: u64 = 1_700_000_000;
/// The issue's target for durable allocations/s at 64 concurrent requests.
const TARGET: f64 = 10_000.0;

fn main() {
    let secs: f64 = std::env::var("STORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(5.0);
    let run_for = Duration::from_secs_f64(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("command: STORE_BENCH_SECS={secs} cargo bench --bench store");
    println!("load average before: {}", loadavg());
    println!(
        "disk ceiling: {:.0} fdatasync/s (4 KiB write + fdatasync, 1 s, same temporary directory)",
        fsync_rate(Duration::from_secs(1))
    );
    println!("embedded store, {secs} s of allocations per scenario:");
    let one = NonZeroUsize::MIN;
    let scenarios = [
        (
            "durable, one commit per op",
            EmbeddedDurability::Immediate,
            one,
        ),
        (
            "durable, group commit",
            EmbeddedDurability::Immediate,
            DEFAULT_MAX_BATCH,
        ),
        (
            "no fsync, group commit",
            EmbeddedDurability::None,
            DEFAULT_MAX_BATCH,
        ),
    ];
    let mut at_64 = None;
    let mut lone_commits = None;
    for (label, durability, max_batch) in scenarios {
        for tasks in [1usize, 64] {
            let options = EmbeddedOptions {
                durability,
                max_batch,
                ..EmbeddedOptions::default()
            };
            let (rate, commits) = rt.block_on(run(label, options, tasks, run_for));
            if durability == EmbeddedDurability::Immediate && max_batch > one {
                match tasks {
                    1 => lone_commits = Some(commits),
                    _ => at_64 = Some(rate),
                }
            }
        }
    }
    println!("load average after: {}", loadavg());
    if let Some(rate) = at_64 {
        let verdict = if rate >= TARGET { "met" } else { "MISSED" };
        println!(
            "target: >= {TARGET:.0} durable allocations/s at 64 concurrent: {rate:.0} ({verdict})"
        );
    }
    if let (Some(rate), Some(lone)) = (at_64, lone_commits) {
        // With 64 requests in flight a batch holds at most 64, and a commit
        // takes at least as long as a lone one: the bound of this disk.
        let bound = 64.0 * lone;
        println!(
            "bound of this disk at 64 concurrent: 64 x {lone:.0} lone durable commits/s = {bound:.0}; \
             reached {:.2} of it",
            rate / bound
        );
    }
}

/// One scenario; returns its allocations/s and commits/s.
async fn run(label: &str, options: EmbeddedOptions, tasks: usize, run_for: Duration) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with_options(
        dir.path().join("bench.redb"),
        StoreSettings::default(),
        options,
    )
    .expect("open");
    let client = ClientId::parse("bench").expect("client");

    let commits_before = store.commits();
    let started = Instant::now();
    let deadline = started + run_for;
    let work = (0..tasks).map(|t| {
        let store = store.clone();
        let client = client.clone();
        async move {
            let mut got = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let req = AllocateRequest {
                    client: client.clone(),
                    format: ListFormat::Token,
                    jti: Jti::from_name(&format!("{t}-{i}")),
                    digest: [1; 32],
                    status_expiry: NOW + 86_400,
                    count: 1,
                    issuance_ref: None,
                    now: NOW,
                    keep_until: NOW + 3661,
                    events: None,
                };
                i += 1;
                match store.allocate(&req).await.expect("allocate") {
                    AllocateOutcome::Allocated(a) => got.push((a.list, a.indexes[0])),
                    other => panic!("unexpected {other:?}"),
                }
            }
            got
        }
    });
    let allocated: Vec<_> = join_all(work).await.into_iter().flatten().collect();
    let alloc_secs = started.elapsed().as_secs_f64();
    let alloc_commits = store.commits() - commits_before;

    // Revoke a tenth of them, with the same concurrency.
    let revokes = allocated.len() / 10;
    let commits_before = store.commits();
    let started = Instant::now();
    let chunks: Vec<_> = allocated[..revokes]
        .chunks(revokes.div_ceil(tasks).max(1))
        .map(<[_]>::to_vec)
        .collect();
    join_all(chunks.into_iter().map(|chunk| {
        let store = store.clone();
        let client = client.clone();
        async move {
            for (list, idx) in chunk {
                let jti = format!("revoke-{list}-{idx}");
                store
                    .set_status(&StatusChange {
                        client: client.clone(),
                        list,
                        idx,
                        status: Status::Invalid,
                        digest: [2; 32],
                        jti: Jti::from_name(&jti),
                        now: NOW,
                        keep_until: NOW + 3661,
                        events: None,
                    })
                    .await
                    .expect("revoke");
            }
        }
    }))
    .await;
    let revoke_secs = started.elapsed().as_secs_f64();
    let revoke_commits = store.commits() - commits_before;

    let rate = allocated.len() as f64 / alloc_secs;
    println!(
        "  {label:<27} tasks {tasks:>2}: {rate:>8.0} allocations/s ({} in {alloc_secs:.2} s, \
         {:>6.0} commits/s, {:>5.1} per commit), {:>8.0} revocations/s ({revokes}, {:>5.1} per commit)",
        allocated.len(),
        alloc_commits as f64 / alloc_secs,
        allocated.len() as f64 / alloc_commits.max(1) as f64,
        revokes as f64 / revoke_secs,
        revokes as f64 / revoke_commits.max(1) as f64,
    );
    (rate, alloc_commits as f64 / alloc_secs)
}

/// The disk's own rate of small durable writes in the temporary directory:
/// the ceiling of one-commit-per-operation stores.
fn fsync_rate(run_for: Duration) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = std::fs::File::create(dir.path().join("fsync")).expect("file");
    let block = [7u8; 4096];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < run_for {
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
