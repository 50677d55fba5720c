//! Embedded store throughput: allocations (and status changes) per second.
//!
//! A custom harness rather than criterion: the quantity of interest is a rate
//! under concurrency, with each operation a durable commit, which criterion's
//! per-iteration timing does not model. Run with
//! `cargo bench --bench store` (optionally `-- N` for the allocations per
//! run, default 20,000). Prints one line per scenario.
//!
//! Scenarios: 1 and 16 concurrent tasks, with the default durability (fsync
//! on every commit, `Immediate`) and without fsync (`None`, the logic alone).

use std::time::Instant;

use futures::future::join_all;
use statuslist::domain::{ClientId, Jti, ListFormat, Status};
use statuslist::ports::{AllocateOutcome, AllocateRequest, StatusChange, Store, StoreSettings};
use statuslist::store::{EmbeddedDurability, EmbeddedStore};

const NOW: u64 = 1_700_000_000;

fn main() {
    let total: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("embedded store, {total} operations per scenario");
    for durability in [EmbeddedDurability::Immediate, EmbeddedDurability::None] {
        for tasks in [1usize, 16] {
            rt.block_on(run(durability, tasks, total));
        }
    }
}

async fn run(durability: EmbeddedDurability, tasks: usize, total: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with(
        dir.path().join("bench.redb"),
        StoreSettings::default(),
        durability,
    )
    .expect("open");
    let client = ClientId::parse("bench").expect("client");
    let per_task = total / tasks;

    let started = Instant::now();
    let work = (0..tasks).map(|t| {
        let store = store.clone();
        let client = client.clone();
        async move {
            let mut got = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let req = AllocateRequest {
                    client: client.clone(),
                    format: ListFormat::Token,
                    jti: Jti::from_name(&format!("{t}-{i}")),
                    digest: [1; 32],
                    status_expiry: NOW + 86_400,
                    count: 1,
                    now: NOW,
                    keep_until: NOW + 3661,
                };
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

    // Revoke a tenth of them, with the same concurrency.
    let revokes = allocated.len() / 10;
    let started = Instant::now();
    let chunks: Vec<_> = allocated[..revokes]
        .chunks(revokes.div_ceil(tasks).max(1))
        .map(|c| c.to_vec())
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
                    })
                    .await
                    .expect("revoke");
            }
        }
    }))
    .await;
    let revoke_secs = started.elapsed().as_secs_f64();

    println!(
        "durability {:<9} tasks {:>2}: {:>8.0} allocations/s ({} in {:.2} s), {:>8.0} revocations/s ({} in {:.2} s)",
        format!("{durability:?}"),
        tasks,
        allocated.len() as f64 / alloc_secs,
        allocated.len(),
        alloc_secs,
        revokes as f64 / revoke_secs,
        revokes,
        revoke_secs,
    );
}
