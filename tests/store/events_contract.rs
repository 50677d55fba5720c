//! The store contract of the event outbox (webhooks): events are recorded in
//! the same step as the writes they report and only for them, handed out to
//! one holder at a time, in order per entry, retried, dead-lettered and
//! redelivered. Run against every adapter through `contract_suite!`.
//!
//! Times are injected (`now_ms`), so leases and schedules are tested by
//! moving the clock, never by sleeping.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use statuslist::domain::events::{Event, EventId, EventKind, EventSeed};
use statuslist::domain::{ClientId, ListFormat, ListId, Status};
use statuslist::ports::{
    AllocateOutcome, Failure, Lease, Outbox, RefChangeOutcome, SetStatusOutcome, Store,
    StoreSettings, TakeRequest, UnixMillis,
};

use crate::contract::{NOW, allocated, change, client, done, iref, ref_change, ref_req, req};

/// The contract's clock in milliseconds.
const NOW_MS: UnixMillis = NOW * 1000;
const LEASE: Duration = Duration::from_secs(30);
const RECHECK: Duration = Duration::from_secs(1);

/// A seed unique to each request of the run.
fn seed() -> EventSeed {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    EventSeed {
        ms: NOW_MS,
        nonce: NEXT.fetch_add(1, Ordering::Relaxed),
    }
}

/// What `consumer` takes of `who`'s events at `now_ms`, at most `max`.
async fn take<S: Outbox>(
    store: &S,
    who: &[&str],
    consumer: &str,
    now_ms: UnixMillis,
    max: usize,
) -> Vec<Lease> {
    let req = TakeRequest {
        clients: who.iter().map(|c| client(c)).collect(),
        consumer: consumer.to_owned(),
        now_ms,
        lease: LEASE,
        recheck: RECHECK,
        max,
    };
    store.take(&req).await.unwrap()
}

fn failure(lease: &Lease, now_ms: UnixMillis) -> Failure {
    Failure {
        client: lease.event.client.clone(),
        handle: lease.handle.clone(),
        attempt: lease.attempt,
        error: "HTTP 500".into(),
        now_ms,
    }
}

/// Takes and delivers until nothing is left, moving the clock past each
/// recheck; returns the events in the order they were handed out.
async fn drain<S: Outbox>(store: &S, who: &[&str], mut now_ms: UnixMillis) -> Vec<Event> {
    let mut out = Vec::new();
    for _ in 0..200 {
        let leases = take(store, who, "drain", now_ms, 1000).await;
        for l in &leases {
            store.delivered(&l.event.client, &l.handle).await.unwrap();
            out.push(l.event.clone());
        }
        let mut left = 0;
        for c in who {
            left += store.pending(&client(c)).await.unwrap();
        }
        if left == 0 {
            return out;
        }
        now_ms += RECHECK.as_millis() as u64 + 1;
    }
    panic!("events never drained: {} handed out", out.len());
}

/// Every write that changes something records its events (with the seed's
/// ids, the request's time, the entries' ref); replays, repeats, refusals
/// and requests without a seed record none.
pub async fn events_are_recorded_with_their_changes<S: Store + Outbox>(
    store: &S,
    _settings: &StoreSettings,
) {
    let who = client("hooked");
    let t = ListFormat::Token;
    // An issue with a ref: one entries.issued event listing its entries.
    let s0 = seed();
    let mut issue = ref_req("hooked", t, "i-ref", Some("order-1"), 3, NOW);
    issue.events = Some(s0);
    let batch = allocated(store.allocate(&issue).await.unwrap());
    // Its replay records nothing.
    let mut replay = issue.clone();
    replay.events = Some(seed());
    assert!(matches!(
        store.allocate(&replay).await.unwrap(),
        AllocateOutcome::Replayed(_)
    ));
    // An issue without a ref records nothing, even with a seed.
    let mut plain = req("hooked", t, "i-plain", NOW);
    plain.events = Some(seed());
    let single = allocated(store.allocate(&plain).await.unwrap());
    let (plain_list, plain_idx) = single.entries().next().unwrap();
    // An issue with a ref but no seed records nothing.
    let quiet = allocated(
        store
            .allocate(&ref_req("hooked", t, "i-quiet", Some("quiet"), 1, NOW))
            .await
            .unwrap(),
    );
    let entries: Vec<(ListId, u64)> = batch.entries().collect();

    // A change of an entry bound to a ref: one event carrying the ref.
    let s1 = seed();
    let mut revoke = change(&who, entries[0].0, entries[0].1, Status::Invalid, NOW + 1);
    revoke.events = Some(s1);
    assert!(matches!(
        store.set_status(&revoke).await.unwrap(),
        SetStatusOutcome::Done { .. }
    ));
    // Its replay, and a repeat that finds the status already set: nothing.
    let mut again = revoke.clone();
    again.events = Some(seed());
    store.set_status(&again).await.unwrap();
    let mut repeat = change(&who, entries[0].0, entries[0].1, Status::Invalid, NOW + 2);
    repeat.events = Some(seed());
    assert!(matches!(
        store.set_status(&repeat).await.unwrap(),
        SetStatusOutcome::Already { .. }
    ));
    // Refused changes: nothing.
    let mut refused = change(&who, entries[0].0, entries[0].1, Status::Suspended, NOW + 2);
    refused.events = Some(seed());
    assert!(matches!(
        store.set_status(&refused).await.unwrap(),
        SetStatusOutcome::NotAllowed { .. }
    ));
    let mut foreign = change(
        &client("other"),
        plain_list,
        plain_idx,
        Status::Invalid,
        NOW + 2,
    );
    foreign.events = Some(seed());
    assert_eq!(
        store.set_status(&foreign).await.unwrap(),
        SetStatusOutcome::NotYourList
    );
    // A change of an entry without a ref: one event, no ref.
    let s2 = seed();
    let mut suspend = change(&who, plain_list, plain_idx, Status::Suspended, NOW + 3);
    suspend.events = Some(s2);
    store.set_status(&suspend).await.unwrap();
    // A change without a seed: nothing.
    let (ql, qi) = quiet.entries().next().unwrap();
    store
        .set_status(&change(&who, ql, qi, Status::Suspended, NOW + 3))
        .await
        .unwrap();
    // A change by ref: one event per changed entry, in allocation order;
    // the entry already revoked is skipped and gets none.
    let s3 = seed();
    let mut by_ref = ref_change("hooked", t, "order-1", Status::Suspended, "r-1", NOW + 4);
    by_ref.events = Some(s3);
    let report = done(store.set_status_by_ref(&by_ref).await.unwrap());
    assert_eq!((report.changed, report.skipped), (2, 1));
    let mut by_ref_again = by_ref.clone();
    by_ref_again.events = Some(seed());
    store.set_status_by_ref(&by_ref_again).await.unwrap();
    // A ref change that changes nothing records nothing.
    let mut none_changed = ref_change("hooked", t, "order-1", Status::Suspended, "r-2", NOW + 5);
    none_changed.events = Some(seed());
    let report = done(store.set_status_by_ref(&none_changed).await.unwrap());
    assert_eq!(report.changed, 0);

    let ev = |id: EventId, kind, at, entries: Vec<(ListId, u64)>, r: Option<&str>| Event {
        id,
        kind,
        client: who.clone(),
        format: t,
        at,
        entries,
        issuance_ref: r.map(iref),
    };
    let expected = vec![
        ev(
            s0.id(0),
            EventKind::EntriesIssued,
            NOW,
            entries.clone(),
            Some("order-1"),
        ),
        ev(
            s1.id(0),
            EventKind::EntryRevoked,
            NOW + 1,
            vec![entries[0]],
            Some("order-1"),
        ),
        ev(
            s2.id(0),
            EventKind::EntrySuspended,
            NOW + 3,
            vec![(plain_list, plain_idx)],
            None,
        ),
        ev(
            s3.id(0),
            EventKind::EntrySuspended,
            NOW + 4,
            vec![entries[1]],
            Some("order-1"),
        ),
        ev(
            s3.id(1),
            EventKind::EntrySuspended,
            NOW + 4,
            vec![entries[2]],
            Some("order-1"),
        ),
    ];
    assert_eq!(store.pending(&who).await.unwrap(), 5);
    assert_eq!(store.pending(&client("other")).await.unwrap(), 0);
    let mut got = drain(store, &["hooked", "other"], NOW_MS).await;
    got.sort_by_key(|e| e.id);
    let mut want = expected;
    want.sort_by_key(|e| e.id);
    assert_eq!(got, want);
    assert_eq!(store.pending(&who).await.unwrap(), 0);
}

/// A taken event is held by its taker until the lease ends: nobody else
/// gets it before, anyone may after (a new attempt). A report from the
/// holder whose lease ended does not move the event away from the new
/// holder; its "delivered" is still believed.
pub async fn a_held_event_goes_to_nobody_else_until_its_lease_ends<S: Store + Outbox>(
    store: &S,
    _settings: &StoreSettings,
) {
    let mut issue = ref_req("leased", ListFormat::Token, "i", Some("r"), 1, NOW);
    issue.events = Some(seed());
    allocated(store.allocate(&issue).await.unwrap());
    let a = take(store, &["leased"], "a", NOW_MS, 10).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].attempt, 1);
    let lease_ms = LEASE.as_millis() as u64;
    for at in [NOW_MS, NOW_MS + 1000, NOW_MS + lease_ms - 1] {
        let b = take(store, &["leased"], "b", at, 10).await;
        assert!(b.is_empty(), "handed out again at +{} ms", at - NOW_MS);
    }
    let b = take(store, &["leased"], "b", NOW_MS + lease_ms, 10).await;
    assert_eq!(b.len(), 1, "the lease ended: someone else takes it");
    assert_eq!(b[0].event, a[0].event);
    assert_eq!(b[0].attempt, 2);
    // The first holder's late failure is stale: the event stays with b.
    store
        .retry(
            &failure(&a[0], NOW_MS + lease_ms + 1),
            NOW_MS + lease_ms + 2,
        )
        .await
        .unwrap();
    let c = take(store, &["leased"], "c", NOW_MS + lease_ms + 5, 10).await;
    assert!(c.is_empty(), "a stale report released the event: {c:?}");
    store
        .dead_letter(&failure(&a[0], NOW_MS + lease_ms + 6))
        .await
        .unwrap();
    assert!(
        store
            .dead_letters(&client("leased"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.pending(&client("leased")).await.unwrap(), 1);
    // A late "delivered" from anyone ends it.
    store
        .delivered(&client("leased"), &a[0].handle)
        .await
        .unwrap();
    assert_eq!(store.pending(&client("leased")).await.unwrap(), 0);
    let d = take(store, &["leased"], "d", NOW_MS + 10 * lease_ms, 10).await;
    assert!(d.is_empty());
}

/// A failed attempt is scheduled: not handed out before its time, then with
/// the next attempt number. A dead event is listed and never handed out
/// until redelivered, which starts its attempts again.
pub async fn failed_events_are_retried_then_dead_lettered_and_redelivered<S: Store + Outbox>(
    store: &S,
    _settings: &StoreSettings,
) {
    let who = client("failing");
    let s = seed();
    let mut issue = ref_req("failing", ListFormat::Bitstring, "i", Some("r"), 2, NOW);
    issue.events = Some(s);
    allocated(store.allocate(&issue).await.unwrap());
    let first = take(store, &["failing"], "a", NOW_MS, 10).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event.format, ListFormat::Bitstring);
    store
        .retry(&failure(&first[0], NOW_MS + 10), NOW_MS + 5000)
        .await
        .unwrap();
    assert!(
        take(store, &["failing"], "b", NOW_MS + 4999, 10)
            .await
            .is_empty()
    );
    let second = take(store, &["failing"], "b", NOW_MS + 5000, 10).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    let mut dead = failure(&second[0], NOW_MS + 6000);
    dead.error = "connection refused".into();
    store.dead_letter(&dead).await.unwrap();
    assert_eq!(store.pending(&who).await.unwrap(), 0);
    let letters = store.dead_letters(&who).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event, first[0].event);
    assert_eq!(letters[0].attempts, 2);
    assert_eq!(letters[0].dead_at, NOW_MS + 6000);
    assert_eq!(letters[0].error, "connection refused");
    assert!(
        store
            .dead_letters(&client("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        take(store, &["failing"], "c", NOW_MS + 3_600_000, 10)
            .await
            .is_empty()
    );
    // Only the client's own dead events come back.
    let unknown = EventSeed { ms: 1, nonce: 1 }.id(0);
    assert!(
        store
            .redeliver(&client("nobody"), &[s.id(0)])
            .await
            .unwrap()
            .is_empty()
    );
    let back = store.redeliver(&who, &[unknown, s.id(0)]).await.unwrap();
    assert_eq!(back, vec![s.id(0)]);
    assert!(store.dead_letters(&who).await.unwrap().is_empty());
    assert_eq!(store.pending(&who).await.unwrap(), 1);
    let third = take(store, &["failing"], "c", NOW_MS + 7001, 10).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].attempt, 1, "a redelivered event starts again");
    assert_eq!(third[0].event, first[0].event);
    store.delivered(&who, &third[0].handle).await.unwrap();
    assert_eq!(store.pending(&who).await.unwrap(), 0);
    assert!(store.dead_letters(&who).await.unwrap().is_empty());
}

/// An event is not handed out while an earlier event of one of its entries
/// is undelivered (held, scheduled or waiting); a dead one no longer holds
/// it back. Events of other entries are not held back.
pub async fn events_of_one_entry_are_handed_out_in_order<S: Store + Outbox>(
    store: &S,
    _settings: &StoreSettings,
) {
    let who = client("ordered");
    let t = ListFormat::Token;
    let mut issue = ref_req("ordered", t, "i", Some("r"), 2, NOW);
    issue.events = Some(seed());
    let a = allocated(store.allocate(&issue).await.unwrap());
    let e: Vec<(ListId, u64)> = a.entries().collect();
    let mut other = req("ordered", t, "i-other", NOW);
    other.events = Some(seed());
    let (ol, oi) = allocated(store.allocate(&other).await.unwrap())
        .entries()
        .next()
        .unwrap();
    let mut kinds = Vec::new();
    for (i, status) in [Status::Suspended, Status::Valid, Status::Invalid]
        .into_iter()
        .enumerate()
    {
        let mut c = change(&who, e[0].0, e[0].1, status, NOW + 1 + i as u64);
        c.events = Some(seed());
        store.set_status(&c).await.unwrap();
        kinds.push(EventKind::for_status(status).unwrap());
    }
    let mut o = change(&who, ol, oi, Status::Invalid, NOW + 5);
    o.events = Some(seed());
    store.set_status(&o).await.unwrap();

    // The issue event and the other entry's event; the three changes of
    // entry 0 wait behind the issue event.
    let mut now = NOW_MS;
    let first = take(store, &["ordered"], "a", now, 10).await;
    let got: HashSet<EventKind> = first.iter().map(|l| l.event.kind).collect();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(got.contains(&EventKind::EntriesIssued) && got.contains(&EventKind::EntryRevoked));
    // While the issue event is held, scheduled, then waiting again, the
    // changes stay behind it.
    let issued = first
        .iter()
        .find(|l| l.event.kind == EventKind::EntriesIssued)
        .unwrap();
    let revoked_other = first
        .iter()
        .find(|l| l.event.kind == EventKind::EntryRevoked)
        .unwrap();
    store.delivered(&who, &revoked_other.handle).await.unwrap();
    now += RECHECK.as_millis() as u64 + 1;
    assert!(take(store, &["ordered"], "b", now, 10).await.is_empty());
    store
        .retry(&failure(issued, now), now + 10_000)
        .await
        .unwrap();
    now += RECHECK.as_millis() as u64 + 1;
    assert!(take(store, &["ordered"], "b", now, 10).await.is_empty());
    now += 10_000;
    let again = take(store, &["ordered"], "b", now, 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event.kind, EventKind::EntriesIssued);
    store.delivered(&who, &again[0].handle).await.unwrap();
    // Then the changes, one at a time, in the order they were made.
    for (i, kind) in kinds.iter().enumerate() {
        now += RECHECK.as_millis() as u64 + 1;
        let next = take(store, &["ordered"], "b", now, 10).await;
        assert_eq!(next.len(), 1, "change {i}: {next:?}");
        assert_eq!(next[0].event.kind, *kind);
        assert_eq!(next[0].event.entries, vec![e[0]]);
        if i == 0 {
            // A dead predecessor does not hold the next one back.
            store.dead_letter(&failure(&next[0], now)).await.unwrap();
        } else {
            store.delivered(&who, &next[0].handle).await.unwrap();
        }
    }
    assert_eq!(store.pending(&who).await.unwrap(), 0);
}

/// Takers see only the clients they ask for, and each client's count is
/// its own.
pub async fn events_are_kept_per_client<S: Store + Outbox>(store: &S, _settings: &StoreSettings) {
    for (who, n) in [("alpha", 2u32), ("beta", 3)] {
        let mut issue = ref_req(who, ListFormat::Token, "i", Some("r"), n, NOW);
        issue.events = Some(seed());
        let a = allocated(store.allocate(&issue).await.unwrap());
        let mut by_ref = ref_change(who, ListFormat::Token, "r", Status::Invalid, "c", NOW);
        by_ref.events = Some(seed());
        assert!(matches!(
            store.set_status_by_ref(&by_ref).await.unwrap(),
            RefChangeOutcome::Done(_)
        ));
        assert_eq!(a.len(), n as usize);
    }
    assert_eq!(store.pending(&client("alpha")).await.unwrap(), 3);
    assert_eq!(store.pending(&client("beta")).await.unwrap(), 4);
    let alpha = drain(store, &["alpha"], NOW_MS).await;
    assert_eq!(alpha.len(), 3);
    assert!(alpha.iter().all(|e| e.client == client("alpha")));
    assert_eq!(store.pending(&client("beta")).await.unwrap(), 4);
    let beta = drain(store, &["beta"], NOW_MS).await;
    assert_eq!(beta.len(), 4);
}

/// Concurrent takers with long leases never get the same event, and
/// together deliver every one.
pub async fn concurrent_takers_never_share_an_event<S: Store + Outbox>(
    store: &S,
    _settings: &StoreSettings,
) {
    const N: u32 = 300;
    let who: ClientId = client("busy");
    let mut issue = ref_req("busy", ListFormat::Token, "i", Some("r"), N, NOW);
    issue.events = Some(seed());
    allocated(store.allocate(&issue).await.unwrap());
    let mut by_ref = ref_change("busy", ListFormat::Token, "r", Status::Invalid, "c", NOW);
    by_ref.events = Some(seed());
    assert_eq!(
        done(store.set_status_by_ref(&by_ref).await.unwrap()).changed,
        N as u64
    );
    // The issue event first, alone, so that the revocations are free.
    let issued = take(store, &["busy"], "first", NOW_MS, 1).await;
    assert_eq!(issued[0].event.kind, EventKind::EntriesIssued);
    store.delivered(&who, &issued[0].handle).await.unwrap();
    let now = NOW_MS + RECHECK.as_millis() as u64 + 1;
    let takers = (0..4).map(|t| {
        let who = who.clone();
        async move {
            let mut mine = Vec::new();
            loop {
                let got = take(store, &["busy"], &format!("t{t}"), now, 17).await;
                if got.is_empty() {
                    return mine;
                }
                for l in got {
                    store.delivered(&who, &l.handle).await.unwrap();
                    mine.push(l.event.id);
                }
            }
        }
    });
    let all: Vec<EventId> = join_all(takers).await.into_iter().flatten().collect();
    let mut seen: HashMap<EventId, u32> = HashMap::new();
    for id in &all {
        *seen.entry(*id).or_default() += 1;
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "an event was handed out twice"
    );
    assert_eq!(seen.len(), N as usize);
    assert_eq!(store.pending(&who).await.unwrap(), 0);
}

/// When an event leaves (delivered, or dead-lettered), the events it held
/// back are due at once: the next take at the same time hands them out,
/// without waiting for `recheck`; the report says so. A report that
/// releases nothing says that too.
pub async fn an_event_leaving_releases_the_events_it_held_back<S: Store + Outbox>(
    store: &S,
    _settings: &StoreSettings,
) {
    let who = client("quick");
    let t = ListFormat::Token;
    let mut issue = ref_req("quick", t, "i", Some("r"), 2, NOW);
    issue.events = Some(seed());
    let a = allocated(store.allocate(&issue).await.unwrap());
    let e: Vec<(ListId, u64)> = a.entries().collect();
    for (i, (entry, status)) in [
        (e[0], Status::Suspended),
        (e[1], Status::Suspended),
        (e[0], Status::Valid),
        (e[0], Status::Invalid),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = change(&who, entry.0, entry.1, status, NOW + 1 + i as u64);
        c.events = Some(seed());
        store.set_status(&c).await.unwrap();
    }
    let now = NOW_MS;
    // The issue event alone; the changes wait behind it.
    let first = take(store, &["quick"], "a", now, 10).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event.kind, EventKind::EntriesIssued);
    assert!(take(store, &["quick"], "a", now, 10).await.is_empty());
    // Delivered: both suspensions go at once, the later changes of entry 0
    // still wait behind the first.
    assert!(store.delivered(&who, &first[0].handle).await.unwrap());
    let second = take(store, &["quick"], "a", now, 10).await;
    let got: Vec<(EventKind, Vec<(ListId, u64)>)> = second
        .iter()
        .map(|l| (l.event.kind, l.event.entries.clone()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.contains(&(EventKind::EntrySuspended, vec![e[0]])));
    assert!(got.contains(&(EventKind::EntrySuspended, vec![e[1]])));
    let (of_0, of_1): (Vec<&Lease>, Vec<&Lease>) =
        second.iter().partition(|l| l.event.entries == vec![e[0]]);
    // Nothing waits behind entry 1's suspension.
    assert!(!store.delivered(&who, &of_1[0].handle).await.unwrap());
    // Dead-lettered: the unsuspension goes at once.
    assert!(store.dead_letter(&failure(of_0[0], now)).await.unwrap());
    let third = take(store, &["quick"], "a", now, 10).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].event.kind, EventKind::EntryUnsuspended);
    // A stale report releases nothing, and moves nothing.
    assert!(!store.dead_letter(&failure(of_0[0], now)).await.unwrap());
    assert!(take(store, &["quick"], "a", now, 10).await.is_empty());
    assert!(store.delivered(&who, &third[0].handle).await.unwrap());
    let last = take(store, &["quick"], "a", now, 10).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].event.kind, EventKind::EntryRevoked);
    assert!(!store.delivered(&who, &last[0].handle).await.unwrap());
    assert_eq!(store.pending(&who).await.unwrap(), 0);
}
