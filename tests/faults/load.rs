//! Scenarios 1 and 2: several replicas on one Redis under a concurrent
//! stream of `/issue` requests (a tenth of them replays of an earlier jti:
//! the same signed bytes, sent again, maybe to another replica) and chains
//! of status changes (some replayed at once, some after later changes of the
//! same entry) — once as is, once with one replica killed with SIGKILL in
//! the middle and the clients retrying against the others.
//!
//! Afterwards: every jti has exactly one answer however often it was sent,
//! no (list, idx) went to two jtis, the list counters in Redis add up to the
//! jtis, every replayed change got its original answer, and every list as
//! published by every running replica shows exactly what the acknowledged
//! changes imply.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Semaphore;

use crate::cluster::{Cluster, Knobs};
use crate::net::Policy;
use crate::support::RedisServer;
use crate::verify::{self, Findings};
use crate::workload::{self, Shared, Step};

/// The size of a run.
#[derive(Debug, Clone, Copy)]
struct Scale {
    replicas: usize,
    /// `/issue` requests in all, replays included.
    issues: usize,
    /// Requests in flight at once.
    concurrency: usize,
    /// Entries per list.
    capacity: u64,
}

const SHORT: Scale = Scale {
    replicas: 4,
    issues: 2_000,
    concurrency: 48,
    capacity: 256,
};

const LONG: Scale = Scale {
    replicas: 4,
    issues: 20_000,
    concurrency: 192,
    capacity: 2_048,
};

/// Share of `/issue` requests that replay an earlier jti.
const ISSUE_REPLAYS: f64 = 0.10;
/// Share of issued entries that get a chain of changes.
const CHAINED: f64 = 0.25;
/// Share of change steps that are replayed.
const CHANGE_REPLAYS: f64 = 0.20;

/// One planned `/issue` request.
struct Fresh {
    client: usize,
    jti: String,
    jwt: String,
    first: usize,
    chain: Vec<Step>,
}

enum Task {
    /// The first sending of plan `i`.
    Fresh(usize),
    /// Plan `i`'s JWT sent again, first to this replica.
    Replay(usize, usize),
}

fn plan(scale: Scale, seed: u64, clients: &Cluster) -> (Vec<Fresh>, Vec<Task>) {
    let mut rng = workload::rng(seed);
    let mut plans = Vec::new();
    let mut tasks = Vec::with_capacity(scale.issues);
    for _ in 0..scale.issues {
        if !plans.is_empty() && rng.gen_bool(ISSUE_REPLAYS) {
            let of = rng.gen_range(0..plans.len());
            tasks.push(Task::Replay(of, rng.gen_range(0..scale.replicas)));
            continue;
        }
        let client = rng.gen_range(0..clients.clients.len());
        let jti = uuid::Uuid::new_v4().to_string();
        let jwt = clients.clients[client].issue_jwt(&jti);
        let chain = if rng.gen_bool(CHAINED) {
            workload::plan_chain(&mut rng, scale.replicas, CHANGE_REPLAYS)
        } else {
            Vec::new()
        };
        tasks.push(Task::Fresh(plans.len()));
        plans.push(Fresh {
            client,
            jti,
            jwt,
            first: rng.gen_range(0..scale.replicas),
            chain,
        });
    }
    // Replays come after their original in the sending order (tasks start
    // in order), but nothing says the original has finished by then: some
    // race it, some come long after.
    (plans, tasks)
}

/// Runs the load; with `kill_at = Some(share)`, replica 0 is killed with
/// SIGKILL once that share of the requests is done.
fn run(scale: Scale, kill_at: Option<f64>, name: &str) {
    let seed = workload::seed();
    eprintln!("{name}: seed {seed} (FAULTS_SEED={seed} repeats the plan), {scale:?}");
    let knobs = Knobs {
        capacity: scale.capacity,
        freshness_ms: 100,
        command_timeout_ms: 2_000,
    };
    let cluster = Arc::new(Cluster::start(RedisServer::start(), scale.replicas, knobs));
    let (plans, tasks) = plan(scale, seed, &cluster);
    let plans = Arc::new(plans);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let shared = Shared::new(cluster.clone(), Policy::PATIENT);
        // Requests the progress counter counts: every /issue and every
        // change step (deliberate replays of changes aside).
        let total = tasks.len() + plans.iter().map(|p| p.chain.len()).sum::<usize>();
        let killer = kill_at.map(|share| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let at = (total as f64 * share) as usize;
                while shared.done() < at {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                shared.cluster.replicas[0].kill();
                shared.done()
            })
        });

        let permits = Arc::new(Semaphore::new(scale.concurrency));
        let mut handles = Vec::with_capacity(tasks.len());
        for task in tasks {
            let permit = permits.clone().acquire_owned().await.unwrap();
            let shared = shared.clone();
            let plans = plans.clone();
            handles.push(tokio::spawn(async move {
                let _permit = permit;
                match task {
                    Task::Fresh(i) => {
                        let p = &plans[i];
                        let issued = shared.issue(&p.jti, &p.jwt, p.first).await;
                        if let Some((idx, uri)) = issued
                            && !p.chain.is_empty()
                        {
                            shared.run_chain(p.client, idx, &uri, &p.chain).await;
                        }
                    }
                    Task::Replay(i, first) => {
                        let p = &plans[i];
                        shared.issue(&p.jti, &p.jwt, first).await;
                    }
                }
            }));
        }
        for h in handles {
            // A task panics only on a bug of the test itself.
            h.await.unwrap();
        }
        let killed_at = match killer {
            Some(k) => Some(k.await.unwrap()),
            None => None,
        };
        let load_time = started.elapsed();

        // Replicas re-read a list once their cached version is older than
        // `freshness_ms`.
        tokio::time::sleep(Duration::from_millis(knobs.freshness_ms * 3 + 200)).await;
        let journal = shared.take_journal();
        let mut findings = Findings::default();
        let (allocations, unanswered) = verify::issues(&journal, true, &mut findings);
        verify::changes(&journal, true, &mut findings);
        let lists = verify::lists_in_redis(&cluster).await;
        verify::counters(&lists, &allocations, unanswered, &mut findings);
        let running = cluster.running();
        verify::published(
            &cluster,
            &shared.net,
            &running,
            &lists,
            &journal.expected,
            &mut findings,
        )
        .await;

        let stats = &shared.net.stats;
        if let Some(at) = killed_at {
            assert!(
                at < total,
                "the replica was killed only after the load ended; the run proves nothing"
            );
            assert_eq!(
                running.len(),
                scale.replicas - 1,
                "exactly one replica died:\n{}",
                cluster.logs()
            );
            assert!(
                stats.connection_errors.load(Ordering::Relaxed) > 0,
                "no request met the dead replica"
            );
        } else {
            assert_eq!(
                running.len(),
                scale.replicas,
                "a replica died unasked:\n{}",
                cluster.logs()
            );
            if stats.conflicts.load(Ordering::Relaxed) > 0 {
                // Without faults a concurrent duplicate is answered at once.
                findings.add(
                    "a request was answered 409 without any fault",
                    stats.summary(),
                );
            }
        }
        eprintln!(
            "{name}: {} jtis, {} change requests, {} chained entries on {} lists in {:.1?}; \
             {}{}",
            allocations.len(),
            journal.changes.len(),
            journal.expected.len(),
            lists.len(),
            load_time,
            shared.net.stats.summary(),
            killed_at.map_or(String::new(), |at| format!(
                "; replica 0 killed after {at} of {total} requests"
            )),
        );
        if findings.count("a published list could not be read") > 0 {
            eprintln!("{}", cluster.logs());
        }
        findings.assert_none(name);
    });
}

#[test]
fn replicas_under_load_allocate_once_and_replays_get_the_original_answer() {
    run(SHORT, None, "load");
}

#[test]
#[ignore = "long run: cargo test --release --test faults -- --ignored"]
fn long_replicas_under_load_allocate_once_and_replays_get_the_original_answer() {
    run(LONG, None, "load (long)");
}

#[test]
fn a_replica_killed_under_load_loses_and_doubles_nothing() {
    run(SHORT, Some(0.3), "kill -9");
}

#[test]
#[ignore = "long run: cargo test --release --test faults -- --ignored"]
fn long_a_replica_killed_under_load_loses_and_doubles_nothing() {
    run(LONG, Some(0.3), "kill -9 (long)");
}
