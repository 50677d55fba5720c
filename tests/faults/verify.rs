//! The checks after a run: answers per request, allocations against the
//! list counters in Redis, and the published lists against the changes that
//! were acknowledged. Findings are collected, not asserted one by one, so a
//! failing run reports every kind of violation it found at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use statuslist::domain::codec::DEFAULT_DECODE_LIMIT;
use statuslist::domain::{ListFormat, ListId, ListRef, StatusList};
use statuslist::ports::{ListSnapshot, Store, StoreSettings};
use statuslist::publish::{decode_bitstring_credential, decode_token_list, jws};
use statuslist::store::redis::{RedisSettings, RedisStore};

use crate::cluster::{BASE, Cluster, PREFIX};
use crate::net::{Answer, Net};
use crate::workload::{Journal, Op};

/// Violations by kind, with a few examples of each.
#[derive(Debug, Default)]
pub struct Findings {
    by_kind: BTreeMap<&'static str, (usize, Vec<String>)>,
}

impl Findings {
    const EXAMPLES: usize = 5;

    pub fn add(&mut self, kind: &'static str, example: String) {
        let (count, examples) = self.by_kind.entry(kind).or_default();
        *count += 1;
        if examples.len() < Self::EXAMPLES {
            examples.push(example);
        }
    }

    /// Adds everything `other` found as one kind, `kind`, keeping the
    /// original kinds in the examples.
    pub fn merge_as(&mut self, kind: &'static str, other: Findings) {
        for (inner, (count, examples)) in other.by_kind {
            let (n, mine) = self.by_kind.entry(kind).or_default();
            *n += count;
            for e in examples {
                if mine.len() < Self::EXAMPLES {
                    mine.push(format!("{inner}: {e}"));
                }
            }
        }
    }

    pub fn count(&self, kind: &str) -> usize {
        self.by_kind.get(kind).map_or(0, |(n, _)| *n)
    }

    /// Panics listing every kind of violation found, with examples.
    pub fn assert_none(&self, context: &str) {
        if self.by_kind.is_empty() {
            return;
        }
        let mut report = format!("{context}: violations found\n");
        for (kind, (count, examples)) in &self.by_kind {
            report.push_str(&format!("- {kind}: {count}\n"));
            for e in examples {
                report.push_str(&format!("    e.g. {e}\n"));
            }
        }
        panic!("{report}");
    }
}

/// What must be equal between two answers to one change request: status,
/// message and time.
pub fn change_key(op: Op, a: &Answer) -> (u16, serde_json::Value, serde_json::Value) {
    (
        a.status,
        a.body["message"].clone(),
        a.body[op.time_field()].clone(),
    )
}

/// Checks the `/issue` answers: every jti answered 200 (a request that gave
/// up counts only when `gave_up_is_violation`), all answers of a jti equal,
/// and no (list, idx) given to two jtis. Returns jti → (uri, idx) for the
/// jtis that were answered, and the number of jtis that never were.
pub fn issues(
    journal: &Journal,
    gave_up_is_violation: bool,
    f: &mut Findings,
) -> (HashMap<String, (String, u64)>, usize) {
    let mut allocations = HashMap::new();
    let mut unanswered = 0;
    let mut holder: HashMap<(String, u64), &str> = HashMap::new();
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
        let Some(a) = first else {
            unanswered += 1;
            continue;
        };
        let (Some(idx), Some(uri)) = (a.body["idx"].as_u64(), a.body["uri"].as_str()) else {
            f.add(
                "a 200 from /issue without idx and uri",
                format!("{jti}: {}", a.body),
            );
            continue;
        };
        if let Some(other) = holder.insert((uri.to_owned(), idx), jti) {
            f.add(
                "one (list, idx) was allocated to two jtis",
                format!("{uri} #{idx}: {other} and {jti}"),
            );
        }
        allocations.insert(jti.clone(), (uri.to_owned(), idx));
    }
    (allocations, unanswered)
}

/// Checks the change answers: each is a 202 (a request that gave up counts
/// only when `gave_up_is_violation`), and every answer to one jti has the
/// same status, message and time as the first.
pub fn changes(journal: &Journal, gave_up_is_violation: bool, f: &mut Findings) {
    for (jti, record) in &journal.changes {
        let op = &record.op;
        let mut first: Option<&Answer> = None;
        for answer in &record.answers {
            match answer {
                Err(e) if gave_up_is_violation => {
                    f.add("a change request was never answered", format!("{jti}: {e}"));
                }
                Err(_) => {}
                Ok(a) => {
                    if a.status != 202 {
                        f.add(
                            "a change request was not accepted",
                            format!("{} {jti}: {} {}", op.path(), a.status, a.body),
                        );
                    }
                    match first {
                        None => first = Some(a),
                        Some(o) if change_key(*op, o) != change_key(*op, a) => f.add(
                            "a replayed change got another answer than the original",
                            format!(
                                "{} {jti}: {} {} then {} {}",
                                op.path(),
                                o.status,
                                o.body,
                                a.status,
                                a.body
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

/// Every list under the cluster's prefix in Redis, read through the Redis
/// adapter (metadata with the allocation counter, and bytes).
pub async fn lists_in_redis(cluster: &Cluster) -> Vec<ListSnapshot> {
    located_lists(cluster)
        .await
        .into_iter()
        .map(|l| l.snapshot)
        .collect()
}

/// A list as found in Redis: which node holds its metadata (the master's
/// port on a Redis Cluster, 0 on one server), the hash tag its keys carry
/// (`None` for an owner entry only), and the list.
pub struct Located {
    pub master: u16,
    pub tag: Option<String>,
    pub snapshot: ListSnapshot,
}

/// A list id named by a key under [`PREFIX`]: the owner entry
/// `<prefix>list:<id>` (no hash tag) or the metadata hash
/// `<prefix>{tag}:l:<id>` (with its tag); `None` for any other key.
fn list_key(key: &str) -> Option<(ListId, Option<String>)> {
    let rest = key.strip_prefix(PREFIX)?;
    if let Some(id) = rest.strip_prefix("list:") {
        return Some((ListId::parse(id).ok()?, None));
    }
    let (tag, rest) = rest.strip_prefix('{')?.split_once('}')?;
    let id = rest.strip_prefix(":l:")?;
    Some((ListId::parse(id).ok()?, Some(tag.to_owned())))
}

/// Every list under the cluster's prefix, with where it is.
pub async fn located_lists(cluster: &Cluster) -> Vec<Located> {
    // Keys by node: KEYS on the one private server, a SCAN on each master
    // of a Redis Cluster.
    let mut found: Vec<(u16, String)> = Vec::new();
    match &cluster.redis_cluster {
        Some(rc) => {
            for master in rc.masters() {
                for key in rc.keys_on(master.port, &format!("{PREFIX}*")) {
                    found.push((master.port, key));
                }
            }
        }
        None => {
            let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            // KEYS is fine on a private test server.
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{PREFIX}*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            found.extend(keys.into_iter().map(|k| (0, k)));
        }
    }
    // The metadata key tells where a list is; an owner entry alone (a lost
    // race, or a layout with owner entries) only names it.
    let mut ids: BTreeMap<ListId, (u16, Option<String>)> = BTreeMap::new();
    for (node, key) in found {
        if let Some((id, tag)) = list_key(&key) {
            let slot = ids.entry(id).or_insert((node, None));
            if tag.is_some() {
                *slot = (node, tag);
            }
        }
    }
    let mut redis = RedisSettings::new(cluster.redis_url.clone());
    redis.prefix = PREFIX.to_owned();
    redis.command_timeout = Duration::from_secs(10);
    // As the replicas were configured: the shard count places the tags.
    redis.shards_per_client = cluster
        .store_lines
        .lines()
        .filter_map(|l| l.trim().strip_prefix("shards_per_client"))
        .filter_map(|v| v.trim().trim_start_matches('=').trim().parse().ok())
        .next()
        .unwrap_or(1);
    let settings = StoreSettings {
        capacity: cluster.knobs.capacity,
        ..StoreSettings::default()
    };
    let store = RedisStore::connect(redis, settings).await.unwrap();
    let mut lists = Vec::new();
    for (id, (master, tag)) in ids {
        // An owner entry whose list was never opened (a lost race) is no
        // list.
        let mut tries = 0;
        let read = loop {
            // A busy machine may time a read out once; a failing store
            // fails the run with its error.
            match store.read_list(&id).await {
                Err(e) if tries < 5 => {
                    eprintln!("reading list {id} from Redis: {e}; again");
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => break other.unwrap_or_else(|e| panic!("reading list {id}: {e}")),
            }
        };
        if let Some(snapshot) = read {
            lists.push(Located {
                master,
                tag,
                snapshot,
            });
        }
    }
    lists
}

/// Checks the counters: each list's `allocated` equals the number of jtis
/// answered with it, give or take `unanswered` jtis (requests that never got
/// an answer may or may not have allocated), and every answered list exists.
pub fn counters(
    lists: &[ListSnapshot],
    allocations: &HashMap<String, (String, u64)>,
    unanswered: usize,
    f: &mut Findings,
) {
    let mut answered: HashMap<String, u64> = HashMap::new();
    for (uri, _) in allocations.values() {
        *answered.entry(uri.clone()).or_default() += 1;
    }
    let mut total = 0;
    let mut seen = HashSet::new();
    for list in lists {
        let uri = list_uri(list);
        let got = answered.get(&uri).copied().unwrap_or(0);
        total += list.meta.allocated;
        seen.insert(uri.clone());
        if unanswered == 0 && list.meta.allocated != got {
            f.add(
                "a list counter differs from the allocations answered from it",
                format!(
                    "{uri}: allocated {} but {got} jtis got it",
                    list.meta.allocated
                ),
            );
        }
    }
    let jtis = allocations.len() as u64;
    if total < jtis || total > jtis + unanswered as u64 {
        f.add(
            "the list counters do not add up to the distinct jtis",
            format!("counters sum to {total}, {jtis} jtis answered, {unanswered} unanswered"),
        );
    }
    for uri in answered.keys() {
        if !seen.contains(uri) {
            f.add("an answered list is not in Redis", uri.clone());
        }
    }
}

fn list_uri(list: &ListSnapshot) -> String {
    ListRef {
        format: list.meta.format,
        id: list.meta.id,
    }
    .uri(BASE)
}

/// Fetches every list from every replica in `replicas`, verifies it with the
/// service key, decodes it, and compares every entry with `expected`
/// (entries no chain ran on must be VALID).
pub async fn published(
    cluster: &Cluster,
    net: &Net,
    replicas: &[usize],
    lists: &[ListSnapshot],
    expected: &HashMap<(String, u64), Vec<u8>>,
    f: &mut Findings,
) {
    let mut by_list: HashMap<&str, BTreeMap<u64, &[u8]>> = HashMap::new();
    for ((uri, idx), allowed) in expected {
        by_list
            .entry(uri.as_str())
            .or_default()
            .insert(*idx, allowed.as_slice());
    }
    let empty = BTreeMap::new();
    for list in lists {
        let uri = list_uri(list);
        let path = uri.strip_prefix(BASE).unwrap();
        let want = by_list.get(uri.as_str()).unwrap_or(&empty);
        for &replica in replicas {
            match fetch(cluster, net, replica, path, &uri, list.meta.format).await {
                Err(e) => f.add("a published list could not be read", e),
                Ok(decoded) => compare(&decoded, want, &uri, replica, f),
            }
        }
    }
    for uri in by_list.keys() {
        if !lists.iter().any(|l| list_uri(l) == *uri) {
            f.add("a changed entry's list is not in Redis", (*uri).to_owned());
        }
    }
}

fn compare(
    list: &StatusList,
    want: &BTreeMap<u64, &[u8]>,
    uri: &str,
    replica: usize,
    f: &mut Findings,
) {
    for (idx, value) in list.nonzero() {
        if !want.contains_key(&idx) {
            f.add(
                "a published entry has a status no acknowledged change set",
                format!("replica {replica}: {uri} #{idx} = {value}"),
            );
        }
    }
    for (&idx, allowed) in want {
        match list.get(idx) {
            Ok(value) if allowed.contains(&value) => {}
            got => f.add(
                "a published entry lacks an acknowledged change",
                format!("replica {replica}: {uri} #{idx} = {got:?}, want one of {allowed:?}"),
            ),
        }
    }
}

/// GETs a list, checks the signature with the service key and that it
/// names itself `uri`, and decodes it.
async fn fetch(
    cluster: &Cluster,
    net: &Net,
    replica: usize,
    path: &str,
    uri: &str,
    format: ListFormat,
) -> Result<StatusList, String> {
    let (status, body) = net.get(replica, path).await?;
    if status != 200 {
        return Err(format!("replica {replica}: GET {path}: {status} {body}"));
    }
    let parts = jws::verify(&body, cluster.service_key.verifying_key())
        .map_err(|e| format!("replica {replica}: {path} does not verify: {e}"))?;
    let (named, list) = match format {
        ListFormat::Token => {
            let d = decode_token_list(&parts.payload, DEFAULT_DECODE_LIMIT)
                .map_err(|e| format!("replica {replica}: {path}: {e}"))?;
            (d.claims.sub, d.list)
        }
        ListFormat::Bitstring => {
            let d = decode_bitstring_credential(&parts.payload, DEFAULT_DECODE_LIMIT)
                .map_err(|e| format!("replica {replica}: {path}: {e}"))?;
            (d.credential.id, d.list)
        }
    };
    if named != uri {
        return Err(format!("replica {replica}: {path} names itself {named}"));
    }
    Ok(list)
}
