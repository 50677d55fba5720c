//! Scenarios on a private Redis Cluster (three masters, three replicas, see
//! `support::redis_cluster`) with `shards_per_client = 3`: several replicas
//! under a concurrent stream of `/issue` requests — plain ones, and ones
//! with a `ref` (drawn from a pool, so entries accumulate on a ref) and a
//! `count` — a tenth of them replays of an earlier jti (the same signed
//! bytes, maybe to another replica, maybe while the original still runs),
//! and chains of status changes on some plain entries.
//!
//! Afterwards: every jti got one answer however often it was sent, no
//! (list, idx) went to two jtis, the list counters add up, the published
//! lists show exactly the acknowledged changes, and the allocations are
//! spread over all three masters and over each client's three shards.
//!
//! The second scenario SIGKILLs a master a third of the way into the load.
//! Clients retry a 503 (with the same JWT); the service must recover by
//! itself once a replica is promoted, and every acknowledged write must
//! still be there: every acknowledged `/issue` and change is sent again and
//! must get its original answer, and the published lists must still show
//! every acknowledged change. The test prints how long clients saw 503s.
//!
//! `cargo test` runs 2,000 issues; `STATUSLIST_CLUSTER_ISSUES=20000` runs
//! the issue's full size (in release mode, preferably):
//!
//! ```text
//! STATUSLIST_CLUSTER_ISSUES=20000 cargo test --release --test faults on_redis_cluster
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Semaphore;

use crate::cluster::{Cluster, Extra, Knobs};
use crate::net::{Answer, Policy};
use crate::support::RedisCluster;
use crate::verify::{self, Findings, Located};
use crate::workload::{self, Journal, Shared, Step};

/// Hash tags per client (`[store] shards_per_client`).
const SHARDS: usize = 3;

/// The variable that sets how many `/issue` requests a run sends.
const ISSUES_VAR: &str = "STATUSLIST_CLUSTER_ISSUES";

/// Share of `/issue` requests that replay an earlier jti.
const ISSUE_REPLAYS: f64 = 0.10;
/// Share of fresh `/issue` requests with a `ref` and a `count`.
const WITH_REF: f64 = 0.20;
/// Share of plain issued entries that get a chain of changes.
const CHAINED: f64 = 0.25;
/// Share of change steps that are replayed.
const CHANGE_REPLAYS: f64 = 0.20;

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

/// 2,000 issues, or `STATUSLIST_CLUSTER_ISSUES`.
fn scale() -> Scale {
    let issues = std::env::var(ISSUES_VAR)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{ISSUES_VAR}={v} is not a number"))
        })
        .unwrap_or(2_000);
    let long = issues >= 10_000;
    Scale {
        replicas: 3,
        issues,
        concurrency: if long { 192 } else { 48 },
        capacity: if long { 2_048 } else { 256 },
    }
}

/// One planned fresh `/issue` request.
struct Fresh {
    client: usize,
    jti: String,
    jwt: String,
    first: usize,
    /// Entries it asks for (1 without `count`).
    count: u32,
    /// Changes on its entry (plain issues only).
    chain: Vec<Step>,
}

enum Task {
    /// The first sending of plan `i`.
    Fresh(usize),
    /// Plan `i`'s JWT sent again, first to this replica.
    Replay(usize, usize),
}

fn plan(scale: Scale, seed: u64, cluster: &Cluster) -> (Vec<Fresh>, Vec<Task>) {
    let mut rng = workload::rng(seed);
    let refs_per_client = (scale.issues / 20).max(10);
    let mut plans = Vec::new();
    let mut tasks = Vec::with_capacity(scale.issues);
    for _ in 0..scale.issues {
        if !plans.is_empty() && rng.gen_bool(ISSUE_REPLAYS) {
            let of = rng.gen_range(0..plans.len());
            tasks.push(Task::Replay(of, rng.gen_range(0..scale.replicas)));
            continue;
        }
        let client = rng.gen_range(0..cluster.clients.len());
        let issuer = &cluster.clients[client];
        let jti = uuid::Uuid::new_v4().to_string();
        let (jwt, count, chain) = if rng.gen_bool(WITH_REF) {
            let r = format!("order-{}", rng.gen_range(0..refs_per_client));
            let count = rng.gen_range(1..=3);
            (issuer.issue_ref_jwt(&jti, &r, count), count, Vec::new())
        } else {
            let chain = if rng.gen_bool(CHAINED) {
                workload::plan_chain(&mut rng, scale.replicas, CHANGE_REPLAYS)
            } else {
                Vec::new()
            };
            (issuer.issue_jwt(&jti), 1, chain)
        };
        tasks.push(Task::Fresh(plans.len()));
        plans.push(Fresh {
            client,
            jti,
            jwt,
            first: rng.gen_range(0..scale.replicas),
            count,
            chain,
        });
    }
    (plans, tasks)
}

/// The (uri, idx) pairs of a 200 answer to `/issue`: `{"idx", "uri"}`, or
/// `{"ref", "entries": [{"idx", "uri", …}, …]}` with a ref or a count.
fn entries_of(answer: &Answer) -> Option<Vec<(String, u64)>> {
    if answer.status != 200 {
        return None;
    }
    let one = |v: &serde_json::Value| Some((v["uri"].as_str()?.to_owned(), v["idx"].as_u64()?));
    match answer.body.get("entries") {
        Some(entries) => entries.as_array()?.iter().map(one).collect(),
        None => Some(vec![one(&answer.body)?]),
    }
}

/// Checks the `/issue` answers (both shapes): every jti answered 200 (a
/// request that gave up counts only when `gave_up_is_violation`), all
/// answers of a jti equal, the number of entries asked for, and no (list,
/// idx) given twice. Returns `jti#k` → (uri, idx) for every entry answered,
/// and how many entries the unanswered jtis asked for.
fn issues(
    journal: &Journal,
    counts: &HashMap<String, u32>,
    gave_up_is_violation: bool,
    f: &mut Findings,
) -> (HashMap<String, (String, u64)>, usize) {
    let mut allocations = HashMap::new();
    let mut unanswered = 0;
    let mut holder: HashMap<(String, u64), String> = HashMap::new();
    for (jti, record) in &journal.issues {
        let mut first: Option<&Answer> = None;
        for answer in &record.answers {
            match answer {
                Err(e) if gave_up_is_violation => {
                    f.add(
                        "an /issue request was never answered",
                        format!("{jti}: {e}"),
                    );
                }
                Err(_) => {}
                Ok(a) if a.status != 200 => {
                    f.add("an /issue request was refused", format!("{jti}: {a:?}"));
                }
                Ok(a) => match first {
                    None => first = Some(a),
                    Some(o) if o != a => f.add(
                        "a replayed /issue got another answer than the original",
                        format!("{jti}: {} then {}", o.body, a.body),
                    ),
                    Some(_) => {}
                },
            }
        }
        let count = counts.get(jti).copied().unwrap_or(1);
        let Some(a) = first else {
            unanswered += count as usize;
            continue;
        };
        let Some(entries) = entries_of(a) else {
            f.add(
                "a 200 from /issue without its entries",
                format!("{jti}: {}", a.body),
            );
            continue;
        };
        if entries.len() != count as usize {
            f.add(
                "an /issue answered another number of entries than asked",
                format!("{jti}: asked {count}, got {}", a.body),
            );
        }
        for (k, (uri, idx)) in entries.into_iter().enumerate() {
            let entry = format!("{jti}#{k}");
            if let Some(other) = holder.insert((uri.clone(), idx), entry.clone()) {
                f.add(
                    "one (list, idx) was allocated twice",
                    format!("{uri} #{idx}: {other} and {entry}"),
                );
            }
            allocations.insert(entry, (uri, idx));
        }
    }
    (allocations, unanswered)
}

/// Checks that the allocations sit on every master and on each client's
/// [`SHARDS`] hash tags; returns a line describing the spread.
fn spread(cluster: &Cluster, lists: &[Located], f: &mut Findings) -> String {
    let rc = cluster.redis_cluster.as_ref().expect("a Redis Cluster");
    let masters: Vec<u16> = rc.masters().iter().map(|m| m.port).collect();
    let mut per_master: BTreeMap<u16, u64> = masters.iter().map(|m| (*m, 0)).collect();
    let mut tags: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut per_client_masters: BTreeMap<&str, BTreeSet<u16>> = BTreeMap::new();
    for list in lists {
        *per_master.entry(list.master).or_default() += list.snapshot.meta.allocated;
        match &list.tag {
            Some(tag) => {
                // `{client}` is shard 0, `{client/n}` or `{client/n.j}`
                // shard n (client ids hold no '/').
                let client = tag.split('/').next().unwrap_or(tag);
                tags.entry(client).or_default().insert(tag);
                if list.snapshot.meta.allocated > 0 {
                    per_client_masters
                        .entry(client)
                        .or_default()
                        .insert(list.master);
                }
            }
            None => f.add(
                "a list has no metadata key under a client's hash tag",
                format!("{:?}", list.snapshot.meta.id),
            ),
        }
    }
    for (port, allocated) in &per_master {
        if *allocated == 0 {
            f.add(
                "a master holds no allocation",
                format!("master {port}: {per_master:?}"),
            );
        }
    }
    for client in &cluster.clients {
        // The shards of a client sit in different thirds of the slots, the
        // ranges `redis-cli --cluster create` gives the three masters: each
        // client's allocations reach every master, not only all clients'.
        let reached = per_client_masters.get(client.id).map_or(0, BTreeSet::len);
        if reached != masters.len() {
            f.add(
                "a client's allocations do not reach every master",
                format!(
                    "{}: masters {:?}",
                    client.id,
                    per_client_masters.get(client.id)
                ),
            );
        }
        let used = tags.get(client.id).map_or(0, BTreeSet::len);
        if used != SHARDS {
            f.add(
                "a client's lists are not on all its shards",
                format!("{}: hash tags {:?}", client.id, tags.get(client.id)),
            );
        }
    }
    let keys = rc.keys_per_master(&format!("{}*", crate::cluster::PREFIX));
    for (port, n) in &keys {
        if *n == 0 {
            f.add("a master holds no key", format!("master {port}: {keys:?}"));
        }
    }
    format!(
        "allocations per master {per_master:?}, keys per master {keys:?}, hash tags {tags:?}, \
         masters per client {per_client_masters:?}"
    )
}

/// What a run measured about a master's death.
struct Failover {
    /// Requests done when the master was killed.
    killed_at: usize,
    /// When it was killed.
    at: Instant,
    /// From the kill until the harness saw the replica serve its slots and
    /// every node agree.
    promoted_after: Duration,
}

/// Runs the load; with `kill_at = Some(share)`, master 0 of the Redis
/// Cluster is killed with SIGKILL once that share of the requests is done.
fn run(kill_at: Option<f64>, name: &str) {
    let scale = scale();
    let seed = workload::seed();
    eprintln!("{name}: seed {seed} (FAULTS_SEED={seed} repeats the plan), {scale:?}");
    let knobs = Knobs {
        capacity: scale.capacity,
        freshness_ms: 100,
        command_timeout_ms: if kill_at.is_some() { 1_000 } else { 2_000 },
    };
    let extra = Extra {
        store: format!("shards_per_client = {SHARDS}"),
        ..Extra::default()
    };
    let cluster = Arc::new(Cluster::start_on_redis_cluster(
        RedisCluster::start(),
        scale.replicas,
        knobs,
        &extra,
    ));
    let (plans, tasks) = plan(scale, seed, &cluster);
    let counts: HashMap<String, u32> = plans.iter().map(|p| (p.jti.clone(), p.count)).collect();
    let plans = Arc::new(plans);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let shared = Shared::new(cluster.clone(), Policy::PATIENT);
        let total = tasks.len() + plans.iter().map(|p| p.chain.len()).sum::<usize>();
        let killer = kill_at.map(|share| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let at = (total as f64 * share) as usize;
                while shared.done() < at {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let killed_at = shared.done();
                let cluster = shared.cluster.clone();
                tokio::task::spawn_blocking(move || {
                    let rc = cluster.redis_cluster.as_ref().unwrap();
                    let killed = rc.kill_master(0);
                    let at = Instant::now();
                    rc.wait_promoted(&killed);
                    Failover {
                        killed_at,
                        at,
                        promoted_after: at.elapsed(),
                    }
                })
                .await
                .unwrap()
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
            h.await.unwrap();
        }
        let failover = match killer {
            Some(k) => Some(k.await.unwrap()),
            None => None,
        };
        let load_time = started.elapsed();

        // The service recovered by itself: every replica issues again.
        if failover.is_some() {
            for replica in 0..scale.replicas {
                for client in 0..cluster.clients.len() {
                    let jti = uuid::Uuid::new_v4().to_string();
                    let jwt = cluster.clients[client].issue_jwt(&jti);
                    if shared.issue(&jti, &jwt, replica).await.is_none() {
                        panic!(
                            "replica {replica} does not issue after the failover\n{}\n{}",
                            cluster.logs(),
                            cluster.redis_cluster.as_ref().unwrap().logs()
                        );
                    }
                }
            }
        }

        tokio::time::sleep(Duration::from_millis(knobs.freshness_ms * 3 + 200)).await;
        let journal = shared.take_journal();
        let mut findings = Findings::default();
        let gave_up_is_violation = true;
        let (allocations, unanswered) =
            issues(&journal, &counts, gave_up_is_violation, &mut findings);
        verify::changes(&journal, gave_up_is_violation, &mut findings);
        let located = verify::located_lists(&cluster).await;
        let spread_line = spread(&cluster, &located, &mut findings);
        let lists: Vec<_> = located.into_iter().map(|l| l.snapshot).collect();
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

        let mut failover_line = String::new();
        if let Some(fo) = &failover {
            assert!(
                fo.killed_at < total,
                "the master was killed only after the load ended; the run proves nothing"
            );
            // Every acknowledged request is still known after the failover:
            // sent again (the same bytes), each gets the answer it got
            // before, and nothing is applied a second time.
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
                    again.push((
                        jti.clone(),
                        Some(record.op),
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
                    (Ok(a), Some(op)) => {
                        verify::change_key(op, a) == verify::change_key(op, &original)
                    }
                    (Err(_), _) => false,
                };
                if !same {
                    findings.add(
                        "an acknowledged request answered otherwise when sent again after the \
                         failover",
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

            let times = shared
                .net
                .stats
                .unavailable_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let after_kill: Vec<Instant> = times
                .iter()
                .map(|(t, _)| *t)
                .filter(|t| *t >= fo.at)
                .collect();
            let promoted = fo.at + fo.promoted_after;
            let late: Vec<&String> = times
                .iter()
                .filter(|(t, _)| *t > promoted)
                .map(|(_, what)| what)
                .collect();
            let window = match (after_kill.iter().min(), after_kill.iter().max()) {
                (Some(first), Some(last)) => format!(
                    "{} 503s after the kill, the first {:.1?} and the last {:.1?} after it \
                     (window {:.1?})",
                    after_kill.len(),
                    first.duration_since(fo.at),
                    last.duration_since(fo.at),
                    last.duration_since(*first)
                ),
                _ => "no 503 after the kill".to_owned(),
            };
            failover_line = format!(
                "; master killed after {} of {total} requests, replica promoted {:.1?} later; \
                 {window}; {} 503s before the kill",
                fo.killed_at,
                fo.promoted_after,
                times.len() - after_kill.len()
            );
            if !late.is_empty() {
                failover_line.push_str(&format!(
                    "; {} 503s after the promotion, the last ones: {:?}",
                    late.len(),
                    &late[late.len().saturating_sub(3)..]
                ));
            }
        } else if shared.net.stats.conflicts.load(Ordering::Relaxed) > 0 {
            findings.add(
                "a request was answered 409 without any fault",
                shared.net.stats.summary(),
            );
        }
        if failover.is_none() && shared.net.stats.unavailable.load(Ordering::Relaxed) > 0 {
            findings.add(
                "a request was answered 503 without any fault",
                shared.net.stats.summary(),
            );
        }
        eprintln!(
            "{name}: {} jtis ({} entries), {} change requests, {} chained entries on {} lists \
             in {:.1?}; {}{failover_line}\n{name}: {spread_line}",
            journal.issues.len(),
            allocations.len(),
            journal.changes.len(),
            journal.expected.len(),
            lists.len(),
            load_time,
            shared.net.stats.summary(),
        );
        if findings.count("a published list could not be read") > 0
            || findings.count("an /issue request was refused") > 0
        {
            eprintln!(
                "{}\n{}",
                cluster.logs(),
                cluster.redis_cluster.as_ref().unwrap().logs()
            );
        }
        findings.assert_none(name);
    });
}

#[test]
fn on_a_redis_cluster_allocations_spread_over_every_master_and_replays_get_the_original_answer() {
    run(None, "redis cluster load");
}

#[test]
fn a_redis_cluster_master_killed_under_load_loses_no_acknowledged_write() {
    run(Some(0.3), "redis cluster master kill -9");
}
