//! What a Redis Cluster failover may lose, through the Redis adapter.
//!
//! Replication is asynchronous: a master answers a write before its replica
//! has it. Here the replica of the master that holds a client's keys is cut
//! off first (frozen with SIGSTOP, and its replication link closed on the
//! master), then the client allocates and revokes, the master is killed
//! with SIGKILL, and the replica, resumed, is promoted without those writes.
//!
//! Whatever the adapter acknowledged must still be there afterwards: the
//! same request again gets the same answer, a new allocation gets an index
//! no acknowledged allocation has, and an acknowledged revocation is in the
//! list. An adapter that waits for the replica (`WAIT`) before answering
//! passes by answering 503 (not acknowledged) while the replica is away;
//! one that does not loses the acknowledged writes, and this test says so.

use std::time::{Duration, Instant};

use statuslist::domain::{ListFormat, Status, StatusList};
use statuslist::ports::{AllocateOutcome, SetStatusOutcome, Store, StoreError, StoreSettings};
use statuslist::store::redis::{RedisSettings, RedisStore};

use crate::contract::{NOW, change, client, req};
use crate::support::RedisCluster;

const CLIENT: &str = "durable-issuer";

/// Runs `f` until it gives `Ok` (the cluster may still be failing over
/// when it starts), for a generous liveness bound.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what} still fails after 60 s: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_acknowledged_before_a_failover_are_kept_by_the_promoted_replica() {
    let rc = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let mut settings = RedisSettings::new(rc.url());
    settings.prefix = "durable:".to_owned();
    settings.command_timeout = Duration::from_secs(1);
    let store = RedisStore::connect(
        settings,
        StoreSettings {
            capacity: 64,
            ..StoreSettings::default()
        },
    )
    .await
    .expect("connect to the private cluster");
    let who = client(CLIENT);
    // Every key of the client carries its hash tag, so one master holds
    // them all.
    let master = rc.master_of(&format!("{{{CLIENT}}}"));
    let replica = master.replicas[0];

    // Before the fault, replicated for sure.
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let r = req(CLIENT, ListFormat::Token, &format!("before-{i}"), NOW);
        match store.allocate(&r).await.unwrap() {
            AllocateOutcome::Allocated(a) => acknowledged.push((r, a)),
            other => panic!("{other:?}"),
        }
    }
    let synced: i64 = rc
        .query(master.port, redis::cmd("WAIT").arg(1).arg(10_000))
        .unwrap();
    assert_eq!(synced, 1, "the replica caught up before the fault");

    // Cut the replica off: frozen, and its link closed by the master, so
    // what the master writes now reaches no replica.
    rc.pause_node(replica);
    let _: i64 = rc
        .query(
            master.port,
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
        )
        .unwrap();

    let during = req(CLIENT, ListFormat::Token, "during", NOW + 1);
    let during_answer = store.allocate(&during).await;
    let (target_list, target_idx) = (acknowledged[0].1.list, acknowledged[0].1.indexes[0]);
    let revoke = change(&who, target_list, target_idx, Status::Invalid, NOW + 2);
    let revoke_answer = store.set_status(&revoke).await;

    rc.kill_node(master.port);
    rc.resume_node(replica);
    let promoted = tokio::task::block_in_place(|| rc.wait_promoted(&master));
    assert_eq!(promoted.port, replica);

    let mut lost = Vec::new();
    if let Ok(AllocateOutcome::Allocated(a)) = &during_answer {
        acknowledged.push((during.clone(), a.clone()));
    }
    // What the promoted replica holds, before anything is sent again (a
    // replay could write a lost change anew): an acknowledged revocation,
    // and a counter that did not go back.
    let fresh = req(CLIENT, ListFormat::Token, "after", NOW + 3);
    let after = eventually("a new allocation", || store.allocate(&fresh)).await;
    if let AllocateOutcome::Allocated(new) = &after {
        for (r, a) in &acknowledged {
            if a.list == new.list && a.indexes.iter().any(|i| new.indexes.contains(i)) {
                lost.push(format!(
                    "a new allocation got index {:?} of {:?}, acknowledged to {:?} before",
                    new.indexes, new.list, r.jti
                ));
            }
        }
    } else {
        lost.push(format!("a fresh jti was not allocated: {after:?}"));
    }
    if let Ok(SetStatusOutcome::Done { at }) = revoke_answer {
        let snapshot = eventually("reading the list", || store.read_list(&target_list))
            .await
            .expect("the list exists");
        let list = StatusList::from_bytes(
            ListFormat::Token.layout(),
            snapshot.meta.bits,
            snapshot.meta.capacity,
            snapshot.bytes,
        )
        .expect("the list's bytes");
        let status = list.get(target_idx).expect("an index of the list");
        if status != Status::Invalid.value() {
            lost.push(format!(
                "a revocation acknowledged at {at}: entry {target_idx} has status {status}"
            ));
        }
    }
    for (r, a) in &acknowledged {
        let again = eventually("a replayed allocation", || store.allocate(r)).await;
        if again != AllocateOutcome::Replayed(a.clone()) {
            lost.push(format!(
                "allocation {:?} acknowledged as {:?}, sent again: {again:?}",
                r.jti, a.indexes
            ));
        }
    }
    assert!(
        lost.is_empty(),
        "writes the adapter acknowledged while the replica was cut off were lost in the \
         failover (during: {during_answer:?}; revoke: {revoke_answer:?}):\n{}",
        lost.join("\n")
    );
    // Not acknowledged is the only other outcome allowed while the replica
    // is away: a 503, safe to retry.
    for answer in [during_answer.as_ref().err(), revoke_answer.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert!(
            matches!(answer, StoreError::Unavailable(_)),
            "refused otherwise than as unavailable: {answer:?}"
        );
    }
}

/// After a failover, reading a list (the GET path) works again without any
/// write in between: the adapter follows the new slot owner by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_a_failover_by_themselves() {
    let rc = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let mut settings = RedisSettings::new(rc.url());
    settings.prefix = "reads:".to_owned();
    settings.command_timeout = Duration::from_secs(1);
    let store = RedisStore::connect(settings, StoreSettings::default())
        .await
        .expect("connect to the private cluster");
    let who = client(CLIENT);
    let AllocateOutcome::Allocated(a) = store
        .allocate(&req(CLIENT, ListFormat::Token, "one", NOW))
        .await
        .unwrap()
    else {
        panic!("a fresh jti is allocated");
    };
    let revoked = store
        .set_status(&change(
            &who,
            a.list,
            a.indexes[0],
            Status::Invalid,
            NOW + 1,
        ))
        .await
        .unwrap();
    assert!(matches!(revoked, SetStatusOutcome::Done { .. }));
    let before = store.read_list(&a.list).await.unwrap().unwrap();
    let synced: i64 = rc
        .query(
            rc.master_of(&format!("{{{CLIENT}}}")).port,
            redis::cmd("WAIT").arg(1).arg(10_000),
        )
        .unwrap();
    assert_eq!(synced, 1);

    let master = rc.master_of(&format!("{{{CLIENT}}}"));
    rc.kill_node(master.port);
    tokio::task::block_in_place(|| rc.wait_promoted(&master));
    let after = eventually("reading the list after the failover", || {
        store.read_list(&a.list)
    })
    .await
    .expect("the list exists");
    assert_eq!(after.bytes, before.bytes);
    assert_eq!(after.version, before.version);
    let version = eventually("the list's version after the failover", || {
        store.list_version(&a.list)
    })
    .await;
    assert_eq!(version, Some(before.version));
}
