//! Scenario 3: Redis with `appendonly yes` and `appendfsync always` is
//! killed with SIGKILL and restarted (same socket, same directory) while
//! replicas serve a stream of status changes and issues. The replicas keep
//! running and must reconnect by themselves; the clients retry the same JWT
//! after a 503 or a connection error.
//!
//! Afterwards every change that was acknowledged (202) is in the lists every
//! replica publishes, every acknowledged `/issue` replays to its answer, and
//! allocations are unique and counted. A request that never got an answer
//! may or may not have been applied: it is not counted either way.

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

#[derive(Debug, Clone, Copy)]
struct Scale {
    replicas: usize,
    /// Entries issued before the fault stream; each gets a chain of changes.
    entries: usize,
    /// Fresh `/issue` requests mixed into the stream.
    issues_during: usize,
    concurrency: usize,
    capacity: u64,
}

const SHORT: Scale = Scale {
    replicas: 2,
    entries: 300,
    issues_during: 150,
    concurrency: 32,
    capacity: 128,
};

const LONG: Scale = Scale {
    replicas: 4,
    entries: 4_000,
    issues_during: 2_000,
    concurrency: 128,
    capacity: 1_024,
};

/// How long Redis stays down before it is restarted.
const DOWN_FOR: Duration = Duration::from_millis(800);

enum Task {
    Chain {
        client: usize,
        idx: u64,
        uri: String,
        steps: Vec<Step>,
    },
    Issue {
        client: usize,
        first: usize,
    },
}

fn run(scale: Scale, name: &str) {
    let seed = workload::seed();
    eprintln!("{name}: seed {seed} (FAULTS_SEED={seed} repeats the plan), {scale:?}");
    let mut rng = workload::rng(seed);
    let knobs = Knobs {
        capacity: scale.capacity,
        freshness_ms: 100,
        command_timeout_ms: 1_000,
    };
    let cluster = Arc::new(Cluster::start(
        RedisServer::start_durable(),
        scale.replicas,
        knobs,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let shared = Shared::new(cluster.clone(), Policy::PATIENT);
        let permits = Arc::new(Semaphore::new(scale.concurrency));

        // The entries the changes will run on, issued before any fault.
        let mut handles = Vec::new();
        for _ in 0..scale.entries {
            let client = rng.gen_range(0..cluster.clients.len());
            let first = rng.gen_range(0..scale.replicas);
            let permit = permits.clone().acquire_owned().await.unwrap();
            let shared = shared.clone();
            handles.push(tokio::spawn(async move {
                let _permit = permit;
                let jti = uuid::Uuid::new_v4().to_string();
                let jwt = shared.cluster.clients[client].issue_jwt(&jti);
                let issued = shared.issue(&jti, &jwt, first).await;
                (
                    client,
                    issued.expect("an /issue before any fault was refused"),
                )
            }));
        }
        let mut entries = Vec::new();
        for h in handles {
            entries.push(h.await.unwrap());
        }

        // The stream: one chain per entry, and fresh issues among them.
        let mut tasks: Vec<Task> = entries
            .into_iter()
            .map(|(client, (idx, uri))| Task::Chain {
                client,
                idx,
                uri,
                // No deliberate replays here: the retries after the outage
                // are the replays this scenario is about.
                steps: workload::plan_chain(&mut rng, scale.replicas, 0.0),
            })
            .collect();
        for _ in 0..scale.issues_during {
            let at = rng.gen_range(0..=tasks.len());
            let client = rng.gen_range(0..cluster.clients.len());
            tasks.insert(
                at,
                Task::Issue {
                    client,
                    first: rng.gen_range(0..scale.replicas),
                },
            );
        }
        let stream_requests: usize = tasks
            .iter()
            .map(|t| match t {
                Task::Chain { steps, .. } => steps.len(),
                Task::Issue { .. } => 1,
            })
            .sum();
        let before = shared.done();
        let end = before + stream_requests;

        // The fault: once a third of the stream is done, SIGKILL Redis, keep
        // it down a moment, and restart it on its append-only file.
        let fault = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let at = before + stream_requests / 3;
                while shared.done() < at {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let killed_at = shared.done();
                let cluster = shared.cluster.clone();
                tokio::task::spawn_blocking(move || {
                    let mut redis = cluster.redis.lock().unwrap();
                    let redis = redis.as_mut().expect("the cluster runs on Redis");
                    redis.kill();
                    std::thread::sleep(DOWN_FOR);
                    redis.restart();
                })
                .await
                .unwrap();
                (killed_at, shared.done())
            })
        };

        let started = Instant::now();
        let mut handles = Vec::new();
        for task in tasks {
            let permit = permits.clone().acquire_owned().await.unwrap();
            let shared = shared.clone();
            handles.push(tokio::spawn(async move {
                let _permit = permit;
                match task {
                    Task::Chain {
                        client,
                        idx,
                        uri,
                        steps,
                    } => shared.run_chain(client, idx, &uri, &steps).await,
                    Task::Issue { client, first } => {
                        let jti = uuid::Uuid::new_v4().to_string();
                        let jwt = shared.cluster.clients[client].issue_jwt(&jti);
                        shared.issue(&jti, &jwt, first).await;
                    }
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let (killed_at, restarted_at) = fault.await.unwrap();
        let stream_time = started.elapsed();
        assert!(
            killed_at < end,
            "Redis was killed only after the stream ended; the run proves nothing"
        );

        // The replicas reconnect by themselves.
        for replica in 0..scale.replicas {
            if let Err(e) = shared
                .net
                .wait_ready(replica, Duration::from_secs(60))
                .await
            {
                panic!("{e}\n{}", cluster.logs());
            }
        }
        tokio::time::sleep(Duration::from_millis(knobs.freshness_ms * 3 + 200)).await;

        let journal = shared.take_journal();
        let mut findings = Findings::default();
        let (allocations, unanswered) = verify::issues(&journal, false, &mut findings);
        verify::changes(&journal, false, &mut findings);
        let lists = verify::lists_in_redis(&cluster).await;
        verify::counters(&lists, &allocations, unanswered, &mut findings);
        let all: Vec<usize> = (0..scale.replicas).collect();
        verify::published(
            &cluster,
            &shared.net,
            &all,
            &lists,
            &journal.expected,
            &mut findings,
        )
        .await;
        let unknown = journal
            .expected
            .values()
            .filter(|allowed| allowed.len() > 1)
            .count();

        // Every acknowledged request is remembered after the restart: sent
        // again (the same bytes), each gets the answer it got before, and
        // nothing is applied a second time.
        let mut again = Vec::new();
        for (jti, record) in &journal.issues {
            if let Some(original) = record.answers.iter().find_map(|a| a.as_ref().ok()) {
                again.push((
                    jti.clone(),
                    None,
                    "/issue",
                    record.jwt.clone(),
                    original.clone(),
                ));
            }
        }
        for (jti, record) in &journal.changes {
            if let Some(original) = record.answers.iter().find_map(|a| a.as_ref().ok()) {
                let op = Some(record.op);
                again.push((
                    jti.clone(),
                    op,
                    record.op.path(),
                    record.jwt.clone(),
                    original.clone(),
                ));
            }
        }
        let mut replays = Vec::new();
        for (i, (jti, op, path, jwt, original)) in again.into_iter().enumerate() {
            let shared = shared.clone();
            let permit = permits.clone().acquire_owned().await.unwrap();
            replays.push(tokio::spawn(async move {
                let _permit = permit;
                let first = i % shared.net.bases.len();
                let answer = shared.net.post(first, path, &jwt, Policy::PATIENT).await;
                (jti, op, original, answer)
            }));
        }
        for r in replays {
            let (jti, op, original, answer) = r.await.unwrap();
            let same = match (&answer, op) {
                (Ok(a), None) => *a == original,
                (Ok(a), Some(op)) => verify::change_key(op, a) == verify::change_key(op, &original),
                (Err(_), _) => false,
            };
            if !same {
                findings.add(
                    "an acknowledged request answered otherwise when sent again after the restart",
                    format!(
                        "{jti}: {} {} then {answer:?}",
                        original.status, original.body
                    ),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(knobs.freshness_ms * 3 + 200)).await;
        let mut after = Findings::default();
        verify::published(
            &cluster,
            &shared.net,
            &all,
            &lists,
            &journal.expected,
            &mut after,
        )
        .await;
        findings.merge_as(
            "sending every acknowledged request again changed the published lists",
            after,
        );

        eprintln!(
            "{name}: {} jtis, {} change requests on {} entries ({unknown} with an unanswered last \
             change), {} lists; Redis killed after {} and back after {} of {end} requests; \
             stream took {:.1?}; {}",
            allocations.len(),
            journal.changes.len(),
            journal.expected.len(),
            lists.len(),
            killed_at,
            restarted_at,
            stream_time,
            shared.net.stats.summary(),
        );
        let errors = shared.net.stats.unavailable.load(Ordering::Relaxed)
            + shared.net.stats.connection_errors.load(Ordering::Relaxed);
        assert!(errors > 0, "no request met the Redis outage");
        if findings.count("a published list could not be read") > 0 {
            eprintln!("{}", cluster.logs());
        }
        findings.assert_none(name);
    });
}

#[test]
fn acknowledged_changes_survive_a_redis_kill_and_restart() {
    run(SHORT, "redis kill -9");
}

#[test]
#[ignore = "long run: cargo test --release --test faults -- --ignored"]
fn long_acknowledged_changes_survive_a_redis_kill_and_restart() {
    run(LONG, "redis kill -9 (long)");
}
