//! The contract suite against the embedded (redb) store, plus what only the
//! embedded store has: one file per process, reopening, many threads sharing
//! one store, and its failure handling under injected faults (a full disk, a
//! panic in the writer, a stalled disk).
//!
//! Durability: the contract cases run with [`EmbeddedDurability::None`]
//! (no fsync per commit). They check logic, which fsync does not change, and
//! 200,000 fsynced commits would dominate the suite's run time. The default
//! (fsync on every commit) is what `benches/store.rs` measures and what
//! `reopen_keeps_everything` uses.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::TableDefinition;
use statuslist::domain::events::{EventId, EventKind, EventSeed};
use statuslist::domain::{
    Allocator, AllocatorKey, Bits, ClientId, ListFormat, ListId, Status, StatusList, StatusSet,
};
use statuslist::ports::{
    AllocateOutcome, AllocateRequest, Allocation, EntryPage, EntryQuery, Failure, Lease, Outbox,
    RefChangeOutcome, RefChangeReport, SetStatusOutcome, Store, StoreError, StoreSettings,
    TakeRequest,
};
use statuslist::store::embedded::EmbeddedOptions;
use statuslist::store::embedded::faults::{Fault, FaultInjector};
use statuslist::store::{EmbeddedDurability, EmbeddedStore};
use tempfile::TempDir;

use crate::contract::{NOW, change, contract_suite, done, everything, ref_change, ref_req, set};

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
        jti: crate::contract::jti("reopen"),
        digest: [4; 32],
        status_expiry: NOW + 10,
        count: 2,
        issuance_ref: None,
        now: NOW,
        keep_until: NOW + 3660,
        events: None,
    };
    let suspend = change(&client, ListId::random(), 0, Status::Suspended, NOW + 5);
    let (allocation, snapshot) = {
        let store = EmbeddedStore::open(&path, settings.clone()).unwrap();
        let AllocateOutcome::Allocated(a) = store.allocate(&req).await.unwrap() else {
            panic!("not allocated");
        };
        let suspend = statuslist::ports::StatusChange {
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
    let replay = statuslist::ports::StatusChange {
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
        jti: crate::contract::jti("reopen-2"),
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
                        jti: crate::contract::jti(&format!("t{t}-{i}")),
                        digest: [u8::try_from(i % 251).unwrap(); 32],
                        status_expiry: NOW + 60,
                        count: 1,
                        issuance_ref: None,
                        now: NOW,
                        keep_until: NOW + 3660,
                        events: None,
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
    let req = |jti: &str| crate::contract::req("c1", ListFormat::Token, jti, NOW);
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

/// The liveness bound of the fault tests: a call that takes longer hung.
const HANG: Duration = Duration::from_secs(10);

/// Fails the test instead of hanging if `f` does not finish within [`HANG`].
async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung instead of answering"))
}

/// Pings until the store is ready again; fails after [`HANG`].
async fn wait_until_ready(store: &EmbeddedStore) {
    let deadline = Instant::now() + HANG;
    loop {
        match bounded("health", store.health()).await {
            Ok(_) => return,
            Err(e) => assert!(Instant::now() < deadline, "never ready again: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clears the faults when dropped: declared after the store, it runs first
/// when a test fails, so dropping the store does not wait on a stalled disk.
struct ClearOnDrop(FaultInjector);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.clear();
    }
}

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
}

fn fault_settings() -> StoreSettings {
    StoreSettings {
        capacity: 1000,
        ..StoreSettings::default()
    }
}

fn fault_req(jti: &str, now: u64) -> AllocateRequest {
    AllocateRequest {
        digest: [7; 32],
        status_expiry: NOW + 1000,
        count: 2,
        ..crate::contract::req("faults", ListFormat::Token, jti, now)
    }
}

/// Allocates `jti` afresh.
async fn allocate_done(store: &EmbeddedStore, jti: &str) -> Allocation {
    let req = fault_req(jti, NOW);
    let outcome = bounded("allocate", store.allocate(&req)).await.unwrap();
    let AllocateOutcome::Allocated(a) = outcome else {
        panic!("{jti}: not a fresh allocation: {outcome:?}");
    };
    a
}

/// What was acknowledged before a fault is all there after it: the
/// allocations replay, the status change holds, and nothing was handed out
/// twice.
async fn assert_acknowledged(store: &EmbeddedStore, done: &[(&str, &Allocation)], revoked: u64) {
    let mut seen = HashSet::new();
    for (jti, a) in done {
        assert_eq!(
            store.allocate(&fault_req(jti, NOW + 2)).await.unwrap(),
            AllocateOutcome::Replayed((*a).clone()),
            "{jti}"
        );
        for idx in &a.indexes {
            assert!(seen.insert((a.list, *idx)), "({}, {idx}) twice", a.list);
        }
    }
    let (_, first) = done[0];
    assert_eq!(
        set(
            store,
            &ClientId::parse("faults").unwrap(),
            first.list,
            revoked,
            Status::Invalid,
            NOW + 3
        )
        .await
        .unwrap(),
        SetStatusOutcome::Already { at: Some(NOW + 1) }
    );
}

/// The scenario of a fault that breaks writing: with `fault` set, an
/// allocation and a status change answer Unavailable (503) and health says
/// not ready, for at least `dwell` (across the store's own retries); once the
/// fault is gone both recover without a restart, and everything acknowledged
/// before is still there, also in the file opened afresh.
async fn unavailable_then_recovers(fault: Fault, file: &str, dwell: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    let faults = FaultInjector::new();
    let store = EmbeddedStore::open_with_faults(
        &path,
        fault_settings(),
        EmbeddedOptions::default(),
        &faults,
    )
    .unwrap();
    let _clear = ClearOnDrop(faults.clone());
    let client = ClientId::parse("faults").unwrap();
    let before = allocate_done(&store, "before").await;
    let revoked = before.indexes[0];
    set(
        &store,
        &client,
        before.list,
        revoked,
        Status::Invalid,
        NOW + 1,
    )
    .await
    .unwrap();

    faults.set(fault);
    assert_unavailable(
        "allocate under the fault",
        bounded("allocate", store.allocate(&fault_req("during", NOW))).await,
    );
    assert!(faults.hits() > 0, "the fault was not exercised");
    let until = Instant::now() + dwell;
    loop {
        assert_unavailable(
            "health under the fault",
            bounded("health", store.health()).await,
        );
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_unavailable(
        "set_status under the fault",
        bounded(
            "set_status",
            store.set_status(&change(
                &client,
                before.list,
                before.indexes[1],
                Status::Suspended,
                NOW + 1,
            )),
        )
        .await,
    );

    faults.clear();
    wait_until_ready(&store).await;
    // The failed request left nothing behind: it is new, not a replay.
    let during = allocate_done(&store, "during").await;
    let after = allocate_done(&store, "after").await;
    let done = [("before", &before), ("during", &during), ("after", &after)];
    assert_acknowledged(&store, &done, revoked).await;

    drop(store);
    let store = EmbeddedStore::open(&path, fault_settings()).unwrap();
    assert_acknowledged(&store, &done, revoked).await;
}

/// A full disk: unavailable and not ready, also after the store's retries (a
/// retry is due at most once a second); once space is freed, recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_unavailable_then_recovers_without_a_restart() {
    unavailable_then_recovers(Fault::DiskFull, "full.redb", Duration::from_millis(1500)).await;
}

/// A panic in the writer (here inside redb's write of the file): the caller
/// gets Unavailable, the store is not ready, the writer thread survives, and
/// once the cause is gone the re-opened file works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_writer_is_unavailable_then_recovers() {
    unavailable_then_recovers(Fault::Panic, "panic.redb", Duration::ZERO).await;
}

/// A stalled disk (an fsync that does not return): calls answer Unavailable
/// once the command timeout passes instead of hanging, `ping` says not ready,
/// and when the disk answers again the stalled write completes (a retry of
/// it is an idempotent replay) while a write whose caller gave up before it
/// started is not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_answers_unavailable_after_the_command_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let options = EmbeddedOptions {
        command_timeout: Duration::from_millis(200),
        ..EmbeddedOptions::default()
    };
    let settings = fault_settings();
    let store = EmbeddedStore::open_with_faults(
        dir.path().join("stall.redb"),
        settings.clone(),
        options,
        &faults,
    )
    .unwrap();
    let _clear = ClearOnDrop(faults.clone());
    assert_eq!(store.command_timeout(), Duration::from_millis(200));
    let client = ClientId::parse("faults").unwrap();
    let before = allocate_done(&store, "before").await;

    faults.set(Fault::Stall);
    assert_unavailable(
        "allocate on a stalled disk",
        bounded("allocate", store.allocate(&fault_req("stalled", NOW))).await,
    );
    // The writer is inside that allocation's fsync (so it will complete).
    let deadline = Instant::now() + HANG;
    while faults.hits() == 0 {
        assert!(Instant::now() < deadline, "the fsync never stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Queued behind it: also Unavailable after the timeout.
    assert_unavailable(
        "set_status behind a stalled write",
        bounded(
            "set_status",
            store.set_status(&change(
                &client,
                before.list,
                before.indexes[0],
                Status::Suspended,
                NOW + 1,
            )),
        )
        .await,
    );
    // The writer has been stuck longer than the timeout: not ready.
    let deadline = Instant::now() + HANG;
    while bounded("health", store.health()).await.is_ok() {
        assert!(Instant::now() < deadline, "ping stayed ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    faults.clear();
    wait_until_ready(&store).await;
    // The stalled allocation was applied once the disk answered: its retry
    // is replayed, never a second allocation.
    assert!(matches!(
        store
            .allocate(&fault_req("stalled", NOW + 1))
            .await
            .unwrap(),
        AllocateOutcome::Replayed(_)
    ));
    // The status change whose caller had gone was skipped: the entry is
    // changed now, not "already" since NOW + 1.
    assert_eq!(
        set(
            &store,
            &client,
            before.list,
            before.indexes[0],
            Status::Suspended,
            NOW + 5
        )
        .await
        .unwrap(),
        SetStatusOutcome::Done { at: NOW + 5 }
    );
}

/// A durable store on `faults` whose callers wait up to [`HANG`], so that a
/// held writer makes them queue instead of time out.
fn patient_store(path: &std::path::Path, faults: &FaultInjector) -> EmbeddedStore {
    let options = EmbeddedOptions {
        command_timeout: HANG,
        ..EmbeddedOptions::default()
    };
    EmbeddedStore::open_with_faults(path, fault_settings(), options, faults).unwrap()
}

/// Holds the writer inside the stalled fsync of an allocation (the
/// returned task), so that what is submitted next all queues behind it and
/// forms one batch once the stall ends.
async fn hold_the_writer(
    store: &EmbeddedStore,
    faults: &FaultInjector,
) -> tokio::task::JoinHandle<Result<AllocateOutcome, StoreError>> {
    faults.set(Fault::Stall);
    let held = store.clone();
    let blocker = tokio::spawn(async move { held.allocate(&fault_req("blocker", NOW)).await });
    let deadline = Instant::now() + HANG;
    while faults.hits() == 0 {
        assert!(Instant::now() < deadline, "the fsync never stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    blocker
}

/// Runs `calls` (all submitted at their first poll, in order, while the
/// writer is held) and then, once they are queued, sets `fault` (None: the
/// stall simply ends).
async fn queued_then<F: std::future::Future>(
    faults: &FaultInjector,
    fault: Fault,
    calls: Vec<F>,
) -> Vec<F::Output> {
    let release = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        faults.set(fault);
    };
    let (answers, ()) = bounded(
        "the batch",
        futures::future::join(futures::future::join_all(calls), release),
    )
    .await;
    answers
}

/// Group commit: 64 concurrent allocations queued behind one write are
/// applied and made durable by one commit (one fsync), not 64, and every one
/// gets its own indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_allocations_share_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let store = patient_store(&dir.path().join("group.redb"), &faults);
    let _clear = ClearOnDrop(faults.clone());
    let blocker = hold_the_writer(&store, &faults).await;
    let before = store.commits();

    let reqs: Vec<_> = (0..64).map(|i| fault_req(&format!("g{i}"), NOW)).collect();
    let answers = queued_then(
        &faults,
        Fault::None,
        reqs.iter().map(|r| store.allocate(r)).collect(),
    )
    .await;
    assert!(matches!(
        blocker.await.unwrap(),
        Ok(AllocateOutcome::Allocated(_))
    ));
    let commits = store.commits() - before;
    // The blocker's commit, then one for all 64 (one each without group
    // commit: 65).
    assert_eq!(
        commits,
        2,
        "64 queued allocations took {} commits",
        commits - 1
    );

    let mut seen = HashSet::new();
    for (i, answer) in answers.into_iter().enumerate() {
        let Ok(AllocateOutcome::Allocated(a)) = answer else {
            panic!("g{i}: {answer:?}");
        };
        for idx in a.indexes {
            assert!(
                seen.insert((a.list, idx)),
                "g{i}: ({}, {idx}) twice",
                a.list
            );
        }
    }
    assert_eq!(seen.len(), 128);
    // Durable: all there in the file opened afresh.
    drop(store);
    let store = EmbeddedStore::open(dir.path().join("group.redb"), fault_settings()).unwrap();
    for r in &reqs {
        let again = AllocateRequest {
            now: NOW + 1,
            ..r.clone()
        };
        assert!(matches!(
            store.allocate(&again).await.unwrap(),
            AllocateOutcome::Replayed(_)
        ));
    }
}

/// Within one batch every request sees the ones before it, as if alone in
/// queue order: the same jti twice is a replay of the first answer, the same
/// jti with another body is refused, and the next new request gets the next
/// index of the list. All of it in one commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_jti_within_one_batch_is_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let store = patient_store(&dir.path().join("dup.redb"), &faults);
    let _clear = ClearOnDrop(faults.clone());
    let blocker = hold_the_writer(&store, &faults).await;
    let before = store.commits();

    let first = fault_req("dup", NOW);
    let again = fault_req("dup", NOW);
    let other_body = AllocateRequest {
        digest: [8; 32],
        ..fault_req("dup", NOW)
    };
    let next = fault_req("next", NOW);
    let reqs = [&first, &again, &other_body, &next];
    let answers = queued_then(
        &faults,
        Fault::None,
        reqs.iter().map(|r| store.allocate(r)).collect(),
    )
    .await;
    let Ok(AllocateOutcome::Allocated(blocked)) = blocker.await.unwrap() else {
        panic!("the blocker was not allocated");
    };
    assert_eq!(
        store.commits() - before,
        2,
        "the four requests took more than one commit"
    );

    let [
        Ok(AllocateOutcome::Allocated(a)),
        again,
        other,
        Ok(AllocateOutcome::Allocated(b)),
    ] = <[_; 4]>::try_from(answers).unwrap()
    else {
        panic!("the first or the last request was not allocated");
    };
    assert_eq!(again, Ok(AllocateOutcome::Replayed(a.clone())));
    assert_eq!(other, Ok(AllocateOutcome::Changed));
    // Allocations fill the list in order: blocker, dup, next.
    assert_eq!((a.list, b.list), (blocked.list, blocked.list));
    let meta = store.read_list(&a.list).await.unwrap().unwrap().meta;
    assert_eq!(meta.allocated, 6, "three allocations of two");
    assert!(a.indexes.iter().all(|i| !b.indexes.contains(i)));
}

/// A request that fails on its own (here: its client's list is damaged)
/// gets its error, and the rest of its batch, before and after it, is
/// committed as if it had not been there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_failing_alone_does_not_fail_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.redb");
    let broken = |jti: &str| crate::contract::req("damaged", ListFormat::Token, jti, NOW);
    // A list of the client "damaged" whose bytes are then lost.
    let lost = {
        let store = EmbeddedStore::open(&path, fault_settings()).unwrap();
        let AllocateOutcome::Allocated(a) = store.allocate(&broken("d0")).await.unwrap() else {
            panic!("not allocated");
        };
        a.list
    };
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("list_bytes"))
            .unwrap()
            .remove(lost.as_str())
            .unwrap();
        txn.commit().unwrap();
    }
    let faults = FaultInjector::new();
    let store = patient_store(&path, &faults);
    let _clear = ClearOnDrop(faults.clone());
    let blocker = hold_the_writer(&store, &faults).await;
    let before = store.commits();

    let reqs = [fault_req("ok-1", NOW), broken("d1"), fault_req("ok-2", NOW)];
    let answers = queued_then(
        &faults,
        Fault::None,
        reqs.iter().map(|r| store.allocate(r)).collect(),
    )
    .await;
    blocker.await.unwrap().unwrap();
    assert_eq!(
        store.commits() - before,
        2,
        "the batch took more than one commit"
    );
    let [
        Ok(AllocateOutcome::Allocated(one)),
        failed,
        Ok(AllocateOutcome::Allocated(two)),
    ] = <[_; 3]>::try_from(answers).unwrap()
    else {
        panic!("a request next to the failed one was not allocated");
    };
    assert!(
        matches!(&failed, Err(StoreError::Damaged { list, .. }) if *list == lost),
        "{failed:?}"
    );
    assert_eq!(one.list, two.list);
    assert_eq!(
        store
            .read_list(&one.list)
            .await
            .unwrap()
            .unwrap()
            .meta
            .allocated,
        6
    );
    drop(store);
    let store = EmbeddedStore::open(&path, fault_settings()).unwrap();
    for (r, a) in [(&reqs[0], &one), (&reqs[2], &two)] {
        assert_eq!(
            store.allocate(r).await.unwrap(),
            AllocateOutcome::Replayed(a.clone())
        );
    }
}

/// A batch whose commit fails (a full disk, a panic while writing) fails
/// every request in it: none is acknowledged, none is on disk, and each
/// one's retry after recovery is a fresh allocation, not a replay.
async fn a_failed_commit_fails_the_whole_batch(fault: Fault, file: &str) {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultInjector::new();
    let store = patient_store(&dir.path().join(file), &faults);
    let _clear = ClearOnDrop(faults.clone());
    let blocker = hold_the_writer(&store, &faults).await;
    let before = store.commits();

    let reqs: Vec<_> = (0..16).map(|i| fault_req(&format!("f{i}"), NOW)).collect();
    let answers = queued_then(
        &faults,
        fault,
        reqs.iter().map(|r| store.allocate(r)).collect(),
    )
    .await;
    // The blocker's own commit may or may not have been through.
    let _ = blocker.await.unwrap();
    for (i, answer) in answers.into_iter().enumerate() {
        assert_unavailable(&format!("f{i}"), answer);
    }
    assert!(
        store.commits() - before <= 1,
        "the failed batch was counted as committed"
    );

    faults.clear();
    wait_until_ready(&store).await;
    for (i, r) in reqs.iter().enumerate() {
        let answer = store
            .allocate(&AllocateRequest {
                now: NOW + 1,
                ..r.clone()
            })
            .await;
        assert!(
            matches!(answer, Ok(AllocateOutcome::Allocated(_))),
            "f{i}: {answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_whole_batch() {
    a_failed_commit_fails_the_whole_batch(Fault::DiskFull, "batch-full.redb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_the_whole_batch() {
    a_failed_commit_fails_the_whole_batch(Fault::Panic, "batch-panic.redb").await;
}

/// Writes, with redb alone, the file an older build left: layout version 1,
/// one list of the client "old" with a version-1 record (no first seq), 3
/// of its 16 entries issued and the first revoked (with its time), that
/// list as the client's current one, and the idempotency record of the
/// issue (format 2, kind 0, digest `[6; 32]`). No entry table. Returns the
/// list and its allocator key.
fn write_a_file_from_before_entry_tracking(path: &std::path::Path) -> (ListId, AllocatorKey) {
    let list = ListId::from_random_bytes([9, 8, 7, 6, 5, 4]);
    let key = AllocatorKey::from_bytes([5; 32]);
    let allocator = Allocator::new(&key, 16).unwrap();
    let first = allocator.permute(0).unwrap();
    let mut entries = StatusList::new(ListFormat::Token.layout(), Bits::Two, 16).unwrap();
    entries.set(first, Status::Invalid.value()).unwrap();
    // ListRecord v1: version, format, bits, capacity, counter, created,
    // retire after, list version, key, client.
    let mut record = vec![1u8, 0, 2];
    for n in [16u64, 3, NOW - 100, NOW + 1000, 1] {
        record.extend_from_slice(&n.to_le_bytes());
    }
    record.extend_from_slice(key.as_bytes());
    record.push(3);
    record.extend_from_slice(b"old");
    // IdemRecord v2, kind 0 (issue): digest, expiry, format, first, count,
    // list.
    let mut issue = vec![2u8, 0];
    issue.extend_from_slice(&[6; 32]);
    issue.extend_from_slice(&(NOW + 3600).to_le_bytes());
    issue.push(0);
    issue.extend_from_slice(&0u64.to_le_bytes());
    issue.extend_from_slice(&3u32.to_le_bytes());
    issue.extend_from_slice(list.as_str().as_bytes());

    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        txn.open_table(TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("schema", 1)
            .unwrap();
        txn.open_table(TableDefinition::<&str, &[u8]>::new("lists"))
            .unwrap()
            .insert(list.as_str(), record.as_slice())
            .unwrap();
        txn.open_table(TableDefinition::<&str, &[u8]>::new("list_bytes"))
            .unwrap()
            .insert(list.as_str(), entries.as_bytes())
            .unwrap();
        txn.open_table(TableDefinition::<(&str, u64), (u8, u64)>::new(
            "status_times",
        ))
        .unwrap()
        .insert((list.as_str(), first), (1, NOW - 50))
        .unwrap();
        txn.open_table(TableDefinition::<(&str, u8), &str>::new("current_list"))
            .unwrap()
            .insert(("old", 0), list.as_str())
            .unwrap();
        txn.open_table(TableDefinition::<(&str, &str), &[u8]>::new("idempotency"))
            .unwrap()
            .insert(
                ("old", crate::contract::jti("old-issue").as_str()),
                issue.as_slice(),
            )
            .unwrap();
    }
    txn.commit().unwrap();
    (list, key)
}

/// A file written before entries were tracked opens as it is: its list is
/// read, changed and published as before and its issue replays, its entries
/// are not listed, and the next allocation opens a new, tracked list (the
/// old one keeps what it has) whose entries are listed and changed by ref,
/// also after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_before_entry_tracking_opens_and_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    let (old, key) = write_a_file_from_before_entry_tracking(&path);
    let allocator = Allocator::new(&key, 16).unwrap();
    let issued: Vec<u64> = (0..3).map(|n| allocator.permute(n).unwrap()).collect();
    let settings = StoreSettings {
        capacity: 16,
        ..StoreSettings::default()
    };
    let client = ClientId::parse("old").unwrap();
    let t = ListFormat::Token;
    let store = EmbeddedStore::open(&path, settings.clone()).unwrap();

    let before = store.read_list(&old).await.unwrap().unwrap();
    assert_eq!(before.meta.client, client);
    assert_eq!((before.meta.allocated, before.version), (3, 1));
    let decoded = StatusList::from_bytes(t.layout(), Bits::Two, 16, before.bytes).unwrap();
    assert_eq!(decoded.get(issued[0]).unwrap(), Status::Invalid.value());
    // The old issue replays.
    let replay = AllocateRequest {
        digest: [6; 32],
        count: 3,
        ..crate::contract::req("old", t, "old-issue", NOW)
    };
    assert_eq!(
        store.allocate(&replay).await.unwrap(),
        AllocateOutcome::Replayed(Allocation {
            list: old,
            format: t,
            indexes: issued.clone(),
            next: None,
        })
    );
    // Changed as before, with the recorded times.
    assert_eq!(
        set(&store, &client, old, issued[0], Status::Invalid, NOW).await,
        Ok(SetStatusOutcome::Already { at: Some(NOW - 50) })
    );
    assert_eq!(
        set(&store, &client, old, issued[1], Status::Suspended, NOW).await,
        Ok(SetStatusOutcome::Done { at: NOW })
    );
    assert_eq!(store.list_version(&old).await.unwrap(), Some(2));
    let published = store.read_list(&old).await.unwrap().unwrap();
    let decoded = StatusList::from_bytes(t.layout(), Bits::Two, 16, published.bytes).unwrap();
    assert_eq!(decoded.get(issued[1]).unwrap(), Status::Suspended.value());
    // Untracked entries are not listed, with or without the list filter.
    let nothing = EntryPage {
        total: 0,
        items: Vec::new(),
    };
    assert_eq!(
        store.list_entries(&everything("old", t)).await.unwrap(),
        nothing
    );
    let of_old = EntryQuery {
        list: Some(old),
        ..everything("old", t)
    };
    assert_eq!(store.list_entries(&of_old).await.unwrap(), nothing);

    // The old list has room (13 of 16) but is not allocated from again.
    let fresh = crate::contract::allocated(
        store
            .allocate(&ref_req("old", t, "new-1", Some("fresh"), 2, NOW + 1))
            .await
            .unwrap(),
    );
    assert_ne!(fresh.list, old);
    assert!(fresh.next.is_none());
    assert_eq!(
        store.read_list(&old).await.unwrap().unwrap().meta.allocated,
        3
    );
    let listed = store.list_entries(&everything("old", t)).await.unwrap();
    assert_eq!(listed.total, 2);
    let mut got: Vec<(ListId, u64)> = listed.items.iter().map(|i| (i.list, i.idx)).collect();
    got.sort_unstable();
    let mut want: Vec<(ListId, u64)> = fresh.entries().collect();
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(listed.items.iter().all(|i| i.status == Status::Valid
        && i.created_at == NOW + 1
        && i.issuance_ref.as_ref().map(|r| r.as_str()) == Some("fresh")));
    let report = done(
        store
            .set_status_by_ref(&ref_change(
                "old",
                t,
                "fresh",
                Status::Invalid,
                "rv",
                NOW + 2,
            ))
            .await
            .unwrap(),
    );
    assert_eq!((report.changed, report.lists), (2, vec![fresh.list]));
    // The old list still changes as before.
    assert_eq!(
        set(&store, &client, old, issued[1], Status::Valid, NOW + 3).await,
        Ok(SetStatusOutcome::Done { at: NOW + 3 })
    );

    drop(store);
    let store = EmbeddedStore::open(&path, settings).unwrap();
    let listed = store.list_entries(&everything("old", t)).await.unwrap();
    assert_eq!(listed.total, 2);
    assert!(
        listed
            .items
            .iter()
            .all(|i| i.status == Status::Invalid && i.updated_at == NOW + 2)
    );
    assert_eq!(store.list_version(&old).await.unwrap(), Some(3));
}

/// What one call of a mixed batch answered.
#[derive(Debug)]
enum Answer {
    Set(Result<SetStatusOutcome, StoreError>),
    ByRef(Result<RefChangeOutcome, StoreError>),
    Issue(Result<AllocateOutcome, StoreError>),
}

/// A change by ref is one operation of its batch like any other: when one
/// of the ref's lists is damaged it fails whole (its entries in the healthy
/// list stay as they were), and the writes queued before and after it are
/// applied once each, in the same commit, as if it had not been there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_ref_in_a_batch_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refs.redb");
    let t = ListFormat::Token;
    let who = ClientId::parse("batch").unwrap();
    // List A: 998 entries without a ref, one bound to "s", then "r" takes
    // A's last entry and opens B for its second.
    let (fill, s, r) = {
        let store = EmbeddedStore::open(&path, fault_settings()).unwrap();
        let mut got = Vec::new();
        for (jti, r, count) in [
            ("fill", None, 998),
            ("s1", Some("s"), 1),
            ("r1", Some("r"), 2),
        ] {
            got.push(crate::contract::allocated(
                store
                    .allocate(&ref_req("batch", t, jti, r, count, NOW))
                    .await
                    .unwrap(),
            ));
        }
        let [fill, s, r] = <[Allocation; 3]>::try_from(got).unwrap();
        (fill, s, r)
    };
    assert_eq!((s.list, r.list), (fill.list, fill.list));
    let b = r.next.clone().expect("r spans two lists").list;
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<&str, &[u8]>::new("list_bytes"))
            .unwrap()
            .remove(b.as_str())
            .unwrap();
        txn.commit().unwrap();
    }
    let faults = FaultInjector::new();
    let store = patient_store(&path, &faults);
    let _clear = ClearOnDrop(faults.clone());
    assert_eq!(store.list_version(&fill.list).await.unwrap(), Some(0));
    let blocker = hold_the_writer(&store, &faults).await;
    let before = store.commits();

    let single = change(&who, fill.list, fill.indexes[0], Status::Invalid, NOW + 1);
    let by_r = ref_change("batch", t, "r", Status::Invalid, "by-r", NOW + 2);
    let by_s = ref_change("batch", t, "s", Status::Suspended, "by-s", NOW + 2);
    let after = fault_req("after", NOW);
    let calls: Vec<futures::future::BoxFuture<'_, Answer>> = vec![
        Box::pin(async { Answer::Set(store.set_status(&single).await) }),
        Box::pin(async { Answer::ByRef(store.set_status_by_ref(&by_r).await) }),
        Box::pin(async { Answer::ByRef(store.set_status_by_ref(&by_s).await) }),
        Box::pin(async { Answer::Issue(store.allocate(&after).await) }),
    ];
    let answers = queued_then(&faults, Fault::None, calls).await;
    assert!(matches!(
        blocker.await.unwrap(),
        Ok(AllocateOutcome::Allocated(_))
    ));
    assert_eq!(store.commits() - before, 2, "the batch took one commit");
    let [
        Answer::Set(single_answer),
        Answer::ByRef(r_answer),
        Answer::ByRef(s_answer),
        Answer::Issue(after_answer),
    ] = <[Answer; 4]>::try_from(answers).unwrap()
    else {
        panic!("answers out of order");
    };
    assert_eq!(single_answer, Ok(SetStatusOutcome::Done { at: NOW + 1 }));
    assert!(
        matches!(&r_answer, Err(StoreError::Damaged { list, .. }) if *list == b),
        "{r_answer:?}"
    );
    assert_eq!(
        s_answer,
        Ok(RefChangeOutcome::Done(RefChangeReport {
            at: NOW + 2,
            changed: 1,
            skipped: 0,
            already: 0,
            lists: vec![fill.list],
        }))
    );
    assert!(matches!(after_answer, Ok(AllocateOutcome::Allocated(_))));
    // The single change and "s" bumped A once each; "r" left nothing,
    // and the batch's second pass did not apply anything twice.
    assert_eq!(store.list_version(&fill.list).await.unwrap(), Some(2));
    let of_r = EntryQuery {
        issuance_ref: Some(statuslist::domain::IssuanceRef::parse("r").unwrap()),
        ..everything("batch", t)
    };
    let listed = store.list_entries(&of_r).await.unwrap();
    assert_eq!(listed.total, 2);
    assert!(
        listed
            .items
            .iter()
            .all(|i| i.status == Status::Valid && i.updated_at == NOW)
    );
    let changed = EntryQuery {
        statuses: StatusSet::of(&[Status::Invalid, Status::Suspended]),
        ..everything("batch", t)
    };
    let listed = store.list_entries(&changed).await.unwrap();
    let mut got: Vec<(u64, Status)> = listed.items.iter().map(|i| (i.idx, i.status)).collect();
    got.sort_unstable_by_key(|(idx, _)| *idx);
    let mut want = vec![
        (fill.indexes[0], Status::Invalid),
        (s.indexes[0], Status::Suspended),
    ];
    want.sort_unstable_by_key(|(idx, _)| *idx);
    assert_eq!(got, want);
    // Nothing was recorded for "r": its retry meets the damage again, and
    // its entry in A changes now.
    assert!(matches!(
        store.set_status_by_ref(&by_r).await,
        Err(StoreError::Damaged { list, .. }) if list == b
    ));
    assert_eq!(
        set(
            &store,
            &who,
            fill.list,
            r.indexes[0],
            Status::Invalid,
            NOW + 3
        )
        .await,
        Ok(SetStatusOutcome::Done { at: NOW + 3 })
    );
}

/// The outbox clock of the event tests, in unix milliseconds.
const T0: u64 = NOW * 1000;
const LEASE: Duration = Duration::from_secs(30);
const RECHECK: Duration = Duration::from_secs(1);

fn take_req(who: &str, now_ms: u64, max: usize) -> TakeRequest {
    TakeRequest {
        clients: vec![ClientId::parse(who).unwrap()],
        consumer: "embedded-test".into(),
        now_ms,
        lease: LEASE,
        recheck: RECHECK,
        max,
    }
}

fn failed(lease: &Lease, error: &str, now_ms: u64) -> Failure {
    Failure {
        client: lease.event.client.clone(),
        handle: lease.handle.clone(),
        attempt: lease.attempt,
        error: error.into(),
        now_ms,
    }
}

fn seed(nonce: u64) -> EventSeed {
    EventSeed { ms: T0, nonce }
}

/// Takes and delivers `who`'s events until none is pending, moving the
/// clock past each recheck; returns their ids, sorted.
async fn drain_ids(store: &EmbeddedStore, who: &str, mut now_ms: u64) -> Vec<EventId> {
    let client = ClientId::parse(who).unwrap();
    let mut ids = Vec::new();
    for _ in 0..50 {
        for l in store.take(&take_req(who, now_ms, 100)).await.unwrap() {
            store.delivered(&client, &l.handle).await.unwrap();
            ids.push(l.event.id);
        }
        if store.pending(&client).await.unwrap() == 0 {
            ids.sort_unstable();
            return ids;
        }
        now_ms += RECHECK.as_millis() as u64 + 1;
    }
    panic!("events never drained: {ids:?}");
}

/// Events are in the file: after closing and reopening the store, waiting,
/// scheduled and dead events are there as they were, and an event held
/// when the store closed is due at once (its holder went with the process
/// that had the file), its attempt counted. Seqs go on from where they
/// were, so a handle from before the reopen never names a newer event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_reopen_and_held_ones_are_due_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let who = ClientId::parse("hooked").unwrap();
    let t = ListFormat::Token;
    let (a, first) = {
        let store = EmbeddedStore::open(&path, fault_settings()).unwrap();
        let mut issue = ref_req("hooked", t, "i1", Some("r"), 2, NOW);
        issue.events = Some(seed(1));
        let a = crate::contract::allocated(store.allocate(&issue).await.unwrap());
        let mut revoke = change(&who, a.list, a.indexes[0], Status::Invalid, NOW + 1);
        revoke.events = Some(seed(2));
        store.set_status(&revoke).await.unwrap();
        let mut other = ref_req("hooked", t, "i2", Some("q"), 1, NOW + 2);
        other.events = Some(seed(3));
        store.allocate(&other).await.unwrap();
        // Both issue events; the revocation waits behind the first.
        let leases = store.take(&take_req("hooked", T0, 10)).await.unwrap();
        let ids: Vec<EventId> = leases.iter().map(|l| l.event.id).collect();
        assert_eq!(ids, [seed(1).id(0), seed(3).id(0)]);
        store
            .dead_letter(&failed(&leases[1], "HTTP 410", T0 + 5))
            .await
            .unwrap();
        assert_eq!(store.pending(&who).await.unwrap(), 2);
        (a, leases[0].clone())
    };

    let store = EmbeddedStore::open(&path, fault_settings()).unwrap();
    assert_eq!(store.pending(&who).await.unwrap(), 2);
    let dead = store.dead_letters(&who).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event.id, seed(3).id(0));
    assert_eq!(dead[0].event.kind, EventKind::EntriesIssued);
    assert_eq!(
        (dead[0].attempts, dead[0].dead_at, dead[0].error.as_str()),
        (1, T0 + 5, "HTTP 410")
    );
    // Its lease ran until T0 + 30 s; it is handed out well before.
    let again = store.take(&take_req("hooked", T0 + 1, 10)).await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].event, first.event);
    assert_eq!(again[0].attempt, 2, "the lost lease counts as an attempt");
    store.delivered(&who, &again[0].handle).await.unwrap();
    // Then the revocation, as recorded.
    let next = store
        .take(&take_req("hooked", T0 + RECHECK.as_millis() as u64 + 1, 10))
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].attempt, 1);
    assert_eq!(next[0].event.kind, EventKind::EntryRevoked);
    assert_eq!(next[0].event.id, seed(2).id(0));
    assert_eq!(next[0].event.entries, vec![(a.list, a.indexes[0])]);
    assert_eq!(
        next[0].event.issuance_ref.as_ref().map(|r| r.as_str()),
        Some("r")
    );
    store.delivered(&who, &next[0].handle).await.unwrap();
    // The dead one comes back under a new seq: the old handles name nothing.
    assert_eq!(
        store.redeliver(&who, &[seed(3).id(0)]).await.unwrap(),
        [seed(3).id(0)]
    );
    let back = store.take(&take_req("hooked", T0 + 11, 10)).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].event.id, back[0].attempt), (seed(3).id(0), 1));
    for old in [&first.handle, &next[0].handle] {
        assert_ne!(&back[0].handle, old);
        store.delivered(&who, old).await.unwrap();
    }
    assert_eq!(store.pending(&who).await.unwrap(), 1);
    store.delivered(&who, &back[0].handle).await.unwrap();
    assert_eq!(store.pending(&who).await.unwrap(), 0);
    // An idle poll is a read: no commit, so no fsync.
    let commits = store.commits();
    assert!(
        store
            .take(&take_req("hooked", T0 + 12, 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.commits(), commits);
}

/// A change that fails inside a group-commit batch (a change by ref whose
/// issuance record is gone) leaves no event; the batch's other writes
/// record their events exactly once, though the batch ran again without
/// the failure. A single change of an entry whose issuance record is gone
/// is applied, its event without a ref: a lost index must not stop a
/// revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_failing_in_a_batch_leaves_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events-batch.redb");
    let who = ClientId::parse("faults").unwrap();
    let t = ListFormat::Token;
    let (a, b) = {
        let store = EmbeddedStore::open(&path, fault_settings()).unwrap();
        let mut issue = ref_req("faults", t, "a", Some("ra"), 2, NOW);
        issue.events = Some(seed(10));
        let a = crate::contract::allocated(store.allocate(&issue).await.unwrap());
        let b = crate::contract::allocated(
            store
                .allocate(&ref_req("faults", t, "b", Some("rb"), 2, NOW))
                .await
                .unwrap(),
        );
        (a, b)
    };
    // b's issuance record (entries 2 and 3 of the space) is lost.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(
            txn.open_table(TableDefinition::<(&str, u8, u64), &[u8]>::new("entry_log"))
                .unwrap()
                .remove(("faults", 0, 2))
                .unwrap()
                .is_some()
        );
        txn.commit().unwrap();
    }
    let faults = FaultInjector::new();
    let store = patient_store(&path, &faults);
    let _clear = ClearOnDrop(faults.clone());
    let blocker = hold_the_writer(&store, &faults).await;
    let before = store.commits();

    let with = |mut c: statuslist::ports::StatusChange, n| {
        c.events = Some(seed(n));
        c
    };
    let ok_single = with(
        change(&who, a.list, a.indexes[0], Status::Invalid, NOW + 1),
        11,
    );
    let bad_single = with(
        change(&who, b.list, b.indexes[0], Status::Invalid, NOW + 1),
        12,
    );
    let mut bad_by_ref = ref_change("faults", t, "rb", Status::Invalid, "by-rb", NOW + 1);
    bad_by_ref.events = Some(seed(13));
    let mut ok_by_ref = ref_change("faults", t, "ra", Status::Suspended, "by-ra", NOW + 2);
    ok_by_ref.events = Some(seed(14));
    let mut ok_issue = ref_req("faults", t, "c", Some("rc"), 1, NOW + 2);
    ok_issue.events = Some(seed(15));
    let calls: Vec<futures::future::BoxFuture<'_, Answer>> = vec![
        Box::pin(async { Answer::Set(store.set_status(&ok_single).await) }),
        Box::pin(async { Answer::Set(store.set_status(&bad_single).await) }),
        Box::pin(async { Answer::ByRef(store.set_status_by_ref(&bad_by_ref).await) }),
        Box::pin(async { Answer::ByRef(store.set_status_by_ref(&ok_by_ref).await) }),
        Box::pin(async { Answer::Issue(store.allocate(&ok_issue).await) }),
    ];
    let answers = queued_then(&faults, Fault::None, calls).await;
    blocker.await.unwrap().unwrap();
    assert_eq!(store.commits() - before, 2, "the batch took one commit");
    let [
        Answer::Set(ok_set),
        Answer::Set(bad_set),
        Answer::ByRef(bad_ref),
        Answer::ByRef(ok_ref),
        Answer::Issue(issued),
    ] = <[Answer; 5]>::try_from(answers).unwrap()
    else {
        panic!("answers out of order");
    };
    assert_eq!(ok_set, Ok(SetStatusOutcome::Done { at: NOW + 1 }));
    assert_eq!(bad_set, Ok(SetStatusOutcome::Done { at: NOW + 1 }));
    assert!(
        matches!(bad_ref, Err(StoreError::Corrupt(_))),
        "{bad_ref:?}"
    );
    let report = done(ok_ref.unwrap());
    assert_eq!((report.changed, report.skipped), (1, 1));
    assert!(matches!(issued, Ok(AllocateOutcome::Allocated(_))));

    // Exactly the events of the writes that happened, once each.
    assert_eq!(store.pending(&who).await.unwrap(), 5);
    let mut want = vec![
        seed(10).id(0),
        seed(11).id(0),
        seed(12).id(0),
        seed(14).id(0),
        seed(15).id(0),
    ];
    want.sort_unstable();
    assert_eq!(drain_ids(&store, "faults", T0).await, want);
    // The failed change by ref left its other entry as it was.
    let snap = store.read_list(&b.list).await.unwrap().unwrap();
    let entries = StatusList::from_bytes(t.layout(), Bits::Two, 1000, snap.bytes).unwrap();
    assert_eq!(entries.get(b.indexes[0]).unwrap(), Status::Invalid.value());
    assert_eq!(entries.get(b.indexes[1]).unwrap(), Status::Valid.value());
}

/// A batch whose commit fails records none of its events: the failed
/// writes are not acknowledged, and neither their changes nor their events
/// exist once the store has recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_records_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events-full.redb");
    let who = ClientId::parse("faults").unwrap();
    let t = ListFormat::Token;
    let faults = FaultInjector::new();
    let store = patient_store(&path, &faults);
    let _clear = ClearOnDrop(faults.clone());
    let a = crate::contract::allocated(
        store
            .allocate(&ref_req("faults", t, "a", Some("ra"), 2, NOW))
            .await
            .unwrap(),
    );
    let blocker = hold_the_writer(&store, &faults).await;
    let mut revoke = change(&who, a.list, a.indexes[0], Status::Invalid, NOW + 1);
    revoke.events = Some(seed(20));
    let mut issue = ref_req("faults", t, "b", Some("rb"), 1, NOW + 1);
    issue.events = Some(seed(21));
    let calls: Vec<futures::future::BoxFuture<'_, Answer>> = vec![
        Box::pin(async { Answer::Set(store.set_status(&revoke).await) }),
        Box::pin(async { Answer::Issue(store.allocate(&issue).await) }),
    ];
    let answers = queued_then(&faults, Fault::DiskFull, calls).await;
    let _ = blocker.await.unwrap();
    for answer in answers {
        match answer {
            Answer::Set(r) => assert_unavailable("set_status", r),
            Answer::Issue(r) => assert_unavailable("allocate", r),
            Answer::ByRef(r) => assert_unavailable("by ref", r),
        }
    }
    faults.clear();
    wait_until_ready(&store).await;
    assert_eq!(store.pending(&who).await.unwrap(), 0);
    assert!(
        store
            .take(&take_req("faults", T0, 10))
            .await
            .unwrap()
            .is_empty()
    );
}
