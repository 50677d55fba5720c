//! The Redis adapter against a private `redis-server` per test: the shared
//! contract suite, plus what only Redis has (many connections at once,
//! a server that dies and returns, scripts flushed, memory per list).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use statuslist::domain::events::{EventKind, EventSeed};
use statuslist::domain::{Bits, ListFormat, ListId, SortOrder, Status, StatusList, StatusSet};
use statuslist::ports::{
    AllocateOutcome, AllocateRequest, Allocation, EntryItem, EntryPage, EntryQuery, Failure, Lease,
    Outbox, RefChangeReport, SetStatusOutcome, Store, StoreError, StoreSettings, TakeRequest,
};
use statuslist::store::redis::{RedisSettings, RedisStore};

use crate::contract::{
    self, NOW, all_pages, allocated, change, client, contract_suite, done, everything, jti,
    ref_change, ref_req, req, set,
};
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
/// `rediss://` with `store.tls_ca_file`: the store speaks TLS to a Redis
/// whose certificate a private CA signed, and refuses to connect when it
/// does not trust that CA (the system's roots) or when the file holds no
/// certificate.
#[tokio::test]
async fn tls_to_a_redis_signed_by_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let tls = crate::support::redis_cluster::TlsFiles::make(certs.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (cert, key, ca_pem) = (path(&tls.cert), path(&tls.key), path(&tls.ca));
    let _server = RedisServer::start_with_args(&[
        "--tls-port",
        &port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca_pem,
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{port}");
    let settings = |ca: Option<&str>| {
        let mut redis = RedisSettings::new(url.clone());
        redis.command_timeout = Duration::from_secs(5);
        redis.tls_ca_file = ca.map(Into::into);
        redis
    };

    let store = RedisStore::connect(settings(Some(&ca_pem)), StoreSettings::default())
        .await
        .expect("TLS with the private CA");
    let c = client("tls-client");
    let a = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "over-tls", NOW))
            .await
            .unwrap(),
    );
    let snapshot = store.read_list(&a.list).await.unwrap().expect("the list");
    assert_eq!(snapshot.meta.allocated, 1);

    // The system's roots do not know the private CA.
    let untrusted = RedisStore::connect(settings(None), StoreSettings::default()).await;
    assert!(untrusted.is_err(), "connected without trusting the CA");
    // A file that is no certificate is named in the error.
    let bad = RedisStore::connect(settings(Some(&key)), StoreSettings::default()).await;
    match bad {
        Err(StoreError::Invalid(why)) => assert!(why.contains("store.tls_ca_file"), "{why}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// A master that refuses writes for want of replicas (`min-replicas-to-write`,
/// the setting the README offers to close the failover window) makes writes
/// unavailable (503, retryable), not failed (500), and they succeed again
/// once it accepts them.
#[tokio::test]
async fn writes_refused_for_want_of_replicas_are_unavailable() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let c = client("noreplicas");
    assert!(
        server
            .command("CONFIG SET min-replicas-to-write 1")
            .starts_with("+OK")
    );
    let outcome = store
        .allocate(&req(c.as_str(), ListFormat::Token, "refused", NOW))
        .await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(
        server
            .command("CONFIG SET min-replicas-to-write 0")
            .starts_with("+OK")
    );
    let a = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "refused", NOW))
            .await
            .unwrap(),
    );
    assert_eq!(a.indexes.len(), 1);
}

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
        ..small(100)
    })
    .await;
    let c = client("corrupt-client");
    let a = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Bitstring, "j", 1000))
            .await
            .unwrap(),
    );
    let keys = store.list_keys(&a.list).await.unwrap().unwrap();
    assert_eq!(keys.chunks.len(), 1, "50 bytes are one chunk");
    let idx = a.indexes[0];
    // W3C order, 4 bits: entry idx starts at bit idx*4.
    let reply = server.command(&format!("BITFIELD {} SET u4 {} 9", keys.chunks[0], idx * 4));
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
    // The record's shard (the only one: the table is new) lives as long as
    // is left of the record's life at the request, and 300 s more (so that
    // its TTL is renewed once per 300 s, not on every write).
    assert_eq!(
        store.record_keys(&c).await.unwrap(),
        vec![
            format!("statuslist:{{{c}}}:r"),
            format!("statuslist:{{{c}}}:r:0")
        ]
    );
    let ttl = server.command(&format!("TTL statuslist:{{{c}}}:r:0"));
    let ttl: u64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    assert!((3950..=3960).contains(&ttl), "TTL {ttl}");
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

/// Records written by earlier versions (one string per jti, `j:<jti>`: an
/// allocation as `I:` or, before that, `D:<lease>:`, a change as `C:`) are
/// still answered from after an upgrade, so a retry across the upgrade gets
/// its original answer, and a jti they hold cannot be used for anything else.
#[tokio::test]
async fn records_of_the_previous_layouts_are_replayed() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let c = client("upgrade-client");
    let first = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "first", 10_000))
            .await
            .unwrap(),
    );
    let mut conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Records as earlier versions wrote them, by hand: <digest><body>:<end>.
    let legacy = |name: &str, body: String| {
        let r = req(c.as_str(), ListFormat::Token, name, 10_000);
        let mut raw = r.digest.to_vec();
        raw.extend_from_slice(format!("{body}:13600").as_bytes());
        (format!("statuslist:{{{c}}}:j:{}", jti(name)), raw, r)
    };
    let list = first.list;
    let change_req = change(&c, list, first.indexes[0], Status::Invalid, 10_000);
    let mut change_raw = change_req.digest.to_vec();
    change_raw.extend_from_slice(b"C:d:9999:13600");
    let cases = [
        legacy("old-d", format!("D:10030:{list}:0:1")),
        legacy("old-i", format!("I:{list}:0:1")),
        (
            format!("statuslist:{{{c}}}:j:{}", change_req.jti),
            change_raw,
            req(c.as_str(), ListFormat::Token, "unused", 10_000),
        ),
    ];
    for (key, raw, _) in &cases {
        let _: () = ::redis::cmd("SET")
            .arg(key)
            .arg(raw)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for (_, _, r) in &cases[..2] {
        assert_eq!(
            store.allocate(r).await.unwrap(),
            AllocateOutcome::Replayed(first.clone()),
            "{}",
            r.jti
        );
        let mut other = r.clone();
        other.digest = [9; 32];
        assert_eq!(
            store.allocate(&other).await.unwrap(),
            AllocateOutcome::Changed
        );
    }
    // The change record answers its replay with its time and applies
    // nothing; its jti is not free for an allocation.
    assert_eq!(
        store.set_status(&change_req).await.unwrap(),
        SetStatusOutcome::Done { at: 9999 }
    );
    assert_eq!(
        store.read_list(&list).await.unwrap().unwrap().version,
        0,
        "nothing applied"
    );
    let mut reuse = req(c.as_str(), ListFormat::Token, "x", 10_000);
    reuse.jti = change_req.jti.clone();
    assert_eq!(
        store.allocate(&reuse).await.unwrap(),
        AllocateOutcome::Changed
    );
}

/// Lists opened by earlier versions have one bytes string and keep their
/// change times as index → time: they are read, changed and published as
/// before, and a time they hold still answers "already".
#[tokio::test]
async fn lists_of_the_previous_layout_keep_working() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let c = client("old-list-client");
    let a = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "a", 1000))
            .await
            .unwrap(),
    );
    let b = allocated(
        store
            .allocate(&req(c.as_str(), ListFormat::Token, "b", 1000))
            .await
            .unwrap(),
    );
    let keys = store.list_keys(&a.list).await.unwrap().unwrap();
    assert_eq!(keys.chunks.len(), 2, "a 32 KiB list is two chunks");
    let mut conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // Turn it into an old list, by hand: one string, no `cs`, a time for
    // entry a in the old hash with its bit set.
    let mut old = vec![0u8; 32_768];
    let (byte, shift) = ListFormat::Token
        .layout()
        .byte_and_shift(Bits::Two, a.indexes[0]);
    old[byte as usize] |= 1 << shift;
    let _: () = ::redis::pipe()
        .cmd("DEL")
        .arg(&keys.chunks)
        .cmd("SET")
        .arg(&keys.chunks[0])
        .arg(old)
        .cmd("HDEL")
        .arg(&keys.meta)
        .arg("cs")
        .cmd("HSET")
        .arg(&keys.legacy_times)
        .arg(a.indexes[0])
        .arg(777)
        .query_async(&mut conn)
        .await
        .unwrap();
    // A fresh process (no cached facts) sees the old layout.
    let old_store = connect(&server, StoreSettings::default()).await;
    assert_eq!(
        old_store.list_keys(&a.list).await.unwrap().unwrap().chunks,
        vec![keys.chunks[0].clone()]
    );
    assert_eq!(
        set(&old_store, &c, a.list, a.indexes[0], Status::Invalid, 2000)
            .await
            .unwrap(),
        SetStatusOutcome::Already { at: Some(777) }
    );
    assert_eq!(
        set(
            &old_store,
            &c,
            a.list,
            b.indexes[0],
            Status::Suspended,
            2001
        )
        .await
        .unwrap(),
        SetStatusOutcome::Done { at: 2001 }
    );
    assert_eq!(
        set(
            &old_store,
            &c,
            a.list,
            b.indexes[0],
            Status::Suspended,
            2002
        )
        .await
        .unwrap(),
        SetStatusOutcome::Already { at: Some(2001) }
    );
    let snap = old_store.read_list(&a.list).await.unwrap().unwrap();
    let list =
        StatusList::from_bytes(ListFormat::Token.layout(), Bits::Two, 131_072, snap.bytes).unwrap();
    assert_eq!(list.get(a.indexes[0]).unwrap(), Status::Invalid.value());
    assert_eq!(list.get(b.indexes[0]).unwrap(), Status::Suspended.value());
    assert_eq!(old_store.list_version(&a.list).await.unwrap(), Some(1));
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

/// Redis memory, measured as issue 13 asks: one 131,072-entry 2-bit list
/// after 3,000 `/issue` requests and 1,000 revocations (each its own jti).
/// The list's own keys fit 40 KiB (its bytes no longer land in jemalloc's
/// 40 KiB class alone), the change times cost at most 24 B per changed
/// entry, and an idempotency record at most 64 B, every record shard in
/// Redis's compact encoding. `cargo bench --bench redis_alloc` prints the
/// figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_of_one_full_size_list() {
    const ISSUES: usize = 3_000;
    const REVOCATIONS: usize = 1_000;
    let (store, server) = make_store(StoreSettings::default()).await;
    let store = Arc::new(store);
    let c = client("memory-client");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (store, c) = (Arc::clone(&store), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in (t..ISSUES).step_by(8) {
                let r = req(c.as_str(), ListFormat::Token, &format!("issue-{i}"), 1000);
                got.push(allocated(store.allocate(&r).await.unwrap()));
            }
            got
        }));
    }
    let mut issued = Vec::new();
    for t in tasks {
        issued.extend(t.await.unwrap());
    }
    let list = issued[0].list;
    assert!(issued.iter().all(|a| a.list == list), "one list");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (store, c) = (Arc::clone(&store), c.clone());
        let mine: Vec<u64> = issued
            .iter()
            .skip(t)
            .step_by(8)
            .take(REVOCATIONS / 8)
            .map(|a| a.indexes[0])
            .collect();
        tasks.push(tokio::spawn(async move {
            for idx in mine {
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
    let usage = |key: &str| -> u64 {
        let reply = server.command(&format!("MEMORY USAGE {key} SAMPLES 0"));
        reply
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("MEMORY USAGE {key}: {reply}"))
    };
    let keys = store.list_keys(&list).await.unwrap().unwrap();
    let chunks: u64 = keys.chunks.iter().map(|k| usage(k)).sum();
    let (meta, owner, times) = (usage(&keys.meta), usage(&keys.owner), usage(&keys.times));
    let list_total = chunks + meta + owner;
    let records = store.record_keys(&c).await.unwrap();
    let record_bytes: u64 = records.iter().map(|k| usage(k)).sum();
    let held = ISSUES + REVOCATIONS;
    println!(
        "MEMORY USAGE: chunks {chunks}, metadata {meta}, owner {owner} -> list {list_total} B; \
         change times {times} B for {REVOCATIONS} changes; {} record keys {record_bytes} B \
         for {held} records",
        records.len()
    );
    assert!(list_total <= 40 * 1024, "list keys {list_total} B");
    assert!(
        times <= 24 * REVOCATIONS as u64,
        "{} B per changed entry",
        times as f64 / REVOCATIONS as f64
    );
    assert!(
        record_bytes <= 64 * held as u64,
        "{} B per record",
        record_bytes as f64 / held as f64
    );
    for shard in &records[1..] {
        let encoding = server.command(&format!("OBJECT ENCODING {shard}"));
        assert!(encoding.contains("listpack"), "{shard}: {encoding}");
    }
    assert_eq!(
        store.list_version(&list).await.unwrap(),
        Some(REVOCATIONS as u64)
    );
}

/// The record table grows by splitting shards as records arrive and keeps
/// every record findable (each replay gets its original answer, each
/// changed request is refused); when shards fill with records that are
/// over, pruning them makes room instead of growing the table; and when a
/// quiet client's shards have expired, new requests shrink it again.
#[tokio::test]
async fn the_record_table_grows_prunes_and_shrinks_and_loses_nothing() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let c = client("table-client");
    // Records in a shard: its fields but the shard's own expiry (`~`).
    let hlen = |key: &str| -> usize {
        let n = server.command(&format!("HLEN {key}"));
        let n: usize = n.trim_start_matches(':').trim().parse().unwrap();
        n.saturating_sub(1)
    };
    let issue_all = |prefix: &'static str, n: usize, now: u64| {
        let (store, c) = (&store, &c);
        async move {
            let mut out = Vec::new();
            for i in 0..n {
                let r = req(c.as_str(), ListFormat::Token, &format!("{prefix}-{i}"), now);
                out.push((r.clone(), allocated(store.allocate(&r).await.unwrap())));
            }
            out
        }
    };
    let replays_hold = |issued: Vec<(AllocateRequest, Allocation)>| {
        let store = &store;
        async move {
            for (r, a) in issued {
                let mut later = r.clone();
                later.now += 500;
                assert_eq!(
                    store.allocate(&later).await.unwrap(),
                    AllocateOutcome::Replayed(a)
                );
                later.digest = [3; 32];
                assert_eq!(
                    store.allocate(&later).await.unwrap(),
                    AllocateOutcome::Changed
                );
            }
        }
    };

    let first = issue_all("t", 3_000, 1000).await;
    let grown = store.record_keys(&c).await.unwrap();
    let shards = |keys: &[String]| keys.len() - 1;
    assert!(
        shards(&grown) > 30,
        "{} shards for 3,000 records",
        shards(&grown)
    );
    let sizes: Vec<usize> = grown[1..].iter().map(|k| hlen(k)).collect();
    assert!(sizes.iter().all(|n| *n <= 128), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 3_000, "each record once");
    replays_hold(first).await;

    // Once the first records are over, as many new ones fill the same
    // shards: those that fill up drop the old records instead of splitting.
    let after = 1000 + contract::KEEP;
    let second = issue_all("u", 3_000, after).await;
    let pruned = store.record_keys(&c).await.unwrap();
    let held: usize = pruned[1..].iter().map(|k| hlen(k)).sum();
    assert!(
        shards(&pruned) < shards(&grown) * 3 / 2,
        "{} shards, {} before",
        shards(&pruned),
        shards(&grown)
    );
    // Without pruning every shard that filled would have split and all
    // 6,000 records would be held.
    assert!(held <= 5_000, "{held} records held, of which 3,000 live");
    replays_hold(second.clone()).await;

    // A quiet client: its shards expire with their records (made to expire
    // now, as the hour would); a trickle of requests shrinks the table.
    for k in &pruned[1..] {
        server.command(&format!("PEXPIRE {k} 1"));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let later = after + contract::KEEP;
    let third = issue_all("v", 200, later).await;
    let shrunk = store.record_keys(&c).await.unwrap();
    assert!(
        shards(&shrunk) * 2 < shards(&pruned),
        "{} shards, {} before",
        shards(&shrunk),
        shards(&pruned)
    );
    assert_eq!(
        shrunk[1..].iter().map(|k| hlen(k)).sum::<usize>(),
        200,
        "each record once"
    );
    replays_hold(third).await;
    // The jtis whose records are gone are free again.
    let (r, a) = &second[0];
    let mut reused = r.clone();
    reused.now = later;
    reused.keep_until = later + contract::KEEP;
    let again = allocated(store.allocate(&reused).await.unwrap());
    assert_ne!(&again, a);
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
    let keys = store.list_keys(&a.list).await.unwrap().unwrap();
    assert_eq!(keys.chunks.len(), 1, "25 bytes are one chunk");
    let bytes_key = &keys.chunks[0];
    let damaged = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Damaged { list, .. }) if list == a.list);
    let v = store.list_version(&a.list).await.unwrap();
    assert_eq!(server.command(&format!("DEL {}", bytes_key)).trim(), ":1");
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
        server.command(&format!("EXISTS {}", bytes_key)).trim(),
        ":0"
    );
    assert_eq!(
        server.command(&format!("HGET {} v", keys.meta)).trim(),
        format!("${}\r\n{}", v.unwrap().to_string().len(), v.unwrap())
    );
    assert_eq!(store.health().await.unwrap().damaged, vec![a.list]);

    // The wrong length is damage too.
    server.command(&format!("SET {} short", bytes_key));
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
        .arg(bytes_key)
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

/// Each thread that runs a current-thread runtime (an actix worker) talks
/// to Redis over a connection of its own, so a call never waits for another
/// thread to drive a shared one; a thread whose runtime has shut down gets
/// a new connection with its next runtime.
#[test]
fn each_worker_thread_talks_over_its_own_connection() {
    let server = RedisServer::start();
    let main = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = main.block_on(connect(&server, StoreSettings::default()));
    let a = main
        .block_on(store.allocate(&req("worker-client", ListFormat::Token, "w", 1000)))
        .map(allocated)
        .unwrap();
    let clients = || -> usize {
        let info = server.command("INFO clients");
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    };
    // The shared connection and the one asking.
    let before = clients();
    let worker = |calls: usize| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for _ in 0..calls {
            assert_eq!(rt.block_on(store.list_version(&a.list)).unwrap(), Some(0));
        }
    };
    std::thread::scope(|s| {
        s.spawn(|| worker(3));
        s.spawn(|| worker(3));
    });
    // Count while two worker threads are alive (a thread that ends takes
    // its connection with it).
    let (ready, counted) = (std::sync::mpsc::channel(), std::sync::Barrier::new(3));
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (store, ready, counted) = (&store, ready.0.clone(), &counted);
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                assert_eq!(rt.block_on(store.list_version(&a.list)).unwrap(), Some(0));
                ready.send(()).unwrap();
                counted.wait();
            });
        }
        ready.1.recv().unwrap();
        ready.1.recv().unwrap();
        assert_eq!(clients(), before + 2, "one connection per worker thread");
        counted.wait();
    });
    // One thread, two runtimes in turn: the second gets a working
    // connection, not the dead runtime's.
    std::thread::scope(|s| {
        s.spawn(|| {
            worker(1);
            worker(1);
        });
    });
    // Calls from the multi-thread runtime use the shared connection.
    assert_eq!(main.block_on(store.list_version(&a.list)).unwrap(), Some(0));
}

/// Allocation requests that arrive while a call is in flight share the
/// next script call, and each gets the answer it would have had alone:
/// distinct indexes, new lists opened as the batch fills them, a jti twice
/// in one batch a replay the second time, a changed one refused.
#[tokio::test]
async fn concurrent_allocations_share_script_calls() {
    let (store, server) = make_store(small(10)).await;
    let c = client("batch-client");
    let evalsha_calls = || -> u64 {
        server
            .command("INFO commandstats")
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let before = evalsha_calls();
    let mut reqs: Vec<AllocateRequest> = (0..40)
        .map(|i| req(c.as_str(), ListFormat::Token, &format!("b-{i}"), 1000))
        .collect();
    reqs.push(reqs[3].clone());
    let mut changed = reqs[5].clone();
    changed.digest = [9; 32];
    reqs.push(changed);
    let outcomes = futures::future::join_all(reqs.iter().map(|r| store.allocate(r))).await;
    let calls = evalsha_calls() - before;
    assert!(
        calls < 20,
        "{calls} script calls for {} requests",
        reqs.len()
    );
    let mut seen = HashSet::new();
    let mut lists = HashSet::new();
    for (i, outcome) in outcomes.iter().take(40).enumerate() {
        let a = match outcome {
            Ok(AllocateOutcome::Allocated(a)) => a,
            other => panic!("request {i}: {other:?}"),
        };
        lists.insert(a.list);
        assert!(
            seen.insert((a.list, a.indexes[0])),
            "request {i}: a duplicate"
        );
    }
    assert_eq!(lists.len(), 4, "40 entries in lists of 10");
    let third = match &outcomes[3] {
        Ok(AllocateOutcome::Allocated(a)) => a.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        outcomes[40].as_ref().unwrap(),
        &AllocateOutcome::Replayed(third)
    );
    assert_eq!(outcomes[41].as_ref().unwrap(), &AllocateOutcome::Changed);
    for list in &lists {
        let snap = store.read_list(list).await.unwrap().unwrap();
        assert_eq!(snap.meta.allocated, 10);
    }
}

/// `MEMORY USAGE` of `key` in bytes (0 for a key that does not exist).
fn memory_usage(server: &RedisServer, key: &str) -> u64 {
    let reply = server.command(&format!("MEMORY USAGE {key} SAMPLES 0"));
    if reply.starts_with("$-1") {
        return 0;
    }
    reply
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("MEMORY USAGE {key}: {reply}"))
}

/// Every command Redis ran so far (scripts' own calls included), from
/// `INFO commandstats`.
fn commands_run(server: &RedisServer) -> u64 {
    server
        .command("INFO commandstats")
        .lines()
        .filter_map(|l| {
            l.split_once(":calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// A list opened by an earlier version (no base `e`, no entry space) stays
/// the current list until the next allocation, which opens a new list
/// rather than take its room; its entries are not listed, and changes to
/// them work as before without touching the listing.
#[tokio::test]
async fn an_untracked_list_is_left_for_a_new_one() {
    let (store, server) = make_store(small(100)).await;
    let c = client("untracked-client");
    let t = ListFormat::Token;
    let a = allocated(
        store
            .allocate(&req(c.as_str(), t, "u1", 1000))
            .await
            .unwrap(),
    );
    let b = allocated(
        store
            .allocate(&req(c.as_str(), t, "u2", 1000))
            .await
            .unwrap(),
    );
    assert_eq!(a.list, b.list);
    // Make it a list of an earlier version: no base, no entry space.
    let keys = store.list_keys(&a.list).await.unwrap().unwrap();
    assert_eq!(
        server.command(&format!("HDEL {} e", keys.meta)).trim(),
        ":1"
    );
    for key in store.entry_space_keys(&c, t) {
        server.command(&format!("DEL {key}"));
    }
    // A process that has not seen the list yet.
    let store = connect(&server, small(100)).await;
    let q = everything(c.as_str(), t);
    assert_eq!(
        store.list_entries(&q).await.unwrap(),
        EntryPage {
            total: 0,
            items: Vec::new()
        }
    );
    let n = allocated(
        store
            .allocate(&req(c.as_str(), t, "u3", 1001))
            .await
            .unwrap(),
    );
    assert_ne!(n.list, a.list, "a new list, not the old one's room");
    assert!(n.next.is_none(), "the whole request in the new list");
    let old = store.read_list(&a.list).await.unwrap().unwrap();
    assert_eq!(old.meta.allocated, 2, "the old list keeps what it has");
    let listed = store.list_entries(&q).await.unwrap();
    assert_eq!(listed.total, 1);
    assert_eq!(
        (listed.items[0].list, listed.items[0].idx),
        (n.list, n.indexes[0])
    );
    assert_eq!(listed.items[0].created_at, 1001);
    // Changes to the old entries work, are published, and list nothing.
    assert_eq!(
        set(&store, &c, a.list, a.indexes[0], Status::Invalid, 1002)
            .await
            .unwrap(),
        SetStatusOutcome::Done { at: 1002 }
    );
    assert_eq!(
        set(&store, &c, a.list, a.indexes[0], Status::Invalid, 1003)
            .await
            .unwrap(),
        SetStatusOutcome::Already { at: Some(1002) }
    );
    assert_eq!(store.list_version(&a.list).await.unwrap(), Some(1));
    assert_eq!(store.list_entries(&q).await.unwrap(), listed);
    let only_old = EntryQuery {
        list: Some(a.list),
        ..q.clone()
    };
    assert_eq!(store.list_entries(&only_old).await.unwrap().total, 0);
    let revoked = EntryQuery {
        statuses: StatusSet::of(&[Status::Invalid]),
        ..q.clone()
    };
    assert_eq!(store.list_entries(&revoked).await.unwrap().total, 0);
    // The new list's entries are listed and their changes too.
    assert_eq!(
        set(&store, &c, n.list, n.indexes[0], Status::Suspended, 1004)
            .await
            .unwrap(),
        SetStatusOutcome::Done { at: 1004 }
    );
    let page = store.list_entries(&q).await.unwrap();
    assert_eq!(
        (page.total, page.items[0].status, page.items[0].updated_at),
        (1, Status::Suspended, 1004)
    );
    let m = allocated(
        store
            .allocate(&req(c.as_str(), t, "u4", 1005))
            .await
            .unwrap(),
    );
    assert_eq!(m.list, n.list, "allocation continues in the new list");
}

/// Captures what the adapter logs, for the one test that must see which
/// path a change by ref took.
#[derive(Clone, Default)]
struct Logged(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A change by ref whose read is answered before a concurrent `/issue`
/// with the same ref is applied, and whose change comes after it: the
/// change script finds the ref moved on (a stale stamp) and the adapter
/// reads again, so every entry bound before the change is answered, the
/// raced ones included, changes.
///
/// One thread, one connection: the change's read is sent before the issue
/// (one script call, since it fits the current list), so Redis runs read,
/// issue, change in that order.
#[tokio::test]
async fn a_change_by_ref_that_races_an_issue_reads_the_ref_again() {
    let logged = Logged::default();
    let writer = logged.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (store, _server) = make_store(small(10)).await;
    let c = client("race-client");
    let t = ListFormat::Token;
    // The ref's first entries spill into a second list.
    allocated(
        store
            .allocate(&ref_req(c.as_str(), t, "r0", None, 7, NOW))
            .await
            .unwrap(),
    );
    let first = allocated(
        store
            .allocate(&ref_req(c.as_str(), t, "r1", Some("order"), 5, NOW))
            .await
            .unwrap(),
    );
    let second = first.next.clone().expect("spilled");
    // Warm up: every script loaded, the connection made, the facts cached.
    allocated(
        store
            .allocate(&ref_req(c.as_str(), t, "w0", Some("warm"), 1, NOW))
            .await
            .unwrap(),
    );
    done(
        store
            .set_status_by_ref(&ref_change(
                c.as_str(),
                t,
                "warm",
                Status::Suspended,
                "wc",
                NOW,
            ))
            .await
            .unwrap(),
    );
    logged.0.lock().unwrap().clear();

    let change = ref_change(c.as_str(), t, "order", Status::Invalid, "rc", NOW + 1);
    // 4 more fit the second list, which holds 2 + 1.
    let issue = ref_req(c.as_str(), t, "r2", Some("order"), 4, NOW + 1);
    let (report, raced) = tokio::join!(store.set_status_by_ref(&change), store.allocate(&issue));
    let raced = allocated(raced.unwrap());
    let report = done(report.unwrap());
    let log = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("reading it again"),
        "the change did not meet the issue: {report:?} {log}"
    );
    assert_eq!(raced.list, second.list);
    assert_eq!(
        report,
        RefChangeReport {
            at: NOW + 1,
            changed: 9,
            skipped: 0,
            already: 0,
            lists: vec![first.list, second.list],
        }
    );
    for (list, idx) in first.entries().chain(raced.entries()) {
        assert_eq!(
            set(&store, &c, list, idx, Status::Invalid, NOW + 2)
                .await
                .unwrap(),
            SetStatusOutcome::Already { at: Some(NOW + 1) },
            "{list} {idx}"
        );
    }
    // One version bump per list changed: the first list once, the second
    // (also holding the warm-up's entry) twice.
    assert_eq!(store.list_version(&first.list).await.unwrap(), Some(1));
    assert_eq!(store.list_version(&second.list).await.unwrap(), Some(2));
    let revoked = EntryQuery {
        statuses: StatusSet::of(&[Status::Invalid]),
        ..everything(c.as_str(), t)
    };
    assert_eq!(store.list_entries(&revoked).await.unwrap().total, 9);
}

/// A ref whose entries lie in two lists, one of them damaged: the change
/// fails closed with Damaged naming it, and nothing changes anywhere (no
/// entry, no version, no listing index, no record: once the list is
/// restored the same request applies in full).
#[tokio::test]
async fn a_damaged_list_in_a_ref_changes_nothing() {
    let (store, server) = make_store(small(10)).await;
    let c = client("ref-damage-client");
    let t = ListFormat::Token;
    let a = allocated(
        store
            .allocate(&ref_req(c.as_str(), t, "d1", Some("dmg"), 8, NOW))
            .await
            .unwrap(),
    );
    let b = allocated(
        store
            .allocate(&ref_req(c.as_str(), t, "d2", Some("dmg"), 5, NOW))
            .await
            .unwrap(),
    );
    let spill = b.next.clone().expect("spans into a second list");
    let keys = store.list_keys(&spill.list).await.unwrap().unwrap();
    let saved = server.command(&format!("STRLEN {}", keys.chunks[0]));
    assert_eq!(
        server.command(&format!("DEL {}", keys.chunks[0])).trim(),
        ":1"
    );
    let revoke = ref_change(c.as_str(), t, "dmg", Status::Invalid, "dx", NOW + 1);
    match store.set_status_by_ref(&revoke).await {
        Err(StoreError::Damaged { list, .. }) => assert_eq!(list, spill.list),
        other => panic!("expected Damaged, got {other:?}"),
    }
    assert_eq!(store.health().await.unwrap().damaged, vec![spill.list]);
    let snap = store.read_list(&a.list).await.unwrap().unwrap();
    assert_eq!(snap.version, 0);
    assert!(snap.bytes.iter().all(|b| *b == 0), "nothing written");
    let listed = all_pages(&store, &everything(c.as_str(), t)).await;
    assert_eq!(listed.len(), 13);
    assert!(
        listed
            .iter()
            .all(|i| i.status == Status::Valid && i.updated_at == NOW)
    );
    for key in store.entry_space_keys(&c, t) {
        if key.ends_with(":x") || key.contains(":z") {
            assert_eq!(
                server.command(&format!("EXISTS {key}")).trim(),
                ":0",
                "{key}"
            );
        }
    }
    // Restored (zeros of the right length): the same request applies.
    let len: usize = saved.trim_start_matches(':').trim().parse().unwrap();
    let mut conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = ::redis::cmd("SET")
        .arg(&keys.chunks[0])
        .arg(vec![0u8; len])
        .query_async(&mut conn)
        .await
        .unwrap();
    let report = done(store.set_status_by_ref(&revoke).await.unwrap());
    assert_eq!((report.changed, report.skipped, report.already), (13, 0, 0));
    assert_eq!(report.lists, vec![a.list, spill.list]);
}

/// Redis memory of an entry space, as issue 14 asks: 20,000 entries issued
/// one per request without a ref, then 1 % of them changed; and 20,000
/// issued five per request, each request with its own ref. What the
/// listing needs (issuance log, registry, refs, change indexes) stays under
/// 48 B per entry without refs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_per_entry_of_an_entry_space() {
    const ENTRIES: usize = 20_000;
    let (store, server) = make_store(StoreSettings::default()).await;
    let store = Arc::new(store);
    let t = ListFormat::Token;
    let issue = |who: &'static str, count: u32, with_ref: bool| {
        let store = Arc::clone(&store);
        async move {
            let requests = ENTRIES / count as usize;
            let mut tasks = Vec::new();
            for k in 0..8 {
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    let mut got = Vec::new();
                    for i in (k..requests).step_by(8) {
                        let name = format!("{who}-{i}");
                        let r = with_ref.then(|| format!("issuance {i:08}"));
                        // A second apart every 100 requests, as at 100/s.
                        let now = NOW + (i / 100) as u64;
                        let request = ref_req(who, t, &name, r.as_deref(), count, now);
                        got.push(allocated(store.allocate(&request).await.unwrap()));
                    }
                    got
                }));
            }
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            all
        }
    };
    let space_bytes = |who: &str| -> u64 {
        store
            .entry_space_keys(&client(who), t)
            .iter()
            .map(|k| memory_usage(&server, k))
            .sum()
    };

    let plain = issue("mem-plain", 1, false).await;
    let issued = space_bytes("mem-plain");
    // 1 % changed, a third each to INVALID, SUSPENDED and back to VALID.
    let c = client("mem-plain");
    for (i, a) in plain.iter().step_by(100).enumerate() {
        let target = [Status::Invalid, Status::Suspended, Status::Suspended][i % 3];
        set(&*store, &c, a.list, a.indexes[0], target, NOW + 500)
            .await
            .unwrap();
        if i % 3 == 2 {
            set(&*store, &c, a.list, a.indexes[0], Status::Valid, NOW + 501)
                .await
                .unwrap();
        }
    }
    let changed = space_bytes("mem-plain");
    let refs = issue("mem-refs", 5, true).await;
    assert_eq!(refs.iter().map(Allocation::len).sum::<usize>(), ENTRIES);
    let with_refs = space_bytes("mem-refs");
    let per = |b: u64| b as f64 / ENTRIES as f64;
    println!(
        "entry space MEMORY USAGE for {ENTRIES} entries: {issued} B issued one by one without a \
         ref ({:.1} B/entry), {changed} B with 1 % changed ({:.1} B/entry); {with_refs} B issued \
         five at a time, each with its own ref ({:.1} B/entry)",
        per(issued),
        per(changed),
        per(with_refs)
    );
    assert!(per(issued) < 48.0, "{:.1} B per entry", per(issued));
    assert!(per(changed) < 48.0, "{:.1} B per entry", per(changed));
    assert!(per(with_refs) < 64.0, "{:.1} B per entry", per(with_refs));
}

/// A page deep in a space costs about what the first page costs: the
/// listing never walks what precedes the page. Counted in Redis commands
/// (a script's own calls included), on 20,000 entries of which 1 %
/// changed, for each kind of query; and every deep page is the slice of
/// the whole listing it should be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_page_costs_what_a_first_page_costs() {
    const ENTRIES: u64 = 20_000;
    let (store, server) = make_store(small(4_096)).await;
    let store = Arc::new(store);
    let c = client("deep-client");
    let t = ListFormat::Token;
    let mut tasks = Vec::new();
    for k in 0..8u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in (k..ENTRIES / 4).step_by(8) {
                let r = (i % 10 == 0).then(|| format!("ref {}", i % 30));
                let request = ref_req(
                    "deep-client",
                    t,
                    &format!("d{i}"),
                    r.as_deref(),
                    4,
                    NOW + i / 50,
                );
                got.push(allocated(store.allocate(&request).await.unwrap()));
            }
            got
        }));
    }
    let mut issued = Vec::new();
    for task in tasks {
        issued.extend(task.await.unwrap());
    }
    let entries: Vec<(ListId, u64)> = issued.iter().flat_map(Allocation::entries).collect();
    assert_eq!(entries.len() as u64, ENTRIES);
    for (i, (list, idx)) in entries.iter().step_by(100).enumerate() {
        let target = [Status::Invalid, Status::Suspended][i % 2];
        set(&*store, &c, *list, *idx, target, NOW + 1_000 + i as u64)
            .await
            .unwrap();
    }
    let base = everything(c.as_str(), t);
    let lists: HashSet<ListId> = entries.iter().map(|(l, _)| *l).collect();
    let some_list = *lists.iter().next().unwrap();
    let shapes = [
        base.clone(),
        EntryQuery {
            order: SortOrder::Asc,
            ..base.clone()
        },
        EntryQuery {
            statuses: StatusSet::of(&[Status::Invalid, Status::Suspended]),
            ..base.clone()
        },
        EntryQuery {
            statuses: StatusSet::of(&[Status::Valid]),
            updated_since: Some(NOW + 20),
            updated_until: Some(NOW + 1_100),
            ..base.clone()
        },
        EntryQuery {
            list: Some(some_list),
            order: SortOrder::Asc,
            ..base.clone()
        },
        EntryQuery {
            issuance_ref: Some(contract::iref("ref 10")),
            ..base.clone()
        },
    ];
    for shape in shapes {
        let whole = all_pages(&*store, &shape).await;
        assert!(!whole.is_empty(), "{shape:?}");
        let mut costs = Vec::new();
        for offset in [0, whole.len() as u64 / 2, whole.len() as u64 - 7] {
            let q = EntryQuery {
                offset,
                limit: 100,
                ..shape.clone()
            };
            let before = commands_run(&server);
            let page = store.list_entries(&q).await.unwrap();
            costs.push(commands_run(&server) - before);
            assert_eq!(page.total, whole.len() as u64, "{q:?}");
            let want: Vec<EntryItem> = whole
                .iter()
                .skip(offset as usize)
                .take(100)
                .cloned()
                .collect();
            assert_eq!(page.items, want, "{q:?}");
        }
        println!(
            "{} entries, commands per page at the start, middle, end: {costs:?}",
            whole.len()
        );
        // A walk of what precedes the page would be thousands.
        assert!(costs.iter().all(|c| *c < 2_500), "{costs:?} for {shape:?}");
    }
}

/// A seed for one write of the outbox tests.
fn event_seed(nonce: u64) -> EventSeed {
    EventSeed {
        ms: NOW * 1000,
        nonce,
    }
}

/// A take of `who`'s events by `consumer` at `now_ms` (30 s leases, 1 s
/// rechecks).
fn take_of(who: &str, consumer: &str, now_ms: u64) -> TakeRequest {
    TakeRequest {
        clients: vec![client(who)],
        consumer: consumer.to_owned(),
        now_ms,
        lease: Duration::from_secs(30),
        recheck: Duration::from_secs(1),
        max: 100,
    }
}

/// The keys of the private server whose names end like an outbox key.
async fn outbox_keys(server: &RedisServer) -> Vec<String> {
    let mut conn = ::redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.into_iter()
        .filter(|k| {
            [":ev", ":evq", ":eva", ":evl", ":evx"]
                .iter()
                .any(|s| k.ends_with(s))
        })
        .collect()
}

/// A change that fails because a list is damaged records no event: not for
/// the entry of the damaged list, not for the entries of the whole list the
/// same change by ref would have changed first, not for an allocation from
/// the damaged current list. The same change of a whole list does.
#[tokio::test]
async fn a_failed_change_records_no_event() {
    let (store, server) = make_store(small(10)).await;
    let name = "failing-events";
    let c = client(name);
    let t = ListFormat::Token;
    // Allocated without seeds: no events yet.
    let a = allocated(
        store
            .allocate(&ref_req(name, t, "d1", Some("dmg"), 8, NOW))
            .await
            .unwrap(),
    );
    let b = allocated(
        store
            .allocate(&ref_req(name, t, "d2", Some("dmg"), 5, NOW))
            .await
            .unwrap(),
    );
    let spill = b.next.clone().expect("spans into a second list");
    let keys = store.list_keys(&spill.list).await.unwrap().unwrap();
    assert_eq!(
        server.command(&format!("DEL {}", keys.chunks[0])).trim(),
        ":1"
    );
    // By ref: the first list is whole and comes first, the second is not.
    let mut revoke = ref_change(name, t, "dmg", Status::Invalid, "dx", NOW + 1);
    revoke.events = Some(event_seed(1));
    assert!(matches!(
        store.set_status_by_ref(&revoke).await,
        Err(StoreError::Damaged { .. })
    ));
    let mut one = change(&c, spill.list, spill.indexes[0], Status::Invalid, NOW + 1);
    one.events = Some(event_seed(2));
    assert!(matches!(
        store.set_status(&one).await,
        Err(StoreError::Damaged { .. })
    ));
    let mut issue = ref_req(name, t, "d3", Some("more"), 1, NOW + 1);
    issue.events = Some(event_seed(3));
    assert!(matches!(
        store.allocate(&issue).await,
        Err(StoreError::Damaged { .. })
    ));
    assert_eq!(store.pending(&c).await.unwrap(), 0);
    assert!(outbox_keys(&server).await.is_empty());
    // A change of the whole list does record its event.
    let mut fine = change(&c, a.list, a.indexes[0], Status::Invalid, NOW + 2);
    fine.events = Some(event_seed(4));
    assert!(matches!(
        store.set_status(&fine).await.unwrap(),
        SetStatusOutcome::Done { .. }
    ));
    assert_eq!(store.pending(&c).await.unwrap(), 1);
}

/// Events and their states live in Redis's data set: after a kill -9 and a
/// restart of a durable server, a held event is still held until its lease
/// ends (then handed out as attempt 2), an event held back by it is still
/// held back, a dead letter is still listed, and the consumer group goes on
/// where it was (nothing taken is waiting again).
#[tokio::test]
async fn events_survive_a_restart_of_a_durable_server() {
    let mut server = RedisServer::start_durable();
    let store = connect(&server, StoreSettings::default()).await;
    let name = "durable-events";
    let c = client(name);
    let t = ListFormat::Token;
    let now_ms = NOW * 1000;
    let mut issue = ref_req(name, t, "i1", Some("r1"), 2, NOW);
    issue.events = Some(event_seed(10));
    let a = allocated(store.allocate(&issue).await.unwrap());
    let mut revoke = change(&c, a.list, a.indexes[0], Status::Invalid, NOW + 1);
    revoke.events = Some(event_seed(11));
    store.set_status(&revoke).await.unwrap();
    let mut other = ref_req(name, t, "i2", Some("r2"), 1, NOW + 2);
    other.events = Some(event_seed(12));
    allocated(store.allocate(&other).await.unwrap());
    // Both issue events are handed out; the revocation waits behind the
    // first.
    let first = store.take(&take_of(name, "a", now_ms)).await.unwrap();
    let ids: Vec<_> = first.iter().map(|l| l.event.id).collect();
    assert_eq!(ids, vec![event_seed(10).id(0), event_seed(12).id(0)]);
    let dead: &Lease = &first[1];
    store
        .dead_letter(&Failure {
            client: c.clone(),
            handle: dead.handle.clone(),
            attempt: dead.attempt,
            error: "HTTP 503".into(),
            now_ms: now_ms + 10,
        })
        .await
        .unwrap();
    assert_eq!(store.pending(&c).await.unwrap(), 2);
    drop(store);

    server.kill();
    server.restart();
    let store = connect(&server, StoreSettings::default()).await;
    assert_eq!(store.pending(&c).await.unwrap(), 2);
    let letters = store.dead_letters(&c).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event, dead.event);
    assert_eq!(
        (
            letters[0].attempts,
            letters[0].dead_at,
            letters[0].error.as_str()
        ),
        (1, now_ms + 10, "HTTP 503")
    );
    // Still held (and the revocation still held back) until the lease ends.
    assert!(
        store
            .take(&take_of(name, "b", now_ms + 29_999))
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .take(&take_of(name, "b", now_ms + 30_000))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event, first[0].event);
    assert_eq!(again[0].attempt, 2);
    // The group's pending list names the new holder.
    let holder = server.command(&format!(
        "XPENDING statuslist:{{{name}}}:ev dispatch - + 10 b"
    ));
    assert!(holder.contains(&again[0].handle), "{holder}");
    store.delivered(&c, &again[0].handle).await.unwrap();
    let next = store
        .take(&take_of(name, "b", now_ms + 31_001))
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event.kind, EventKind::EntryRevoked);
    assert_eq!(next[0].event.entries, vec![(a.list, a.indexes[0])]);
    assert_eq!(next[0].attempt, 1);
    store.delivered(&c, &next[0].handle).await.unwrap();
    let back = store.redeliver(&c, &[dead.event.id]).await.unwrap();
    assert_eq!(back, vec![dead.event.id]);
    let last = store
        .take(&take_of(name, "b", now_ms + 40_001))
        .await
        .unwrap();
    assert_eq!((last.len(), last[0].attempt), (1, 1));
    store.delivered(&c, &last[0].handle).await.unwrap();
    assert_eq!(store.pending(&c).await.unwrap(), 0);
    // Delivered events leave no per-entry pointer behind.
    assert_eq!(
        server
            .command(&format!("EXISTS statuslist:{{{name}}}:evl"))
            .trim(),
        ":0"
    );
}

/// Writes without an event seed (clients without a webhook) are what they
/// were before events: no outbox key appears and no stream command runs,
/// and a take for such a client creates nothing either.
#[tokio::test]
async fn writes_without_a_seed_touch_no_outbox() {
    let (store, server) = make_store(small(10)).await;
    let name = "quiet-client";
    let c = client(name);
    let t = ListFormat::Token;
    let a = allocated(
        store
            .allocate(&ref_req(name, t, "q1", Some("r"), 8, NOW))
            .await
            .unwrap(),
    );
    // Into a second list too.
    allocated(
        store
            .allocate(&ref_req(name, t, "q0", Some("r"), 4, NOW))
            .await
            .unwrap(),
    );
    set(&store, &c, a.list, a.indexes[0], Status::Suspended, NOW + 1)
        .await
        .unwrap();
    done(
        store
            .set_status_by_ref(&ref_change(name, t, "r", Status::Invalid, "q2", NOW + 2))
            .await
            .unwrap(),
    );
    assert!(outbox_keys(&server).await.is_empty());
    let stats = server.command("INFO commandstats");
    for cmd in ["xadd", "xgroup", "xreadgroup", "xrange", "xlen"] {
        assert!(
            !stats.contains(&format!("cmdstat_{cmd}:")),
            "{cmd}: {stats}"
        );
    }
    assert!(
        store
            .take(&take_of(name, "a", NOW * 1000))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.pending(&c).await.unwrap(), 0);
    assert!(store.dead_letters(&c).await.unwrap().is_empty());
    assert!(outbox_keys(&server).await.is_empty());
}

/// A change by ref spanning two lists records one event per entry it
/// changed, in allocation order, each with its own entry's index and the
/// ref; the entries another change left alone get none, and each event of
/// an entry changed before waits behind that entry's earlier event.
#[tokio::test]
async fn a_change_by_ref_across_lists_records_each_entry_in_order() {
    let (store, _server) = make_store(small(10)).await;
    let name = "spread-events";
    let c = client(name);
    let t = ListFormat::Token;
    let a = allocated(
        store
            .allocate(&ref_req(name, t, "s1", Some("r"), 8, NOW))
            .await
            .unwrap(),
    );
    let b = allocated(
        store
            .allocate(&ref_req(name, t, "s2", Some("r"), 5, NOW))
            .await
            .unwrap(),
    );
    let spill = b.next.clone().expect("spans into a second list");
    let mut entries: Vec<(ListId, u64)> = a.entries().collect();
    entries.extend(b.entries());
    assert_eq!(entries.len(), 13);
    // Entry 3 revoked first (an event), so the suspension skips it.
    let mut first = change(&c, entries[3].0, entries[3].1, Status::Invalid, NOW + 1);
    first.events = Some(event_seed(20));
    store.set_status(&first).await.unwrap();
    let mut by_ref = ref_change(name, t, "r", Status::Suspended, "s3", NOW + 2);
    by_ref.events = Some(event_seed(21));
    assert_eq!(
        done(store.set_status_by_ref(&by_ref).await.unwrap()).changed,
        12
    );
    assert_eq!(store.pending(&c).await.unwrap(), 13);
    let got = store.take(&take_of(name, "a", NOW * 1000)).await.unwrap();
    assert_eq!(got.len(), 13);
    assert_eq!(got[0].event.id, event_seed(20).id(0));
    let changed: Vec<(ListId, u64)> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, e)| *e)
        .collect();
    for (k, lease) in got[1..].iter().enumerate() {
        let e = &lease.event;
        assert_eq!(e.id, event_seed(21).id(k as u32));
        assert_eq!(e.kind, EventKind::EntrySuspended);
        assert_eq!(e.entries, vec![changed[k]]);
        assert_eq!(e.issuance_ref, Some(contract::iref("r")));
        assert_eq!(e.at, NOW + 2);
    }
    assert!(got.iter().any(|l| l.event.entries[0].0 == spill.list));
}
