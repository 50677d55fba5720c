//! Load program for the entry listing on Redis (issue 14's targets; not
//! criterion: it measures a server).
//!
//! Starts a private `redis-server` on a unix socket and, for each of three
//! shapes of 1,000,000 entries of one client (`ENTRIES_TOTAL` to change it):
//!
//! - `crs`: one entry per `/issue`, no ref (what CRS clients do);
//! - `batches`: `/issue` of 5 entries bound to a ref of its own (a UUID);
//! - `ref-each`: one entry per `/issue`, each with a ref of its own: the
//!   worst case for memory, the ref text itself dominating;
//!
//! 1. issues them (64 in flight) and changes 1 % of them (70 % revoked,
//!    30 % suspended, at rising times);
//! 2. measures the memory of what the listing needs: `MEMORY USAGE` of the
//!    client's entry keys (the `…:e:…` keys: issuance log, list registry,
//!    ref index, change indexes) per entry, and `used_memory` before and
//!    after, broken down into lists, idempotency records and entry keys;
//! 3. times `GET /entries`'s store work (claim the jti, then one page of 100)
//!    one call at a time: page 1, the last page and random depths
//!    unfiltered; by ref; `status=INVALID,SUSPENDED` at random depths;
//!    ascending; and a list (`uri`) filter; printing p50, p99 and max.
//!
//! `cargo bench --bench entries` (release). `ENTRIES_QUERIES` sets the
//! calls per query kind (default 400).

#[path = "../tests/store/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statuslist::domain::{
    ClientId, IssuanceRef, Jti, ListFormat, ListId, SortOrder, Status, StatusSet,
};
use statuslist::ports::{
    AllocateOutcome, AllocateRequest, EntryQuery, JtiClaim, JtiClaimOutcome, StatusChange, Store,
    StoreSettings,
};
use statuslist::store::redis::{RedisSettings, RedisStore};

const IN_FLIGHT: usize = 64;
const NOW: u64 = 1_700_000_000;
const LIMIT: u32 = 100;

/// One way issuers issue.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    /// Entries per `/issue`.
    count: u32,
    /// Whether each `/issue` carries a ref of its own.
    with_ref: bool,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "crs",
        count: 1,
        with_ref: false,
    },
    Shape {
        name: "batches",
        count: 5,
        with_ref: true,
    },
    Shape {
        name: "ref-each",
        count: 1,
        with_ref: true,
    },
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let total = env_or("ENTRIES_TOTAL", 1_000_000);
    let queries = env_or("ENTRIES_QUERIES", 400) as usize;
    let server = support::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("entries: private redis-server at {}", server.url());
        println!("load average before: {}", load_average());
        let store = Arc::new(
            RedisStore::connect(RedisSettings::new(server.url()), StoreSettings::default())
                .await
                .expect("connect"),
        );
        let mut conn = redis::Client::open(server.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        for shape in SHAPES {
            run(&store, &mut conn, shape, total, queries).await;
        }
        println!("load average after: {}", load_average());
    });
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// An issued `/issue`: its ref and its entries.
struct Issued {
    issuance_ref: Option<IssuanceRef>,
    entries: Vec<(ListId, u64)>,
}

async fn run(
    store: &Arc<RedisStore>,
    conn: &mut redis::aio::MultiplexedConnection,
    shape: Shape,
    total: u64,
    queries: usize,
) {
    println!(
        "\n== {} : {total} entries, {} per /issue, ref: {}",
        shape.name, shape.count, shape.with_ref
    );
    let client = ClientId::parse(&format!("bench-{}", shape.name)).expect("client id");
    let before = used_memory(conn).await;
    let calls = total / u64::from(shape.count);
    let start = Instant::now();
    let issued = issue_all(store, &client, shape, calls).await;
    let elapsed = start.elapsed();
    let entries: u64 = issued.iter().map(|i| i.entries.len() as u64).sum();
    println!(
        "issued {entries} entries in {calls} calls: {:.1} s, {:.0} calls/s",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64()
    );

    // 1 % changed: 70 % revoked, 30 % suspended, at rising times.
    let mut rng = StdRng::seed_from_u64(14);
    let all: Vec<(ListId, u64)> = issued
        .iter()
        .flat_map(|i| i.entries.iter().copied())
        .collect();
    let changes = (entries / 100) as usize;
    let mut picked = std::collections::HashSet::new();
    while picked.len() < changes {
        picked.insert(rng.gen_range(0..all.len()));
    }
    let start = Instant::now();
    let picked: Vec<usize> = picked.into_iter().collect();
    let mut tasks = Vec::new();
    for (t, chunk) in picked.chunks(picked.len().div_ceil(IN_FLIGHT)).enumerate() {
        let (store, client) = (Arc::clone(store), client.clone());
        let work: Vec<(usize, ListId, u64)> =
            chunk.iter().map(|&i| (i, all[i].0, all[i].1)).collect();
        tasks.push(tokio::spawn(async move {
            for (n, (i, list, idx)) in work.into_iter().enumerate() {
                let status = if i % 10 < 7 {
                    Status::Invalid
                } else {
                    Status::Suspended
                };
                let name = format!("chg-{t}-{n}");
                let now = NOW + 10 + (n as u64);
                let change = StatusChange {
                    client: client.clone(),
                    list,
                    idx,
                    status,
                    jti: Jti::from_name(&name),
                    digest: *blake3::hash(name.as_bytes()).as_bytes(),
                    now,
                    keep_until: now + 3661,
                    events: None,
                };
                store.set_status(&change).await.expect("change");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    println!(
        "changed {changes} entries in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    memory(conn, &client, entries, before).await;

    // Queries.
    let base = EntryQuery::first_page(client.clone(), ListFormat::Token, LIMIT);
    let last_page = (entries - 1) / u64::from(LIMIT);
    let changed_pages = (changes as u64).div_ceil(u64::from(LIMIT));
    let refs: Vec<IssuanceRef> = issued
        .iter()
        .filter_map(|i| i.issuance_ref.clone())
        .collect();
    let lists: Vec<ListId> = {
        let mut l: Vec<ListId> = all.iter().map(|(l, _)| *l).collect();
        l.dedup();
        l
    };
    let kinds: Vec<(&str, MakeQuery)> = vec![
        (
            "unfiltered, page 1",
            Box::new({
                let b = base.clone();
                move |_| b.clone()
            }),
        ),
        (
            "unfiltered, last page",
            Box::new({
                let b = base.clone();
                move |_| EntryQuery {
                    offset: last_page * u64::from(LIMIT),
                    ..b.clone()
                }
            }),
        ),
        (
            "unfiltered, random page",
            Box::new({
                let b = base.clone();
                move |r| EntryQuery {
                    offset: r.gen_range(0..=last_page) * u64::from(LIMIT),
                    ..b.clone()
                }
            }),
        ),
        (
            "unfiltered asc, random page",
            Box::new({
                let b = base.clone();
                move |r| EntryQuery {
                    order: SortOrder::Asc,
                    offset: r.gen_range(0..=last_page) * u64::from(LIMIT),
                    ..b.clone()
                }
            }),
        ),
        (
            "status=INVALID,SUSPENDED, random page",
            Box::new({
                let b = base.clone();
                move |r| EntryQuery {
                    statuses: StatusSet::of(&[Status::Invalid, Status::Suspended]),
                    offset: r.gen_range(0..changed_pages) * u64::from(LIMIT),
                    ..b.clone()
                }
            }),
        ),
        (
            "status=VALID, random page",
            Box::new({
                let b = base.clone();
                move |r| EntryQuery {
                    statuses: StatusSet::of(&[Status::Valid]),
                    offset: r.gen_range(0..last_page) * u64::from(LIMIT),
                    ..b.clone()
                }
            }),
        ),
        (
            "uri (one list), random page",
            Box::new({
                let (b, lists) = (base.clone(), lists.clone());
                move |r| EntryQuery {
                    list: Some(lists[r.gen_range(0..lists.len())]),
                    offset: r.gen_range(0..100) * u64::from(LIMIT) % 131_072,
                    ..b.clone()
                }
            }),
        ),
    ];
    let mut kinds = kinds;
    if !refs.is_empty() {
        let (b, refs) = (base.clone(), refs.clone());
        kinds.push((
            "ref",
            Box::new(move |r| EntryQuery {
                issuance_ref: Some(refs[r.gen_range(0..refs.len())].clone()),
                ..b.clone()
            }),
        ));
    }
    println!(
        "page of {LIMIT}, one call at a time, {queries} calls each (claim_jti + list_entries):"
    );
    for (name, make) in &kinds {
        let mut times = Vec::with_capacity(queries);
        let mut items = 0;
        for q in 0..queries {
            let query = make(&mut rng);
            let jti = Jti::from_name(&format!("{}-{name}-{q}", shape.name));
            let t = Instant::now();
            let claim = store
                .claim_jti(&JtiClaim {
                    client: client.clone(),
                    jti,
                    digest: [0; 32],
                    now: NOW,
                    keep_until: NOW + 3661,
                })
                .await
                .expect("claim");
            assert_eq!(claim, JtiClaimOutcome::Fresh);
            let page = store.list_entries(&query).await.expect("list");
            times.push(t.elapsed());
            items += page.items.len();
        }
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        println!(
            "  {name:<40} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({:.0} items/page)",
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(times[times.len() - 1]),
            items as f64 / queries as f64
        );
    }
}

/// Makes one query of a kind, at a random depth.
type MakeQuery = Box<dyn Fn(&mut StdRng) -> EntryQuery>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn issue_all(
    store: &Arc<RedisStore>,
    client: &ClientId,
    shape: Shape,
    calls: u64,
) -> Vec<Issued> {
    let mut tasks = Vec::new();
    let per = calls.div_ceil(IN_FLIGHT as u64);
    for t in 0..IN_FLIGHT as u64 {
        let (store, client) = (Arc::clone(store), client.clone());
        let range = (t * per)..((t + 1) * per).min(calls);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(range.clone().count());
            for i in range {
                let name = format!("{}-{i}", shape.name);
                let issuance_ref = shape
                    .with_ref
                    .then(|| IssuanceRef::parse(&uuid::Uuid::new_v4().to_string()).expect("ref"));
                let req = AllocateRequest {
                    client: client.clone(),
                    format: ListFormat::Token,
                    jti: Jti::from_name(&name),
                    digest: *blake3::hash(name.as_bytes()).as_bytes(),
                    status_expiry: NOW + 86_400,
                    count: shape.count,
                    issuance_ref: issuance_ref.clone(),
                    now: NOW + i / 50_000,
                    keep_until: NOW + 3661,
                    events: None,
                };
                let a = match store.allocate(&req).await.expect("allocate") {
                    AllocateOutcome::Allocated(a) => a,
                    other => panic!("allocate: {other:?}"),
                };
                out.push(Issued {
                    issuance_ref,
                    entries: a.entries().collect(),
                });
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Every key of `client`, by kind: entry keys (`…:e:…`), idempotency
/// records (`…:r…`, `…:j:…`) and the rest (lists).
async fn memory(
    conn: &mut redis::aio::MultiplexedConnection,
    client: &ClientId,
    entries: u64,
    before: u64,
) {
    let after = used_memory(conn).await;
    let pattern = format!("*{{{client}}}:*");
    let mut cursor: u64 = 0;
    let (mut entry_keys, mut records, mut lists) = (0u64, 0u64, 0u64);
    let mut counted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        for key in keys {
            let usage: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(conn)
                .await
                .expect("MEMORY USAGE");
            let usage = usage.unwrap_or(0);
            let tail = key.split_once("}:").map_or("", |(_, t)| t);
            if tail.starts_with("e:") {
                entry_keys += usage;
            } else if tail.starts_with("r") || tail.starts_with("j:") {
                records += usage;
            } else {
                lists += usage;
            }
            counted += 1;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let per = |b: u64| b as f64 / entries as f64;
    println!("memory ({counted} keys of the client):");
    println!(
        "  entry keys (listing: log, registry, refs, change indexes): {entry_keys:>12} B = {:>6.1} B/entry (target <= 48)",
        per(entry_keys)
    );
    println!(
        "  idempotency records (expire after the window):          {records:>12} B = {:>6.1} B/entry",
        per(records)
    );
    println!(
        "  lists (bytes, metadata, change times):                  {lists:>12} B = {:>6.1} B/entry",
        per(lists)
    );
    println!(
        "  used_memory grew by {} B = {:.1} B/entry in all",
        after.saturating_sub(before),
        per(after.saturating_sub(before))
    );
}
