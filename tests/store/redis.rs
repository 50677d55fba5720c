//! The Redis adapter against a private `redis-server` per test: the shared
//! contract suite, plus what only Redis has (many connections at once,
//! a server that dies and returns, scripts flushed, memory per list).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use statuslist::domain::{Bits, ListFormat, ListId, Status, StatusList};
use statuslist::ports::{
    AllocateOutcome, AllocateRequest, Allocation, SetStatusOutcome, Store, StoreError,
    StoreSettings,
};
use statuslist::store::redis::{RedisSettings, RedisStore};

use crate::contract::{allocated, change, client, contract_suite, jti, req, set};
use crate::support::RedisServer;

/// The contract suite's factory: a fresh private server per store.
pub async fn make_store(settings: StoreSettings) -> (RedisStore, RedisServer) {
    let server = RedisServer::start();
    let store = connect(&server, settings).await;
    (store, server)
}

contract_suite!(make_store);

async fn connect(server: &RedisServer, settings: StoreSettings) -> RedisStore {
    RedisStore::connect(RedisSettings::new(server.url()), settings)
        .await
        .expect("connect to the private redis")
}

fn small(capacity: u64) -> StoreSettings {
    StoreSettings {
        capacity,
        ..StoreSettings::default()
    }
}

/// The bytes Redis holds are the list in its own bit order: decoding them
/// with the domain's packed list finds exactly the entries that were set.
#[tokio::test]
async fn entries_land_in_each_formats_bit_order() {
    let (store, _server) = make_store(StoreSettings::default()).await;
    let c = client("order-client");
    for format in [ListFormat::Token, ListFormat::Bitstring] {
        let mut expected_set = HashMap::new();
        for (i, status) in [Status::Invalid, Status::Suspended, Status::Invalid]
            .into_iter()
            .enumerate()
        {
            let a = allocated(
                store
                    .allocate(&req(c.as_str(), format, &format!("{format}-{i}"), 1000))
                    .await
                    .unwrap(),
            );
            let idx = a.indexes[0];
            let out = set(&store, &c, a.list, idx, status, 2000 + i as u64)
                .await
                .unwrap();
            assert_eq!(
                out,
                SetStatusOutcome::Done {
                    at: 2000 + i as u64
                }
            );
            expected_set.insert(idx, status);
            let snap = store.read_list(&a.list).await.unwrap().unwrap();
            assert_eq!(snap.meta.format, format);
            let list = StatusList::from_bytes(format.layout(), Bits::Two, 131_072, snap.bytes)
                .expect("full-length bytes");
            let nonzero: HashMap<u64, u8> = list.nonzero().collect();
            let expected: HashMap<u64, u8> =
                expected_set.iter().map(|(i, s)| (*i, s.value())).collect();
            assert_eq!(nonzero, expected, "{format}");
        }
    }
}

/// 16 replicas (each its own store and connection) allocate 5,000 times each,
/// replaying some of their own jtis and racing on shared ones: no (list, idx)
/// is handed out twice, every replay returns the original answer, and the
/// lists' counters account for every allocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_replicas_never_hand_out_an_index_twice() {
    const TASKS: usize = 16;
    const PER_TASK: usize = 5_000;
    let server = RedisServer::start();
    // A small capacity so that lists fill up and are opened concurrently.
    let settings = small(7_000);
    let c = client("busy-client");
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = connect(&server, settings.clone()).await;
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            let mut mine: Vec<(String, Allocation)> = Vec::new();
            let mut shared: Vec<(String, Option<Allocation>)> = Vec::new();
            for i in 0..PER_TASK {
                let (jti, replay_of) = if i % 10 == 9 {
                    // Replay one of this task's earlier jtis.
                    let k = (i * 7919) % mine.len();
                    (mine[k].0.clone(), Some(mine[k].1.clone()))
                } else if i % 50 == 0 {
                    // Every task asks with the same jti.
                    (format!("shared-{i}"), None)
                } else {
                    (format!("t{t}-{i}"), None)
                };
                let req = req(c.as_str(), ListFormat::Token, &jti, 1_000);
                let out = store.allocate(&req).await.unwrap();
                match (replay_of, out) {
                    (Some(original), AllocateOutcome::Replayed(a)) => assert_eq!(a, original),
                    (Some(_), other) => panic!("replay answered {other:?}"),
                    (None, AllocateOutcome::Allocated(a)) => {
                        if jti.starts_with("shared") {
                            shared.push((jti, Some(a)));
                        } else {
                            mine.push((jti, a));
                        }
                    }
                    (None, AllocateOutcome::Replayed(a)) if jti.starts_with("shared") => {
                        shared.push((jti, Some(a)));
                    }
                    (None, other) => panic!("{jti} answered {other:?}"),
                }
            }
            (mine, shared)
        }));
    }
    let mut seen = HashSet::new();
    let mut first_answer: HashMap<String, Allocation> = HashMap::new();
    let mut replays_of_shared: Vec<(String, Allocation)> = Vec::new();
    let mut fresh = 0u64;
    for h in handles {
        let (mine, shared) = h.await.unwrap();
        for (_, a) in &mine {
            assert!(seen.insert((a.list, a.indexes[0])), "duplicate {a:?}");
            fresh += 1;
        }
        for (jti, a) in shared {
            if let Some(a) = a {
                replays_of_shared.push((jti, a));
            }
        }
    }
    for (jti, a) in replays_of_shared {
        match first_answer.get(&jti) {
            Some(b) => assert_eq!(&a, b, "{jti} answered differently"),
            None => {
                assert!(seen.insert((a.list, a.indexes[0])), "duplicate {a:?}");
                fresh += 1;
                first_answer.insert(jti, a);
            }
        }
    }
    // Nothing lost: the counters of all lists add up to the fresh answers.
    let store = connect(&server, settings).await;
    let lists: HashSet<ListId> = seen.iter().map(|(l, _)| *l).collect();
    let mut counted = 0;
    for list in &lists {
        let snap = store.read_list(list).await.unwrap().unwrap();
        assert_eq!(snap.meta.client, c);
        counted += snap.meta.allocated;
    }
    assert_eq!(counted, fresh);
    assert!(lists.len() >= 10, "lists should have rolled over");
}

/// The private server is killed: every call fails with Unavailable (and
/// returns, rather than hang). Restarted on the same socket, the same store
/// works again without being rebuilt.
#[tokio::test]
async fn a_dead_redis_is_unavailable_and_a_restarted_one_is_used_again() {
    let (store, mut server) = make_store(StoreSettings::default()).await;
    let c = client("fault-client");
    let a = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "before", 1000))
            .await
            .unwrap(),
    );
    server.kill();
    let bound = Duration::from_secs(5);
    let outcome = tokio::time::timeout(
        bound,
        store.allocate(&req(c.as_str(), ListFormat::Token, "during", 1000)),
    )
    .await
    .expect("allocate returned");
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    let outcome = tokio::time::timeout(
        bound,
        set(&store, &c, a.list, a.indexes[0], Status::Invalid, 1001),
    )
    .await
    .expect("set_status returned");
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    let outcome = tokio::time::timeout(bound, store.read_list(&a.list))
        .await
        .expect("read_list returned");
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    let outcome = tokio::time::timeout(bound, store.list_version(&ListId::random()))
        .await
        .expect("list_version returned");
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    let outcome = tokio::time::timeout(bound, store.health())
        .await
        .expect("ping returned");
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );

    server.restart();
    // The manager reconnects in the background; give it a bounded number of
    // tries (this is a liveness check, not a timing assertion).
    let mut ok = false;
    for _ in 0..100 {
        if store.health().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the store did not recover after the restart");
    // The restarted server is empty (no persistence): a fresh allocation and
    // a status change work end to end through the same store.
    let b = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "after", 1000))
            .await
            .unwrap(),
    );
    assert_eq!(
        set(&store, &c, b.list, b.indexes[0], Status::Invalid, 1002)
            .await
            .unwrap(),
        SetStatusOutcome::Done { at: 1002 }
    );
    // The old list went with the old server's memory.
    assert!(store.read_list(&a.list).await.unwrap().is_none());
}

/// Bad input gets typed answers, never a panic.
#[tokio::test]
async fn bad_input_gets_typed_answers() {
    let (store, server) = make_store(small(1_000)).await;
    let c = client("input-client");
    let other = client("other-client");
    let mut req = req(c.as_str(), ListFormat::Token, "ok", 1000);
    let a = allocated(store.allocate(&req).await.unwrap());

    for count in [0, 1_001, u32::MAX] {
        req.jti = jti(&format!("count-{count}"));
        req.count = count;
        assert!(
            matches!(store.allocate(&req).await, Err(StoreError::Invalid(_))),
            "count {count}"
        );
    }
    req.count = 1;
    let mut issued: HashSet<u64> = a.indexes.iter().copied().collect();
    for n in 0..3 {
        req.jti = jti(&format!("more-{n}"));
        let b = allocated(store.allocate(&req).await.unwrap());
        assert_eq!(b.list, a.list);
        issued.extend(b.indexes);
    }

    let unknown = ListId::random();
    for (list, idx, who, expected) in [
        (unknown, 0, &c, SetStatusOutcome::ListNotFound),
        (a.list, a.indexes[0], &other, SetStatusOutcome::NotYourList),
        (a.list, 1_000, &c, SetStatusOutcome::NeverIssued),
        (a.list, u64::MAX, &c, SetStatusOutcome::NeverIssued),
    ] {
        assert_eq!(
            set(&store, who, list, idx, Status::Invalid, 1001)
                .await
                .unwrap(),
            expected,
            "{list} {idx} {who}"
        );
    }
    // An index inside the list that was never handed out: the allocator's
    // inverse says so, without anything stored per entry; no version bump.
    let never = (0..1_000).find(|i| !issued.contains(i)).unwrap();
    assert_eq!(
        set(&store, &c, a.list, never, Status::Invalid, 1001)
            .await
            .unwrap(),
        SetStatusOutcome::NeverIssued
    );
    assert_eq!(store.list_version(&a.list).await.unwrap(), Some(0));
    assert!(store.read_list(&unknown).await.unwrap().is_none());
    assert!(store.list_version(&unknown).await.unwrap().is_none());

    // Settings the adapter refuses up front.
    for (redis, settings) in [
        (
            RedisSettings {
                prefix: "has{brace}".into(),
                ..RedisSettings::new(server.url())
            },
            StoreSettings::default(),
        ),
        (RedisSettings::new("not a url"), StoreSettings::default()),
        (RedisSettings::new(server.url()), small(0)),
        (
            RedisSettings::new(server.url()),
            StoreSettings {
                idempotency_window: Duration::ZERO,
                ..StoreSettings::default()
            },
        ),
    ] {
        assert!(
            matches!(
                RedisStore::connect(redis.clone(), settings).await,
                Err(StoreError::Invalid(_))
            ),
            "{redis:?}"
        );
    }
}

/// A corrupt entry value (written behind the adapter's back) is reported as
/// Corrupt, not mistaken for a status.
#[tokio::test]
async fn an_unknown_stored_value_is_corrupt() {
    let (store, server) = make_store(StoreSettings {
        bits: Bits::Four,
        ..StoreSettings::default()
    })
    .await;
    let c = client("corrupt-client");
    let a = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Bitstring, "j", 1000))
            .await
            .unwrap(),
    );
    let keys = store.list_keys(&c, &a.list);
    let idx = a.indexes[0];
    // W3C order, 4 bits: entry idx starts at bit idx*4.
    let reply = server.command(&format!("BITFIELD {} SET u4 {} 9", keys.bytes, idx * 4));
    assert!(reply.starts_with('*'), "{reply}");
    let out = set(&store, &c, a.list, idx, Status::Invalid, 1001).await;
    assert!(matches!(out, Err(StoreError::Corrupt(_))), "{out:?}");
}

/// After SCRIPT FLUSH the adapter's EVALSHA gets NOSCRIPT and falls back to
/// loading the script: every scripted call keeps working.
#[tokio::test]
async fn scripts_are_reloaded_after_a_flush() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let c = client("flush-client");
    let a = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "one", 1000))
            .await
            .unwrap(),
    );
    assert!(server.command("SCRIPT FLUSH").starts_with("+OK"));
    assert!(server.command("SCRIPT EXISTS 0").starts_with('*'));
    allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "two", 1000))
            .await
            .unwrap(),
    );
    assert!(server.command("SCRIPT FLUSH").starts_with("+OK"));
    assert_eq!(
        set(&store, &c, a.list, a.indexes[0], Status::Suspended, 1001)
            .await
            .unwrap(),
        SetStatusOutcome::Done { at: 1001 }
    );
    assert_eq!(store.list_version(&a.list).await.unwrap(), Some(1));
}

/// Idempotency details that depend on the request clock: a record counts
/// until its request's `keep_until`, by the request's clock (not the key's
/// TTL), and then frees the jti.
#[tokio::test]
async fn records_follow_the_request_clock() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let c = client("clock-client");
    let first_req = req(c.as_str(), ListFormat::Bitstring, "j", 10_000);
    let first = allocated(store.allocate(&first_req).await.unwrap());
    let at = |now| AllocateRequest {
        now,
        ..first_req.clone()
    };
    assert_eq!(
        store.allocate(&at(10_000)).await.unwrap(),
        AllocateOutcome::Replayed(first.clone()),
        "a duplicate at once gets the same answer (no in-flight state)"
    );
    let mut changed = at(10_001);
    changed.digest = [7; 32];
    assert_eq!(
        store.allocate(&changed).await.unwrap(),
        AllocateOutcome::Changed
    );
    // The key's TTL is what is left of the record's life at the request.
    let ttl = server.command(&format!("TTL statuslist:{{{c}}}:j:{}", jti("j")));
    let ttl: u64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    assert!((3650..=3660).contains(&ttl), "TTL {ttl}");
    assert_eq!(
        store.allocate(&at(13_659)).await.unwrap(),
        AllocateOutcome::Replayed(first.clone())
    );
    // The record is over: the jti is free again.
    let mut later = at(13_660);
    later.keep_until = 17_320;
    later.status_expiry = 500_000;
    let again = allocated(store.allocate(&later).await.unwrap());
    assert_ne!(again, first);
    // retire-after keeps the latest statusExpiry.
    let mut earlier = req(c.as_str(), ListFormat::Bitstring, "k", 13_660);
    earlier.status_expiry = 400_000;
    allocated(store.allocate(&earlier).await.unwrap());
    let snap = store.read_list(&first.list).await.unwrap().unwrap();
    assert_eq!(snap.meta.allocated, 3);
    assert_eq!(snap.meta.retire_after, 500_000);
    assert_eq!(snap.meta.created_at, 10_000);
}

/// Records written by the previous version (`<digest>D:<lease>:...`) are
/// still answered from after an upgrade, so a retry across the upgrade gets
/// its original answer.
#[tokio::test]
async fn records_of_the_previous_layout_are_replayed() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let c = client("upgrade-client");
    let req = req(c.as_str(), ListFormat::Token, "old", 10_000);
    let first = allocated(store.allocate(&req).await.unwrap());
    let key = format!("statuslist:{{{c}}}:j:{}", jti("old"));
    // Rewrite the record in the old layout, by hand.
    let mut conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let raw: Vec<u8> = ::redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let rest = String::from_utf8(raw[33..].to_vec()).unwrap();
    let parts: Vec<&str> = rest.split(':').collect();
    let mut old = raw[..32].to_vec();
    old.extend_from_slice(
        format!("D:10030:{}:{}:{}:13600", parts[1], parts[2], parts[3]).as_bytes(),
    );
    let _: () = ::redis::cmd("SET")
        .arg(&key)
        .arg(old)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        store.allocate(&req).await.unwrap(),
        AllocateOutcome::Replayed(first)
    );
}

/// A full list makes way for a new one, with its own id and allocator; the
/// old one keeps its entries and stays reachable.
#[tokio::test]
async fn a_full_list_opens_the_next() {
    let (store, _server) = make_store(small(5)).await;
    let c = client("roll-client");
    let mut by_list: HashMap<ListId, Vec<u64>> = HashMap::new();
    for i in 0..12 {
        let mut req = req(c.as_str(), ListFormat::Token, &format!("r{i}"), 1000);
        req.count = if i == 11 { 3 } else { 1 };
        let a = allocated(store.allocate(&req).await.unwrap());
        by_list.entry(a.list).or_default().extend(a.indexes);
    }
    // 11 singles fill 5 + 5 + 1; a batch of 3 fits the third list.
    let mut sizes: Vec<usize> = by_list.values().map(Vec::len).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![4, 5, 5]);
    for (list, idx) in &by_list {
        let mut sorted = idx.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), idx.len());
        let snap = store.read_list(list).await.unwrap().unwrap();
        assert_eq!(snap.meta.allocated, idx.len() as u64);
        assert_eq!(snap.meta.capacity, 5);
    }
}

/// Redis memory of one 131,072-entry 2-bit list after 100,000 allocations
/// and about 10 % revoked: the list itself (bytes, metadata, owner entry)
/// and the per-change times, from `MEMORY USAGE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_of_one_full_size_list() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let store = Arc::new(store);
    let c = client("memory-client");
    let mut req = req(c.as_str(), ListFormat::Token, "batch-0", 1000);
    req.count = 10_000;
    let mut indexes = Vec::new();
    let mut list = None;
    for b in 0..10 {
        req.jti = jti(&format!("batch-{b}"));
        let a = allocated(store.allocate(&req).await.unwrap());
        list = Some(a.list);
        indexes.extend(a.indexes);
    }
    let list = list.unwrap();
    let revoke: Vec<u64> = indexes.iter().copied().step_by(10).collect();
    let mut tasks = Vec::new();
    for chunk in revoke.chunks(2_500) {
        let (store, c, chunk) = (Arc::clone(&store), c.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for idx in chunk {
                let out = set(&*store, &c, list, idx, Status::Invalid, 2000)
                    .await
                    .unwrap();
                assert_eq!(out, SetStatusOutcome::Done { at: 2000 });
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let keys = store.list_keys(&c, &list);
    let usage = |key: &str| -> u64 {
        let reply = server.command(&format!("MEMORY USAGE {key} SAMPLES 0"));
        reply
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("MEMORY USAGE {key}: {reply}"))
    };
    let bytes = usage(&keys.bytes);
    let times = usage(&keys.times);
    let meta = usage(&keys.meta);
    let owner = usage(&keys.owner);
    let list_total = bytes + meta + owner;
    println!(
        "MEMORY USAGE: bytes {bytes}, metadata {meta}, owner {owner} -> list {list_total} B; \
         change times for {} entries {times} B",
        revoke.len()
    );
    assert!(list_total < 48 * 1024, "{list_total}");
    assert_eq!(
        store.list_version(&list).await.unwrap(),
        Some(revoke.len() as u64)
    );
}

/// A list whose bytes are lost (evicted, deleted by hand, a partial restore)
/// fails closed: it is not read as "all VALID", not changed (BITFIELD would
/// silently recreate the string), not allocated from, and readiness names
/// it; restoring the bytes makes it whole again.
#[tokio::test]
async fn a_list_without_its_bytes_fails_closed() {
    let (store, server) = make_store(small(100)).await;
    let c = client("damage-client");
    let a = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "d1", 1000))
            .await
            .unwrap(),
    );
    let revoked = a.indexes[0];
    set(&store, &c, a.list, revoked, Status::Invalid, 1001)
        .await
        .unwrap();
    let b = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "d2", 1000))
            .await
            .unwrap(),
    );
    assert_eq!(b.list, a.list);
    let keys = store.list_keys(&c, &a.list);
    let damaged = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Damaged { list, .. }) if list == a.list);
    let v = store.list_version(&a.list).await.unwrap();
    assert_eq!(server.command(&format!("DEL {}", keys.bytes)).trim(), ":1");
    assert!(damaged(store.list_version(&a.list).await.map(|_| ())));

    assert!(damaged(store.read_list(&a.list).await.map(|_| ())));
    assert!(damaged(
        set(&store, &c, a.list, b.indexes[0], Status::Invalid, 1002)
            .await
            .map(|_| ())
    ));
    assert!(damaged(
        store
            .set_status(&change(&c, a.list, revoked, Status::Invalid, 1002))
            .await
            .map(|_| ())
    ));
    assert!(damaged(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "d3", 1000))
            .await
            .map(|_| ())
    ));
    // Nothing was written: no string recreated, no version bump.
    assert_eq!(
        server.command(&format!("EXISTS {}", keys.bytes)).trim(),
        ":0"
    );
    assert_eq!(
        server.command(&format!("HGET {} v", keys.meta)).trim(),
        format!("${}\r\n{}", v.unwrap().to_string().len(), v.unwrap())
    );
    assert_eq!(store.health().await.unwrap().damaged, vec![a.list]);

    // The wrong length is damage too.
    server.command(&format!("SET {} short", keys.bytes));
    assert!(damaged(store.read_list(&a.list).await.map(|_| ())));

    // Restored (as from a backup): whole again, with the revocation.
    let mut conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut bytes = vec![0u8; 25];
    let (byte, shift) = ListFormat::Token
        .layout()
        .byte_and_shift(Bits::Two, revoked);
    bytes[byte as usize] |= 1 << shift;
    let _: () = ::redis::cmd("SET")
        .arg(&keys.bytes)
        .arg(bytes)
        .query_async(&mut conn)
        .await
        .unwrap();
    let snap = store.read_list(&a.list).await.unwrap().unwrap();
    let list =
        StatusList::from_bytes(ListFormat::Token.layout(), Bits::Two, 100, snap.bytes).unwrap();
    assert_eq!(list.get(revoked).unwrap(), Status::Invalid.value());
    assert!(store.health().await.unwrap().damaged.is_empty());
}

/// A server that may evict keys is reported: readiness carries a warning.
#[tokio::test]
async fn an_evicting_maxmemory_policy_is_reported() {
    let (store, server) = make_store(StoreSettings::default()).await;
    assert!(store.health().await.unwrap().is_clean());
    assert!(
        server
            .command("CONFIG SET maxmemory-policy allkeys-lru")
            .starts_with("+OK")
    );
    let health = store.health().await.unwrap();
    assert_eq!(health.warnings.len(), 1, "{health:?}");
    assert!(health.warnings[0].contains("allkeys-lru"), "{health:?}");
    assert!(health.warnings[0].contains("noeviction"), "{health:?}");
}
