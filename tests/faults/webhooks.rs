//! Webhooks under faults, end to end with the built binary: issuers issue
//! entries with refs and walk each one through suspend, unsuspend and
//! revoke, through every replica, while a local receiver answers 500 to
//! some deliveries at random and drops the connection of others; a replica
//! is killed with SIGKILL, Redis is killed and restarted from its
//! append-only file, or the one embedded-store process is killed and
//! started again.
//!
//! What must hold (checked from the receiver's log, never from the
//! service's own account):
//! - every event of every acknowledged write reached the receiver with a
//!   2xx at least once: none lost;
//! - no event for anything that was not acknowledged, and one id per event:
//!   duplicates are only repeats of the same id, with the same body;
//! - every delivery's `Statuslist-Signature` verifies against the client's
//!   secret, and `Statuslist-Event-Id` is the body's id;
//! - the events of one entry were accepted in the order of the changes.
//!
//! The time from a change's acknowledgement to its event's first 2xx is
//! printed (p50, p99, max); it is not asserted (the benchmark reports it).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::cluster::{Cluster, Extra, Knobs, TestClient, unix_now};
use crate::signature_v1::expected_v1;
use crate::support::RedisServer;
use crate::workload;

/// Each client's webhook secret (derived from its id: the test knows it).
fn secret_of(client: &str) -> String {
    format!("whsec-{client}-0123456789abcdef")
}

/// The `[webhooks]` settings of the fault scenarios: quick retries, so that
/// a run with 30 % failures ends in seconds, and leases well above the
/// timeout. (The benchmark runs on the defaults: `""`.)
pub const FAST_RETRIES: &str = r#"[webhooks]
timeout_ms = 2000
retry_initial_ms = 50
retry_max_secs = 1
max_age_secs = 3600
concurrency = 32
poll_interval_ms = 100
lease_secs = 5
recheck_ms = 50
"#;

/// What the receiver does with a delivery.
#[derive(Debug, Clone, Copy)]
pub struct Flaky {
    /// Share answered 500.
    pub fail: f64,
    /// Share whose connection is closed without an answer.
    pub drop: f64,
}

impl Flaky {
    /// Every delivery accepted (`benches/webhooks.rs`).
    #[allow(dead_code)]
    pub const HEALTHY: Flaky = Flaky {
        fail: 0.0,
        drop: 0.0,
    };
    /// Issue 15's receiver: 30 % of deliveries fail, a sixth of them by a
    /// dropped connection.
    pub const ISSUE: Flaky = Flaky {
        fail: 0.25,
        drop: 0.05,
    };
}

/// One request the receiver read.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub event_id: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// When its request line arrived.
    pub started: Instant,
    /// When it was answered (or dropped).
    pub at: Instant,
    /// Answered 2xx (and the answer was written).
    pub ok: bool,
}

/// A local webhook receiver on 127.0.0.1 that logs every request.
pub struct Receiver {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(flaky: Flaky, seed: u64) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicU64::new(0));
        let task = {
            let log = log.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let n = conns.fetch_add(1, Ordering::Relaxed);
                    let rng = StdRng::seed_from_u64(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    tokio::spawn(serve(stream, flaky, rng, log.clone()));
                }
            })
        };
        Receiver { port, log, task }
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().clone()
    }
}

/// Serves one connection (HTTP/1.1, keep-alive, `Content-Length` bodies).
async fn serve(
    stream: tokio::net::TcpStream,
    flaky: Flaky,
    mut rng: StdRng,
    log: Arc<Mutex<Vec<Delivery>>>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let started = Instant::now();
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).await.unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let roll: f64 = rng.r#gen();
        let mut delivery = Delivery {
            path,
            event_id: headers.get("statuslist-event-id").cloned(),
            signature: headers.get("statuslist-signature").cloned(),
            content_type: headers.get("content-type").cloned(),
            body,
            started,
            at: Instant::now(),
            ok: false,
        };
        if roll < flaky.drop {
            log.lock().unwrap().push(delivery);
            return;
        }
        let answer: &[u8] = if roll < flaky.drop + flaky.fail {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        };
        let written = reader.get_mut().write_all(answer).await.is_ok();
        delivery.ok = written && roll >= flaky.drop + flaky.fail;
        delivery.at = Instant::now();
        log.lock().unwrap().push(delivery);
        if !written {
            return;
        }
    }
}

/// What an event is about, independent of its id: its type and its entry
/// (or, for `entries.issued`, its ref).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventKey {
    pub kind: String,
    pub subject: String,
}

fn entry_subject(uri: &str, idx: u64) -> String {
    format!("{uri}#{idx}")
}

/// What the issuers were told: the events that must arrive.
#[derive(Debug, Default)]
pub struct Expected {
    /// Every event, with the time its write was acknowledged.
    pub events: HashMap<EventKey, Instant>,
    /// Per entry, the event types in the order they were made.
    pub chains: HashMap<String, Vec<String>>,
    /// The ref of each entry.
    pub refs: HashMap<String, String>,
}

/// A scenario's size and fault.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// `/issue` requests per client (5 entries each, a ref each).
    pub issues_per_client: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Scale {
    /// 2 clients × 167 issues × 5 entries × 3 changes: 5,010 changes.
    pub const FULL: Scale = Scale {
        issues_per_client: 167,
        concurrency: 24,
    };
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    None,
    /// SIGKILL replica 0 once a third of the changes are acknowledged.
    KillReplica,
    /// SIGKILL Redis at a third of the changes, restart it a second later.
    RestartRedis,
    /// SIGKILL the only (embedded-store) replica at a third, start it again.
    RestartEmbedded,
}

/// POSTs `jwt` to `path`, moving to the next replica after a refused
/// connection, a 503 or a 409, until an answer comes (the same bytes each
/// time, so a request that was applied before the fault is replayed, not
/// applied twice).
async fn post(
    http: &reqwest::Client,
    bases: &[String],
    first: usize,
    path: &str,
    jwt: &str,
) -> Value {
    let started = Instant::now();
    let mut last = String::new();
    for attempt in 0..600 {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        let base = &bases[(first + attempt) % bases.len()];
        match http
            .post(format!("{base}{path}"))
            .header("content-type", "application/jwt")
            .body(jwt.to_owned())
            .send()
            .await
        {
            Ok(res) => {
                let status = res.status().as_u16();
                let text = res.text().await.unwrap_or_default();
                if matches!(status, 200 | 202) {
                    return serde_json::from_str(&text).unwrap_or(Value::Null);
                }
                if !matches!(status, 408 | 409 | 503) {
                    panic!("{path} answered {status}: {text}");
                }
                last = format!("{status} {text}");
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path}: no answer after {:?}: {last}", started.elapsed());
}

/// Runs the load against `cluster` (whose clients have webhooks to
/// `receiver`), injecting `fault`; returns what must be delivered.
async fn load(
    cluster: Arc<Mutex<Cluster>>,
    clients: Arc<Vec<TestClient>>,
    bases: Vec<String>,
    scale: Scale,
    fault: Fault,
    seed: u64,
) -> Expected {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let expected = Arc::new(Mutex::new(Expected::default()));
    let done = Arc::new(AtomicU64::new(0));
    let total = (clients.len() * scale.issues_per_client * 5 * 3) as u64;
    let fault_task = {
        let done = done.clone();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            if fault == Fault::None {
                return;
            }
            while done.load(Ordering::Relaxed) < total / 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            eprintln!(
                "fault {fault:?} at {} changes",
                done.load(Ordering::Relaxed)
            );
            tokio::task::spawn_blocking(move || {
                let mut c = cluster.lock().unwrap();
                match fault {
                    Fault::KillReplica => c.replicas[0].kill(),
                    Fault::RestartRedis => {
                        let mut redis = c.redis.lock().unwrap();
                        let redis = redis.as_mut().expect("the cluster runs on Redis");
                        redis.kill();
                        std::thread::sleep(Duration::from_secs(1));
                        redis.restart();
                    }
                    Fault::RestartEmbedded => c.restart_replica(0),
                    Fault::None => {}
                }
            })
            .await
            .unwrap();
        })
    };
    let permits = Arc::new(Semaphore::new(scale.concurrency));
    let mut rng = workload::rng(seed);
    let mut handles = Vec::new();
    for i in 0..scale.issues_per_client {
        for (k, _) in clients.iter().enumerate() {
            let first = rng.gen_range(0..bases.len());
            let permit = permits.clone().acquire_owned().await.unwrap();
            let (http, bases, clients, expected, done) = (
                http.clone(),
                bases.clone(),
                clients.clone(),
                expected.clone(),
                done.clone(),
            );
            handles.push(tokio::spawn(async move {
                let _permit = permit;
                let client = &clients[k];
                let r = format!("ref-{}-{i}", client.id);
                let answer = post(
                    &http,
                    &bases,
                    first,
                    "/issue",
                    &client.issue_ref_jwt(&uuid(), &r, 5),
                )
                .await;
                let acked = Instant::now();
                let entries: Vec<(String, u64)> = answer["entries"]
                    .as_array()
                    .unwrap_or_else(|| panic!("issue answer: {answer}"))
                    .iter()
                    .map(|e| {
                        (
                            e["uri"].as_str().unwrap().to_owned(),
                            e["idx"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                {
                    let mut x = expected.lock().unwrap();
                    x.events.insert(
                        EventKey {
                            kind: "entries.issued".into(),
                            subject: r.clone(),
                        },
                        acked,
                    );
                    for (uri, idx) in &entries {
                        let s = entry_subject(uri, *idx);
                        x.chains.insert(s.clone(), vec!["entries.issued".into()]);
                        x.refs.insert(s, r.clone());
                    }
                }
                // Each entry through its chain; entries interleave.
                let chains = entries.into_iter().enumerate().map(|(j, (uri, idx))| {
                    let (http, bases, clients, expected, done) = (
                        http.clone(),
                        bases.clone(),
                        clients.clone(),
                        expected.clone(),
                        done.clone(),
                    );
                    async move {
                        let client = &clients[k];
                        for (step, (path, kind)) in [
                            ("/suspend", "entry.suspended"),
                            ("/unsuspend", "entry.unsuspended"),
                            ("/revoke", "entry.revoked"),
                        ]
                        .into_iter()
                        .enumerate()
                        {
                            let jwt = client.change_jwt(&uuid(), idx, &uri);
                            post(&http, &bases, first + j + step, path, &jwt).await;
                            let acked = Instant::now();
                            let s = entry_subject(&uri, idx);
                            let mut x = expected.lock().unwrap();
                            x.events.insert(
                                EventKey {
                                    kind: kind.into(),
                                    subject: s.clone(),
                                },
                                acked,
                            );
                            x.chains.get_mut(&s).unwrap().push(kind.into());
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                futures::future::join_all(chains).await;
            }));
        }
    }
    for h in handles {
        h.await.unwrap();
    }
    fault_task.await.unwrap();
    Arc::try_unwrap(expected)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_else(|_| panic!("tasks still hold the journal"))
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Checks one delivery's headers and signature; returns its parsed body.
fn check_delivery(d: &Delivery, findings: &mut Vec<String>) -> Option<Value> {
    let Ok(body) = serde_json::from_slice::<Value>(&d.body) else {
        findings.push(format!(
            "a body that is not JSON: {:?}",
            String::from_utf8_lossy(&d.body)
        ));
        return None;
    };
    let id = body["id"].as_str().unwrap_or("");
    if d.event_id.as_deref() != Some(id) {
        findings.push(format!(
            "Statuslist-Event-Id {:?} for body id {id}",
            d.event_id
        ));
    }
    if d.content_type.as_deref() != Some("application/json") {
        findings.push(format!("content type {:?}", d.content_type));
    }
    let client = body["client"].as_str().unwrap_or("");
    if d.path != format!("/hook/{client}") {
        findings.push(format!("{client}'s event sent to {}", d.path));
    }
    let header = d.signature.clone().unwrap_or_default();
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_owned()),
            _ => {}
        }
    }
    match (t, v1) {
        (Some(t), Some(v1)) => {
            if expected_v1(secret_of(client).as_bytes(), t, &d.body) != v1 {
                findings.push(format!("a bad signature on {id}"));
            }
            if t.abs_diff(unix_now()) > 300 {
                findings.push(format!("signature time {t} far from now"));
            }
        }
        _ => findings.push(format!("a malformed signature header {header:?}")),
    }
    Some(body)
}

fn key_of(body: &Value) -> EventKey {
    let kind = body["type"].as_str().unwrap_or("?").to_owned();
    let data = &body["data"];
    let subject = if kind == "entries.issued" {
        data["ref"].as_str().unwrap_or("?").to_owned()
    } else {
        entry_subject(
            data["uri"].as_str().unwrap_or("?"),
            data["idx"].as_u64().unwrap_or(0),
        )
    };
    EventKey { kind, subject }
}

/// Compares what the receiver got with what was acknowledged; panics with
/// the findings. Returns the ack-to-delivery latencies.
fn verify(expected: &Expected, deliveries: &[Delivery]) -> Vec<Duration> {
    let mut findings = Vec::new();
    let mut by_id: HashMap<String, (Vec<u8>, EventKey)> = HashMap::new();
    let mut ids_of: HashMap<EventKey, Vec<String>> = HashMap::new();
    let mut first_ok: HashMap<EventKey, Instant> = HashMap::new();
    let mut oks: HashMap<String, usize> = HashMap::new();
    for d in deliveries {
        let Some(body) = check_delivery(d, &mut findings) else {
            continue;
        };
        let id = body["id"].as_str().unwrap_or("").to_owned();
        let key = key_of(&body);
        match by_id.get(&id) {
            Some((b, _)) if *b != d.body => findings.push(format!("{id} sent with two bodies")),
            Some(_) => {}
            None => {
                by_id.insert(id.clone(), (d.body.clone(), key.clone()));
                ids_of.entry(key.clone()).or_default().push(id.clone());
            }
        }
        if !expected.events.contains_key(&key) {
            findings.push(format!("an event nobody caused: {key:?}"));
        }
        if key.kind != "entries.issued" {
            let want_ref = expected.refs.get(&key.subject);
            if body["data"]["ref"].as_str() != want_ref.map(String::as_str) {
                findings.push(format!("{key:?} carries ref {}", body["data"]["ref"]));
            }
        }
        if d.ok {
            *oks.entry(id).or_default() += 1;
            let at = first_ok.entry(key).or_insert(d.at);
            if d.at < *at {
                *at = d.at;
            }
        }
    }
    for (key, ids) in &ids_of {
        if ids.len() > 1 {
            findings.push(format!("{key:?} has {} ids", ids.len()));
        }
    }
    let mut latencies = Vec::new();
    // By type, to see where the time goes (a later event of an entry
    // waits for the earlier ones).
    let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for (key, acked) in &expected.events {
        match first_ok.get(key) {
            None => findings.push(format!("lost: {key:?}")),
            Some(at) => {
                let latency = at.saturating_duration_since(*acked);
                latencies.push(latency);
                by_kind.entry(key.kind.as_str()).or_default().push(latency);
            }
        }
    }
    for (kind, mut l) in by_kind {
        l.sort();
        eprintln!(
            "  {kind}: {} events, ack to first 2xx p50 {:?}, p99 {:?}",
            l.len(),
            percentile(&l, 0.5),
            percentile(&l, 0.99)
        );
    }
    for (entry, chain) in &expected.chains {
        let mut seen: Vec<(Instant, &str)> = chain
            .iter()
            .filter_map(|kind| {
                let key = EventKey {
                    kind: kind.clone(),
                    subject: if kind == "entries.issued" {
                        expected.refs[entry].clone()
                    } else {
                        entry.clone()
                    },
                };
                first_ok.get(&key).map(|at| (*at, kind.as_str()))
            })
            .collect();
        seen.sort();
        let order: Vec<&str> = seen.iter().map(|(_, k)| *k).collect();
        let want: Vec<&str> = chain.iter().map(String::as_str).collect();
        if order != want {
            findings.push(format!(
                "{entry}: accepted in the order {order:?}, made {want:?}"
            ));
        }
    }
    // One replica at a time: two deliveries of one event never overlap.
    let mut spans: HashMap<&str, Vec<(Instant, Instant)>> = HashMap::new();
    for d in deliveries {
        if let Some(id) = d.event_id.as_deref() {
            spans.entry(id).or_default().push((d.started, d.at));
        }
    }
    for (id, mut span) in spans {
        span.sort();
        if span.windows(2).any(|w| w[1].0 < w[0].1) {
            findings.push(format!("overlapping deliveries of {id}"));
        }
    }
    let repeats = oks.values().filter(|n| **n > 1).count();
    let failed = deliveries.iter().filter(|d| !d.ok).count();
    eprintln!(
        "{} events expected, {} deliveries ({} not accepted), {} events accepted more than once",
        expected.events.len(),
        deliveries.len(),
        failed,
        repeats
    );
    if !findings.is_empty() {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for f in &findings {
            *counts
                .entry(f.split(':').next().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        panic!(
            "{} findings ({counts:?}); first ones:\n{}",
            findings.len(),
            findings
                .iter()
                .take(15)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The configuration lines of a client with a webhook to `receiver_port`.
fn webhook_client(receiver_port: u16, settings: &str) -> Extra {
    Extra {
        store: String::new(),
        global: settings.to_owned(),
        client: Box::new(move |id: &str, dir: &Path| {
            let secret = dir.join(format!("{id}.webhook-secret"));
            std::fs::write(&secret, format!("{}\n", secret_of(id))).unwrap();
            format!(
                "allow_insecure_webhook = true\nwebhook = {{ url = \"http://127.0.0.1:{receiver_port}/hook/{id}\", secret_file = \"{}\" }}\n",
                secret.display()
            )
        }),
    }
}

/// Runs one scenario, with `settings` as the `[webhooks]` section, and
/// returns the latencies (sorted).
pub async fn scenario(
    redis: Option<RedisServer>,
    replicas: usize,
    settings: &'static str,
    flaky: Flaky,
    scale: Scale,
    fault: Fault,
    name: &str,
) -> Vec<Duration> {
    let seed = workload::seed();
    eprintln!("{name}: seed {seed} (FAULTS_SEED={seed} repeats the plan)");
    let receiver = Receiver::start(flaky, seed).await;
    let knobs = Knobs {
        capacity: 2000,
        freshness_ms: 1000,
        command_timeout_ms: 1000,
    };
    let port = receiver.port;
    let mut cluster = tokio::task::spawn_blocking(move || {
        Cluster::start_with(redis, replicas, knobs, &webhook_client(port, settings))
    })
    .await
    .unwrap();
    let bases = cluster.addresses();
    let clients = Arc::new(std::mem::take(&mut cluster.clients));
    let cluster = Arc::new(Mutex::new(cluster));
    let started = Instant::now();
    let expected = load(cluster.clone(), clients, bases, scale, fault, seed).await;
    let loaded = started.elapsed();
    // Everything acknowledged must arrive; wait for it (generously: with
    // a lease of 5 s and backoff capped at 1 s, a minute is plenty).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let accepted: std::collections::HashSet<EventKey> = receiver
            .deliveries()
            .iter()
            .filter(|d| d.ok)
            .filter_map(|d| serde_json::from_slice::<Value>(&d.body).ok())
            .map(|b| key_of(&b))
            .collect();
        if expected.events.keys().all(|k| accepted.contains(k)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut latencies = verify(&expected, &receiver.deliveries());
    latencies.sort();
    eprintln!(
        "{name}: load {loaded:?}, all delivered {:?} after start; ack to first 2xx: \
         p50 {:?}, p99 {:?}, max {:?}",
        started.elapsed(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    drop(cluster);
    latencies
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The issue's scenario (a flaky receiver, full scale) with `fault`, on a
/// runtime of its own.
fn run_flaky(redis: Option<RedisServer>, replicas: usize, fault: Fault, name: &str) {
    runtime().block_on(scenario(
        redis,
        replicas,
        FAST_RETRIES,
        Flaky::ISSUE,
        Scale::FULL,
        fault,
        name,
    ));
}

#[test]
fn two_replicas_deliver_every_event_to_a_flaky_receiver() {
    run_flaky(
        Some(RedisServer::start()),
        2,
        Fault::None,
        "flaky receiver, 2 replicas",
    );
}

#[test]
fn a_replica_killed_while_delivering_loses_no_event() {
    run_flaky(
        Some(RedisServer::start()),
        2,
        Fault::KillReplica,
        "replica killed",
    );
}

#[test]
fn a_redis_restart_loses_no_event() {
    run_flaky(
        Some(RedisServer::start_durable()),
        2,
        Fault::RestartRedis,
        "redis restarted",
    );
}

#[test]
fn an_embedded_store_restart_loses_no_event() {
    run_flaky(None, 1, Fault::RestartEmbedded, "embedded restarted");
}
