//! The contract suite against the embedded (redb) store, plus what only the
//! embedded store has: one file per process, reopening, and many threads
//! sharing one store.
//!
//! Durability: the contract cases run with [`EmbeddedDurability::None`]
//! (no fsync per commit). They check logic, which fsync does not change, and
//! 200,000 fsynced commits would dominate the suite's run time. The default
//! (fsync on every commit) is what `benches/store.rs` measures and what
//! `reopen_keeps_everything` uses.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;

use statuslist::domain::{ClientId, ListFormat, ListId, Status};
use statuslist::store::{
    AllocateOutcome, AllocateRequest, Allocation, EmbeddedDurability, EmbeddedStore,
    SetStatusOutcome, Store, StoreError, StoreSettings,
};
use tempfile::TempDir;

use crate::contract::{NOW, change, contract_suite, set};

/// A fresh store in its own temporary directory (the guard).
async fn make_store(settings: StoreSettings) -> (EmbeddedStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open_with(
        dir.path().join("statuslist.redb"),
        settings,
        EmbeddedDurability::None,
    )
    .unwrap();
    (store, dir)
}

contract_suite!(make_store);

/// Set in the child process of [`second_open_is_a_clear_error`]: the file to
/// try to open.
const CHILD_ENV: &str = "STATUSLIST_TEST_OPEN_CHILD";
const CHILD_MARK: &str = "CHILD-RESULT: ";

/// Runs this very test in a child process that tries to open `path`, and
/// returns what it printed.
fn open_in_child(path: &std::path::Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "embedded::second_open_is_a_clear_error",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "child failed: {stdout}");
    stdout
        .lines()
        .find_map(|l| l.split_once(CHILD_MARK).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("child printed no result: {stdout}"))
        .to_owned()
}

/// redb locks the file: a second store, in this process or another one, gets
/// a clear error naming the file, and the file opens again once released.
#[test]
fn second_open_is_a_clear_error() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        // Child: report what opening gave, for the parent to check.
        match EmbeddedStore::open(&path, StoreSettings::default()) {
            Ok(_) => println!("{CHILD_MARK}opened"),
            Err(e) => println!("{CHILD_MARK}{e}"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("dirs").join("store.redb");
    let first = EmbeddedStore::open(&path, StoreSettings::default()).unwrap();
    assert!(path.exists(), "the parent directories are created");

    let err = EmbeddedStore::open(&path, StoreSettings::default()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("already in use"), "{text}");

    let child = open_in_child(&path);
    assert!(child.contains("already in use"), "{child}");
    assert!(child.contains(&path.display().to_string()), "{child}");

    drop(first);
    assert_eq!(open_in_child(&path), "opened");
    EmbeddedStore::open(&path, StoreSettings::default()).unwrap();
}

/// With the default durability, everything is in the file: a reopened store
/// has the lists, statuses, versions and idempotency records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let settings = StoreSettings {
        capacity: 100,
        ..StoreSettings::default()
    };
    let client = ClientId::parse("c1").unwrap();
    let req = AllocateRequest {
        client: client.clone(),
        format: ListFormat::Bitstring,
        jti: "reopen".into(),
        digest: [4; 32],
        status_expiry: NOW + 10,
        count: 2,
        now: NOW,
        keep_until: NOW + 3660,
    };
    let suspend = change(&client, ListId::random(), 0, Status::Suspended, NOW + 5);
    let (allocation, snapshot) = {
        let store = EmbeddedStore::open(&path, settings.clone()).unwrap();
        let AllocateOutcome::Allocated(a) = store.allocate(&req).await.unwrap() else {
            panic!("not allocated");
        };
        let suspend = statuslist::store::StatusChange {
            list: a.list,
            idx: a.indexes[1],
            ..suspend.clone()
        };
        store.set_status(&suspend).await.unwrap();
        let snap = store.read_list(&a.list).await.unwrap().unwrap();
        (a, snap)
    };
    let store = EmbeddedStore::open(&path, settings).unwrap();
    assert_eq!(
        store.read_list(&allocation.list).await.unwrap(),
        Some(snapshot)
    );
    assert_eq!(
        store.allocate(&req).await.unwrap(),
        AllocateOutcome::Replayed(allocation.clone())
    );
    assert_eq!(
        set(
            &store,
            &client,
            allocation.list,
            allocation.indexes[1],
            Status::Suspended,
            NOW + 9
        )
        .await
        .unwrap(),
        SetStatusOutcome::Already { at: Some(NOW + 5) }
    );
    // The change request's record survived too: its replay is answered.
    let replay = statuslist::store::StatusChange {
        list: allocation.list,
        idx: allocation.indexes[1],
        now: NOW + 9,
        ..suspend
    };
    assert_eq!(
        store.set_status(&replay).await.unwrap(),
        SetStatusOutcome::Done { at: NOW + 5 }
    );
    // The next allocation continues the same list's counter.
    let next = AllocateRequest {
        jti: "reopen-2".into(),
        ..req
    };
    let AllocateOutcome::Allocated(b) = store.allocate(&next).await.unwrap() else {
        panic!("not allocated");
    };
    assert_eq!(b.list, allocation.list);
    let meta = store.read_list(&b.list).await.unwrap().unwrap().meta;
    assert_eq!(meta.allocated, 4);
}

/// 16 OS threads, each with its own runtime, share one store: 5,000 requests
/// each, every tenth replaying an earlier completed jti of the same thread.
/// No (list, idx) is handed out twice and every replay returns its original
/// allocation.
#[test]
fn threads_allocate_without_duplicates() {
    const THREADS: usize = 16;
    const REQUESTS: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings {
        capacity: 10_000,
        ..StoreSettings::default()
    };
    let store = Arc::new(
        EmbeddedStore::open_with(
            dir.path().join("t.redb"),
            settings.clone(),
            EmbeddedDurability::None,
        )
        .unwrap(),
    );
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let client = ClientId::parse("threads").unwrap();
                    let req = |i: usize| AllocateRequest {
                        client: client.clone(),
                        format: ListFormat::Token,
                        jti: format!("t{t}-{i}"),
                        digest: [u8::try_from(i % 251).unwrap(); 32],
                        status_expiry: NOW + 60,
                        count: 1,
                        now: NOW,
                        keep_until: NOW + 3660,
                    };
                    let mut fresh: Vec<Allocation> = Vec::new();
                    let mut by_jti: std::collections::HashMap<usize, Allocation> =
                        std::collections::HashMap::new();
                    let mut replays = 0;
                    for i in 0..REQUESTS {
                        if i % 10 == 9 {
                            // Replay the request made five steps ago.
                            let outcome = store.allocate(&req(i - 5)).await.unwrap();
                            assert_eq!(
                                outcome,
                                AllocateOutcome::Replayed(by_jti[&(i - 5)].clone()),
                                "thread {t} request {i}"
                            );
                            replays += 1;
                            continue;
                        }
                        let r = req(i);
                        let AllocateOutcome::Allocated(a) = store.allocate(&r).await.unwrap()
                        else {
                            panic!("thread {t} request {i} not allocated");
                        };
                        if i % 10 == 4 {
                            by_jti.insert(i, a.clone());
                        }
                        fresh.push(a);
                    }
                    assert_eq!(replays, REQUESTS / 10);
                    fresh
                })
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut lists: HashSet<ListId> = HashSet::new();
    let mut total = 0u64;
    for h in handles {
        for a in h.join().unwrap() {
            for idx in &a.indexes {
                assert!(*idx < settings.capacity);
                assert!(seen.insert((a.list, *idx)), "duplicate ({}, {idx})", a.list);
                total += 1;
            }
            lists.insert(a.list);
        }
    }
    assert_eq!(total, (THREADS * REQUESTS * 9 / 10) as u64);
    // Every list's counter matches what was handed out from it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counted: u64 = rt.block_on(async {
        let mut sum = 0;
        for list in &lists {
            sum += store.read_list(list).await.unwrap().unwrap().meta.allocated;
        }
        sum
    });
    assert_eq!(counted, total);
}

/// A list whose bytes are missing from the file (a partial restore, a
/// hand-edited file) fails closed: not read as "all VALID", not changed, not
/// allocated from, and readiness names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_without_its_bytes_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let settings = StoreSettings {
        capacity: 100,
        ..StoreSettings::default()
    };
    let client = ClientId::parse("c1").unwrap();
    let req = |jti: &str| AllocateRequest {
        client: client.clone(),
        format: ListFormat::Token,
        jti: jti.into(),
        digest: [4; 32],
        status_expiry: NOW + 10,
        count: 1,
        now: NOW,
        keep_until: NOW + 3660,
    };
    let a = {
        let store = EmbeddedStore::open(&path, settings.clone()).unwrap();
        let AllocateOutcome::Allocated(a) = store.allocate(&req("d1")).await.unwrap() else {
            panic!("not allocated");
        };
        set(&store, &client, a.list, a.indexes[0], Status::Invalid, NOW)
            .await
            .unwrap();
        a
    };
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut bytes = txn
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("list_bytes"))
                .unwrap();
            assert!(bytes.remove(a.list.as_str()).unwrap().is_some());
        }
        txn.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path, settings).unwrap();
    let damaged = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Damaged { list, .. }) if list == a.list);
    assert!(damaged(store.read_list(&a.list).await.map(|_| ())));
    assert!(damaged(
        set(
            &store,
            &client,
            a.list,
            a.indexes[0],
            Status::Suspended,
            NOW
        )
        .await
        .map(|_| ())
    ));
    assert!(damaged(store.allocate(&req("d2")).await.map(|_| ())));
    assert_eq!(store.health().await.unwrap().damaged, vec![a.list]);
    assert!(damaged(store.list_version(&a.list).await.map(|_| ())));
}
