//! The store contract: every behaviour the service relies on, written once
//! against the `Store` trait and run against every adapter.
//!
//! Interface for adapters:
//!
//! - every case is `pub async fn case<S: Store>(store: &S, settings: &StoreSettings)`,
//!   where `settings` are the ones `store` was built with;
//! - [`settings_for`] gives the settings a case needs (small capacities so
//!   lists fill up, 1-bit lists, …);
//! - [`contract_suite!`](crate::contract::contract_suite) expands, inside an
//!   adapter's test module, to one `#[tokio::test]` per case that builds a
//!   fresh store with `make_store(settings_for(case)).await` (an
//!   `async fn(StoreSettings) -> (S, Guard)`, the guard living as long as the
//!   test) and runs the case on it.
//!
//! Time is injected: every request carries `now` and `keep_until`, so record
//! expiry is tested by moving `now`, never by sleeping.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::join_all;
use statuslist::domain::{Bits, ClientId, Jti, ListFormat, ListId, Status, StatusList};
use statuslist::ports::{
    AllocateOutcome, AllocateRequest, Allocation, SetStatusOutcome, StatusChange, Store,
    StoreError, StoreSettings, UnixSeconds,
};

/// Expands to one test per contract case for the adapter built by
/// `$make` (`async fn(StoreSettings) -> (S, Guard)`).
macro_rules! contract_suite {
    ($make:path) => {
        $crate::contract::contract_suite!(@cases $make;
            allocation_uniqueness,
            replay_gives_the_same_answer,
            concurrent_duplicates_get_one_allocation,
            changed_digest_is_changed,
            idempotency_window_expiry,
            change_replay_gives_the_same_answer,
            a_jti_is_used_for_one_thing,
            change_records_live_until_keep_until,
            full_list_opens_a_new_list,
            lists_are_per_client_and_format,
            list_ids_name_every_list_of_a_format,
            count_above_one_comes_from_one_list,
            revoke_suspend_unsuspend_outcomes,
            ownership_unknown_lists_and_never_issued,
            version_bumps_once_per_change,
            raw_bytes_in_the_list_bit_order,
            one_bit_lists,
            retire_after_is_the_latest_status_expiry,
            unknown_lists_and_ping,
            bad_input_is_a_typed_error,
            count_spans_into_a_new_list,
            refs_bind_entries_and_accumulate,
            ref_changes_skip_and_count,
            claimed_jtis_are_single_use,
            concurrent_issues_with_refs_are_all_listed,
            listing_matches_a_model,
            one_bit_refs_skip_suspension,
            events_are_recorded_with_their_changes,
            a_held_event_goes_to_nobody_else_until_its_lease_ends,
            failed_events_are_retried_then_dead_lettered_and_redelivered,
            events_of_one_entry_are_handed_out_in_order,
            events_are_kept_per_client,
            an_event_leaving_releases_the_events_it_held_back,
            concurrent_takers_never_share_an_event,
        );
    };
    (@cases $make:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let settings = $crate::contract::settings_for(stringify!($case));
                let (store, _guard) = $make(settings.clone()).await;
                $crate::contract::$case(&store, &settings).await;
            }
        )+
    };
}
pub(crate) use contract_suite;

pub use crate::entries_contract::*;
pub use crate::events_contract::*;

/// The settings a case's store must be built with.
pub fn settings_for(case: &str) -> StoreSettings {
    let base = StoreSettings {
        capacity: 1000,
        bits: Bits::Two,
        idempotency_window: Duration::from_secs(3600),
    };
    match case {
        // Several lists' worth, so the counter rolls over under concurrency.
        "allocation_uniqueness" => StoreSettings {
            capacity: 48_000,
            ..base
        },
        // Small enough to fill, large enough that two lists' orders differ
        // except with negligible probability (1 / 64!).
        "full_list_opens_a_new_list" => StoreSettings {
            capacity: 64,
            ..base
        },
        "one_bit_lists" | "one_bit_refs_skip_suspension" => StoreSettings {
            capacity: 100,
            bits: Bits::One,
            ..base
        },
        "count_spans_into_a_new_list" | "list_ids_name_every_list_of_a_format" => StoreSettings {
            capacity: 10,
            ..base
        },
        // Batches of up to 5 spill over often; dozens of lists.
        // One batch of 300 entries.
        "concurrent_takers_never_share_an_event" => StoreSettings {
            capacity: 400,
            ..base
        },
        "listing_matches_a_model" => StoreSettings {
            capacity: 16,
            ..base
        },
        _ => base,
    }
}

/// A fixed "now" far from 0, so that subtraction mistakes show.
pub const NOW: UnixSeconds = 1_700_000_000;

/// The client id `name` (which must be a valid one).
pub fn client(name: &str) -> ClientId {
    ClientId::parse(name).unwrap()
}

fn digest(n: u8) -> [u8; 32] {
    [n; 32]
}

/// How long the contract's records count after their request.
pub const KEEP: UnixSeconds = 3660;

/// A well-formed jti derived from a readable name (the same name, the same
/// jti), so that the scenarios can say which request is which.
pub fn jti(name: &str) -> Jti {
    Jti::from_name(name)
}

pub fn req(
    client_name: &str,
    format: ListFormat,
    jti_name: &str,
    now: UnixSeconds,
) -> AllocateRequest {
    AllocateRequest {
        client: client(client_name),
        format,
        jti: jti(jti_name),
        digest: digest(1),
        status_expiry: now + 86_400,
        count: 1,
        issuance_ref: None,
        now,
        keep_until: now + KEEP,
        events: None,
    }
}

/// A status change with its own fresh jti (and a digest unique to it).
pub fn change(
    who: &ClientId,
    list: ListId,
    idx: u64,
    status: Status,
    now: UnixSeconds,
) -> StatusChange {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("change-{n}");
    StatusChange {
        client: who.clone(),
        list,
        idx,
        status,
        digest: *blake3::hash(name.as_bytes()).as_bytes(),
        jti: jti(&name),
        now,
        keep_until: now + KEEP,
        events: None,
    }
}

/// Applies a status change with a fresh jti.
pub async fn set<S: Store>(
    store: &S,
    who: &ClientId,
    list: ListId,
    idx: u64,
    status: Status,
    now: UnixSeconds,
) -> Result<SetStatusOutcome, StoreError> {
    store.set_status(&change(who, list, idx, status, now)).await
}

pub fn allocated(outcome: AllocateOutcome) -> Allocation {
    match outcome {
        AllocateOutcome::Allocated(a) => a,
        other => panic!("expected Allocated, got {other:?}"),
    }
}

/// Allocates one index for a fresh jti and returns it.
async fn one<S: Store>(
    store: &S,
    client_name: &str,
    format: ListFormat,
    jti: &str,
) -> (ListId, u64) {
    let a = allocated(
        store
            .allocate(&req(client_name, format, jti, NOW))
            .await
            .unwrap(),
    );
    assert_eq!(a.indexes.len(), 1);
    (a.list, a.indexes[0])
}

/// 200,000 allocations from 16 concurrent streams, rolling over several
/// lists: every (list, idx) is distinct and below the capacity, every list but
/// the last is exactly full, and each list's counter equals what was found.
pub async fn allocation_uniqueness<S: Store>(store: &S, settings: &StoreSettings) {
    const TOTAL: usize = 200_000;
    const STREAMS: usize = 16;
    let per_stream = TOTAL / STREAMS;
    let streams = (0..STREAMS).map(|s| async move {
        let mut got = Vec::with_capacity(per_stream);
        for i in 0..per_stream {
            let r = req("uniq", ListFormat::Token, &format!("jti-{s}-{i}"), NOW);
            let a = allocated(store.allocate(&r).await.unwrap());
            assert_eq!(a.format, ListFormat::Token);
            got.push((a.list, a.indexes[0]));
        }
        got
    });
    let all: Vec<(ListId, u64)> = join_all(streams).await.into_iter().flatten().collect();
    assert_eq!(all.len(), TOTAL);

    let mut seen = HashSet::with_capacity(TOTAL);
    let mut per_list: HashMap<ListId, u64> = HashMap::new();
    for (list, idx) in &all {
        assert!(*idx < settings.capacity, "{idx} >= capacity");
        assert!(seen.insert((*list, *idx)), "duplicate ({list}, {idx})");
        *per_list.entry(*list).or_default() += 1;
    }
    let lists = (TOTAL as u64).div_ceil(settings.capacity);
    assert_eq!(per_list.len() as u64, lists, "lists opened");
    let mut not_full = 0;
    for (list, found) in &per_list {
        let snap = store.read_list(list).await.unwrap().expect("list exists");
        assert_eq!(snap.meta.allocated, *found, "counter of {list}");
        assert_eq!(snap.meta.capacity, settings.capacity);
        assert_eq!(snap.meta.client, client("uniq"));
        if *found < settings.capacity {
            not_full += 1;
        }
    }
    assert!(not_full <= 1, "only the newest list may have room");
}

/// The same jti and digest, at once or later: the same answer, nothing new
/// allocated. There is no "in flight" state: the allocation and its record
/// are one step.
pub async fn replay_gives_the_same_answer<S: Store>(store: &S, _settings: &StoreSettings) {
    let r = req("c1", ListFormat::Token, "j-replay", NOW);
    let first = allocated(store.allocate(&r).await.unwrap());
    for later in [NOW, NOW + 2, NOW + 100, NOW + KEEP - 1] {
        let again = store
            .allocate(&AllocateRequest {
                now: later,
                ..r.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            again,
            AllocateOutcome::Replayed(first.clone()),
            "at {later}"
        );
    }
    let snap = store.read_list(&first.list).await.unwrap().unwrap();
    assert_eq!(snap.meta.allocated, 1, "replays allocate nothing");
}

/// 32 copies of one request at once (a client retrying on a timeout, a
/// load balancer duplicating): one allocation, and every copy gets it.
pub async fn concurrent_duplicates_get_one_allocation<S: Store>(
    store: &S,
    _settings: &StoreSettings,
) {
    let r = req("c1", ListFormat::Token, "j-dup", NOW);
    let answers = join_all((0..32).map(|_| store.allocate(&r))).await;
    let mut allocations = Vec::new();
    let mut fresh = 0;
    for answer in answers {
        match answer.unwrap() {
            AllocateOutcome::Allocated(a) => {
                fresh += 1;
                allocations.push(a);
            }
            AllocateOutcome::Replayed(a) => allocations.push(a),
            other => panic!("a duplicate got {other:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one copy allocates");
    let a = allocations[0].clone();
    assert!(
        allocations.iter().all(|x| *x == a),
        "every copy gets the same answer"
    );
    let snap = store.read_list(&a.list).await.unwrap().unwrap();
    assert_eq!(snap.meta.allocated, 1);
}

/// The same jti with another digest is Changed, at once and later, and the
/// original is still answered as before.
pub async fn changed_digest_is_changed<S: Store>(store: &S, _settings: &StoreSettings) {
    let r = req("c1", ListFormat::Token, "j-changed", NOW);
    let first = allocated(store.allocate(&r).await.unwrap());
    let other = AllocateRequest {
        digest: digest(2),
        ..r.clone()
    };
    for now in [NOW, NOW + 1000, NOW + KEEP - 1] {
        assert_eq!(
            store
                .allocate(&AllocateRequest {
                    now,
                    ..other.clone()
                })
                .await
                .unwrap(),
            AllocateOutcome::Changed,
            "at {now}"
        );
    }
    assert_eq!(
        store.allocate(&r).await.unwrap(),
        AllocateOutcome::Replayed(first.clone())
    );
    let snap = store.read_list(&first.list).await.unwrap().unwrap();
    assert_eq!(snap.meta.allocated, 1, "a changed request takes nothing");
}

/// A record counts until its request's `keep_until` and no longer: then the
/// jti is new again (the service rejects requests whose `iat` is that old,
/// so this cannot double-allocate one real request).
pub async fn idempotency_window_expiry<S: Store>(store: &S, _settings: &StoreSettings) {
    let r = req("c1", ListFormat::Token, "j-window", NOW);
    let first = allocated(store.allocate(&r).await.unwrap());
    let inside = AllocateRequest {
        now: NOW + KEEP - 1,
        ..r.clone()
    };
    assert_eq!(
        store.allocate(&inside).await.unwrap(),
        AllocateOutcome::Replayed(first.clone())
    );
    // After it even another digest is a new request, not Changed.
    let after = AllocateRequest {
        now: NOW + KEEP,
        keep_until: NOW + 2 * KEEP,
        digest: digest(9),
        ..r.clone()
    };
    let second = allocated(store.allocate(&after).await.unwrap());
    assert_ne!(
        (second.list, &second.indexes),
        (first.list, &first.indexes),
        "a new allocation"
    );
    // And the new record is live.
    assert_eq!(
        store.allocate(&after).await.unwrap(),
        AllocateOutcome::Replayed(second)
    );
}

/// A change request sent again gets the same answer (same time) and applies
/// nothing, also after later changes to the entry: an old `/unsuspend`
/// replayed after a new suspension leaves the entry suspended.
pub async fn change_replay_gives_the_same_answer<S: Store>(store: &S, _settings: &StoreSettings) {
    let c = client("c1");
    let (list, idx) = one(store, "c1", ListFormat::Token, "j-chg-replay").await;
    let suspend = change(&c, list, idx, Status::Suspended, NOW + 1);
    let unsuspend = change(&c, list, idx, Status::Valid, NOW + 2);
    assert_eq!(
        store.set_status(&suspend).await.unwrap(),
        SetStatusOutcome::Done { at: NOW + 1 }
    );
    assert_eq!(
        store.set_status(&unsuspend).await.unwrap(),
        SetStatusOutcome::Done { at: NOW + 2 }
    );
    assert_eq!(
        set(store, &c, list, idx, Status::Suspended, NOW + 3)
            .await
            .unwrap(),
        SetStatusOutcome::Done { at: NOW + 3 }
    );
    let v = store.list_version(&list).await.unwrap().unwrap();
    // The old requests again, later: their recorded answers (with their
    // times), nothing applied.
    for later in [NOW + 4, NOW + 100] {
        for (old, at) in [(&unsuspend, NOW + 2), (&suspend, NOW + 1)] {
            let replay = StatusChange {
                now: later,
                ..old.clone()
            };
            assert_eq!(
                store.set_status(&replay).await.unwrap(),
                SetStatusOutcome::Done { at },
                "{:?} at {later}",
                old.status
            );
        }
    }
    assert_eq!(
        store.list_version(&list).await.unwrap().unwrap(),
        v,
        "no bump"
    );
    let snap = store.read_list(&list).await.unwrap().unwrap();
    let entries = StatusList::from_bytes(
        snap.meta.format.layout(),
        snap.meta.bits,
        snap.meta.capacity,
        snap.bytes,
    )
    .unwrap();
    assert_eq!(entries.get(idx).unwrap(), Status::Suspended.value());
    // "Already" answers are recorded too.
    let again = change(&c, list, idx, Status::Suspended, NOW + 5);
    let first = store.set_status(&again).await.unwrap();
    assert_eq!(first, SetStatusOutcome::Already { at: Some(NOW + 3) });
    assert_eq!(store.set_status(&again).await.unwrap(), first);
}

/// One jti, one request: the same jti with another operation or target is
/// Changed and applies nothing; a jti used for `/issue` cannot be reused for
/// a change, nor the reverse.
pub async fn a_jti_is_used_for_one_thing<S: Store>(store: &S, _settings: &StoreSettings) {
    let c = client("c1");
    let (list, idx) = one(store, "c1", ListFormat::Token, "j-one-thing").await;
    let (_, idx2) = one(store, "c1", ListFormat::Token, "j-one-thing-2").await;
    let suspend = change(&c, list, idx, Status::Suspended, NOW);
    assert_eq!(
        store.set_status(&suspend).await.unwrap(),
        SetStatusOutcome::Done { at: NOW }
    );
    let v = store.list_version(&list).await.unwrap().unwrap();
    // The same jti re-routed: another operation, another entry.
    for (status, target) in [(Status::Invalid, idx), (Status::Suspended, idx2)] {
        let rerouted = StatusChange {
            status,
            idx: target,
            digest: digest(77),
            now: NOW + 10,
            ..suspend.clone()
        };
        assert_eq!(
            store.set_status(&rerouted).await.unwrap(),
            SetStatusOutcome::Changed
        );
    }
    assert_eq!(
        store.list_version(&list).await.unwrap().unwrap(),
        v,
        "nothing applied"
    );
    // An /issue jti used for a change.
    let issue_jti = StatusChange {
        jti: jti("j-one-thing"),
        ..change(&c, list, idx2, Status::Invalid, NOW)
    };
    assert_eq!(
        store.set_status(&issue_jti).await.unwrap(),
        SetStatusOutcome::Changed
    );
    // A change jti used for an /issue.
    let change_jti = AllocateRequest {
        digest: digest(78),
        jti: suspend.jti.clone(),
        ..req("c1", ListFormat::Token, "unused", NOW)
    };
    assert_eq!(
        store.allocate(&change_jti).await.unwrap(),
        AllocateOutcome::Changed
    );
    assert_eq!(
        store.list_version(&list).await.unwrap().unwrap(),
        v,
        "nothing applied"
    );
    // The jti of another client is another request.
    let other = StatusChange {
        client: client("c2"),
        ..suspend.clone()
    };
    assert_eq!(
        store.set_status(&other).await.unwrap(),
        SetStatusOutcome::NotYourList
    );
}

/// A change's record counts until its `keep_until`, then the jti is new.
pub async fn change_records_live_until_keep_until<S: Store>(store: &S, _settings: &StoreSettings) {
    let c = client("c1");
    let (list, idx) = one(store, "c1", ListFormat::Token, "j-chg-keep").await;
    let suspend = StatusChange {
        keep_until: NOW + 50,
        ..change(&c, list, idx, Status::Suspended, NOW)
    };
    store.set_status(&suspend).await.unwrap();
    set(store, &c, list, idx, Status::Valid, NOW + 1)
        .await
        .unwrap();
    let at = |now| StatusChange {
        now,
        keep_until: now + 50,
        ..suspend.clone()
    };
    assert_eq!(
        store.set_status(&at(NOW + 49)).await.unwrap(),
        SetStatusOutcome::Done { at: NOW },
        "still recorded"
    );
    assert_eq!(
        store.set_status(&at(NOW + 50)).await.unwrap(),
        SetStatusOutcome::Done { at: NOW + 50 },
        "a new request once the record is over"
    );
}

/// When the current list cannot hold the request, a new list opens, with
/// its own id and its own allocation order; a full list stays full.
pub async fn full_list_opens_a_new_list<S: Store>(store: &S, settings: &StoreSettings) {
    let cap = settings.capacity;
    let mut first_list = Vec::new();
    for i in 0..cap {
        first_list.push(one(store, "c1", ListFormat::Token, &format!("a{i}")).await);
    }
    let list1 = first_list[0].0;
    assert!(
        first_list.iter().all(|(l, _)| *l == list1),
        "one list until full"
    );
    let mut idx1: Vec<u64> = first_list.iter().map(|(_, i)| *i).collect();
    let order1 = idx1.clone();
    idx1.sort_unstable();
    assert_eq!(
        idx1,
        (0..cap).collect::<Vec<_>>(),
        "a full list uses every index"
    );

    let mut second_list = Vec::new();
    for i in 0..cap {
        second_list.push(one(store, "c1", ListFormat::Token, &format!("b{i}")).await);
    }
    let list2 = second_list[0].0;
    assert_ne!(list2, list1, "a new list id");
    assert!(second_list.iter().all(|(l, _)| *l == list2));
    let order2: Vec<u64> = second_list.iter().map(|(_, i)| *i).collect();
    assert_ne!(order1, order2, "each list has its own allocator key");

    // A request for more than the room left takes the room and spills the
    // rest into a new list.
    let mut r = req("c1", ListFormat::Token, "c-half", NOW);
    r.count = (cap / 2) as u32 + 1;
    let a = allocated(store.allocate(&r).await.unwrap());
    let list3 = a.list;
    assert!(a.next.is_none(), "a fresh list holds it");
    let mut r2 = req("c1", ListFormat::Token, "c-rest", NOW);
    r2.count = (cap / 2) as u32;
    let b = allocated(store.allocate(&r2).await.unwrap());
    assert_eq!(b.list, list3, "the room left first");
    let room = cap - u64::from(r.count);
    assert_eq!(b.indexes.len() as u64, room);
    let spill = b.next.clone().expect("the rest in a new list");
    assert!(![list1, list2, list3].contains(&spill.list));
    assert_eq!(spill.indexes.len() as u64, u64::from(r2.count) - room);
    let m1 = store.read_list(&list1).await.unwrap().unwrap().meta;
    let m3 = store.read_list(&list3).await.unwrap().unwrap().meta;
    let m4 = store.read_list(&spill.list).await.unwrap().unwrap().meta;
    assert_eq!(m1.allocated, cap);
    assert_eq!(m3.allocated, cap, "filled, not left with a gap");
    assert_eq!(m4.allocated, u64::from(r2.count) - room);
}

/// Lists belong to one client and one format.
pub async fn lists_are_per_client_and_format<S: Store>(store: &S, _settings: &StoreSettings) {
    let (a_tok, _) = one(store, "client-a", ListFormat::Token, "p1").await;
    let (a_bit, _) = one(store, "client-a", ListFormat::Bitstring, "p2").await;
    let (b_tok, _) = one(store, "client-b", ListFormat::Token, "p1").await;
    let (a_tok2, _) = one(store, "client-a", ListFormat::Token, "p3").await;
    assert_eq!(a_tok, a_tok2, "same client and format: same current list");
    let ids: HashSet<ListId> = [a_tok, a_bit, b_tok].into_iter().collect();
    assert_eq!(ids.len(), 3);
    for (list, who, format) in [
        (a_tok, "client-a", ListFormat::Token),
        (a_bit, "client-a", ListFormat::Bitstring),
        (b_tok, "client-b", ListFormat::Token),
    ] {
        let meta = store.read_list(&list).await.unwrap().unwrap().meta;
        assert_eq!(meta.client, client(who));
        assert_eq!(meta.format, format);
    }
    // The same jti from another client is another request.
    let other = req("client-b", ListFormat::Token, "p2", NOW);
    assert!(matches!(
        store.allocate(&other).await.unwrap(),
        AllocateOutcome::Allocated(_)
    ));
}

/// `list_ids` names every list of one format, of every client, each once,
/// and none of the other format (what the aggregation endpoint publishes).
pub async fn list_ids_name_every_list_of_a_format<S: Store>(store: &S, settings: &StoreSettings) {
    let sorted = |mut ids: Vec<ListId>| {
        ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        ids
    };
    assert!(
        store.list_ids(ListFormat::Token).await.unwrap().is_empty(),
        "an empty store"
    );
    let mut token = HashSet::new();
    let mut bitstring = HashSet::new();
    // Several lists per client: more allocations than one list holds.
    for i in 0..(settings.capacity * 2 + 1) {
        for who in ["client-a", "client-b"] {
            token.insert(one(store, who, ListFormat::Token, &format!("t{i}")).await.0);
        }
        bitstring.insert(
            one(store, "client-a", ListFormat::Bitstring, &format!("b{i}"))
                .await
                .0,
        );
    }
    assert_eq!(token.len(), 6, "three lists for each of two clients");
    assert_eq!(bitstring.len(), 3);
    let want = |ids: &HashSet<ListId>| sorted(ids.iter().copied().collect());
    assert_eq!(
        sorted(store.list_ids(ListFormat::Token).await.unwrap()),
        want(&token)
    );
    assert_eq!(
        sorted(store.list_ids(ListFormat::Bitstring).await.unwrap()),
        want(&bitstring)
    );
}

/// `count` > 1: distinct indexes from one list, replayed together.
pub async fn count_above_one_comes_from_one_list<S: Store>(store: &S, settings: &StoreSettings) {
    let mut r = req("c1", ListFormat::Bitstring, "j-count", NOW);
    r.count = 5;
    let a = allocated(store.allocate(&r).await.unwrap());
    assert_eq!(a.indexes.len(), 5);
    assert_eq!(a.indexes.iter().collect::<HashSet<_>>().len(), 5);
    assert!(a.indexes.iter().all(|i| *i < settings.capacity));
    let meta = store.read_list(&a.list).await.unwrap().unwrap().meta;
    assert_eq!(meta.allocated, 5);
    assert_eq!(
        store.allocate(&r).await.unwrap(),
        AllocateOutcome::Replayed(a.clone())
    );
    // Every one of them can be revoked.
    for idx in &a.indexes {
        assert_eq!(
            set(store, &r.client, a.list, *idx, Status::Invalid, NOW)
                .await
                .unwrap(),
            SetStatusOutcome::Done { at: NOW }
        );
    }
}

/// The outcomes the revoke, suspend and unsuspend endpoints need.
pub async fn revoke_suspend_unsuspend_outcomes<S: Store>(store: &S, _settings: &StoreSettings) {
    let c = client("c1");
    let (list, idx) = one(store, "c1", ListFormat::Token, "j-status").await;
    let apply = |status, at| set(store, &c, list, idx, status, at);

    assert_eq!(
        apply(Status::Valid, NOW).await.unwrap(),
        SetStatusOutcome::Already { at: None },
        "valid since issued"
    );
    assert_eq!(
        apply(Status::Suspended, NOW + 10).await.unwrap(),
        SetStatusOutcome::Done { at: NOW + 10 }
    );
    assert_eq!(
        apply(Status::Suspended, NOW + 11).await.unwrap(),
        SetStatusOutcome::Already { at: Some(NOW + 10) }
    );
    assert_eq!(
        apply(Status::Valid, NOW + 20).await.unwrap(),
        SetStatusOutcome::Done { at: NOW + 20 }
    );
    assert_eq!(
        apply(Status::Valid, NOW + 21).await.unwrap(),
        SetStatusOutcome::Already { at: Some(NOW + 20) }
    );
    assert_eq!(
        apply(Status::Invalid, NOW + 30).await.unwrap(),
        SetStatusOutcome::Done { at: NOW + 30 }
    );
    assert_eq!(
        apply(Status::Invalid, NOW + 40).await.unwrap(),
        SetStatusOutcome::Already { at: Some(NOW + 30) },
        "the original revocation time"
    );
    for target in [
        Status::Valid,
        Status::Suspended,
        Status::ApplicationSpecific,
    ] {
        assert_eq!(
            apply(target, NOW + 50).await.unwrap(),
            SetStatusOutcome::NotAllowed {
                current: Status::Invalid
            },
            "INVALID is final ({target})"
        );
    }
    // Suspended straight to revoked is allowed too.
    let (list2, idx2) = one(store, "c1", ListFormat::Token, "j-status-2").await;
    let apply2 = |status, at| set(store, &c, list2, idx2, status, at);
    assert_eq!(
        apply2(Status::Suspended, NOW).await.unwrap(),
        SetStatusOutcome::Done { at: NOW }
    );
    assert_eq!(
        apply2(Status::Invalid, NOW + 1).await.unwrap(),
        SetStatusOutcome::Done { at: NOW + 1 }
    );
    let snap = store.read_list(&list).await.unwrap().unwrap();
    let entries = StatusList::from_bytes(
        snap.meta.format.layout(),
        snap.meta.bits,
        snap.meta.capacity,
        snap.bytes,
    )
    .unwrap();
    assert_eq!(entries.get(idx).unwrap(), Status::Invalid.value());
    assert_eq!(entries.get(idx2).unwrap(), Status::Invalid.value());
}

/// Ownership, unknown lists and indexes never handed out, checked in that
/// order (the CRS revoke order).
pub async fn ownership_unknown_lists_and_never_issued<S: Store>(
    store: &S,
    settings: &StoreSettings,
) {
    let c = client("owner");
    let mut issued = HashSet::new();
    let mut list = None;
    for i in 0..3 {
        let (l, idx) = one(store, "owner", ListFormat::Bitstring, &format!("o{i}")).await;
        list = Some(l);
        issued.insert(idx);
    }
    let list = list.unwrap();
    let some_issued = *issued.iter().next().unwrap();
    let never = (0..settings.capacity)
        .find(|i| !issued.contains(i))
        .unwrap();
    let intruder = client("intruder");

    for (who, l, idx, status, expected) in [
        (
            &intruder,
            list,
            some_issued,
            Status::Invalid,
            SetStatusOutcome::NotYourList,
        ),
        (
            &intruder,
            list,
            never,
            Status::Invalid,
            SetStatusOutcome::NotYourList,
        ),
        (
            &c,
            ListId::random(),
            some_issued,
            Status::Invalid,
            SetStatusOutcome::ListNotFound,
        ),
        (
            &intruder,
            ListId::random(),
            0,
            Status::Suspended,
            SetStatusOutcome::ListNotFound,
        ),
        (
            &c,
            list,
            never,
            Status::Invalid,
            SetStatusOutcome::NeverIssued,
        ),
        (
            &c,
            list,
            never,
            Status::Valid,
            SetStatusOutcome::NeverIssued,
        ),
        (
            &c,
            list,
            settings.capacity,
            Status::Invalid,
            SetStatusOutcome::NeverIssued,
        ),
        (
            &c,
            list,
            u64::MAX,
            Status::Suspended,
            SetStatusOutcome::NeverIssued,
        ),
    ] {
        assert_eq!(
            set(store, who, l, idx, status, NOW).await.unwrap(),
            expected,
            "{who} {l} {idx} {status}"
        );
    }
    // None of those changed anything.
    let snap = store.read_list(&list).await.unwrap().unwrap();
    assert!(snap.bytes.iter().all(|b| *b == 0));
    // The owner can act on every issued index.
    for idx in issued {
        assert_eq!(
            set(store, &c, list, idx, Status::Suspended, NOW)
                .await
                .unwrap(),
            SetStatusOutcome::Done { at: NOW }
        );
    }
}

/// Every change bumps the version exactly once; no-ops and refusals do not.
pub async fn version_bumps_once_per_change<S: Store>(store: &S, _settings: &StoreSettings) {
    let c = client("c1");
    let (list, idx) = one(store, "c1", ListFormat::Token, "v1").await;
    let (_, idx_b) = one(store, "c1", ListFormat::Token, "v2").await;
    let version = || async { store.list_version(&list).await.unwrap().unwrap() };
    let v0 = version().await;
    assert_eq!(
        store.read_list(&list).await.unwrap().unwrap().version,
        v0,
        "read_list and list_version agree"
    );
    let steps: [(ClientId, u64, Status, u64); 9] = [
        (c.clone(), idx, Status::Suspended, 1),
        (c.clone(), idx, Status::Suspended, 0),
        (c.clone(), idx, Status::Valid, 1),
        (c.clone(), idx, Status::Valid, 0),
        (client("someone-else"), idx, Status::Invalid, 0),
        (c.clone(), idx, Status::Invalid, 1),
        (c.clone(), idx, Status::Valid, 0),
        (c.clone(), idx_b, Status::Invalid, 1),
        (c.clone(), u64::MAX, Status::Invalid, 0),
    ];
    let mut expected = v0;
    for (who, i, status, bump) in steps {
        set(store, &who, list, i, status, NOW).await.unwrap();
        expected += bump;
        assert_eq!(version().await, expected, "after {who} {i} {status}");
        assert_eq!(
            store.read_list(&list).await.unwrap().unwrap().version,
            expected
        );
    }
    assert_eq!(expected, v0 + 4);
}

/// The raw bytes hold each status at its index in the list's own bit order:
/// IETF (entry 0 in the low bits of byte 0) for token lists, W3C (entry 0 in
/// the high bits) for bitstring lists.
pub async fn raw_bytes_in_the_list_bit_order<S: Store>(store: &S, settings: &StoreSettings) {
    let c = client("c1");
    for format in [ListFormat::Token, ListFormat::Bitstring] {
        let mut r = req("c1", format, &format!("bytes-{format}"), NOW);
        r.count = 12;
        let a = allocated(store.allocate(&r).await.unwrap());
        let plan = [
            (a.indexes[0], Status::Invalid),
            (a.indexes[1], Status::Suspended),
            (a.indexes[2], Status::Suspended),
            (a.indexes[3], Status::Invalid),
        ];
        for (idx, status) in plan {
            set(store, &c, a.list, idx, status, NOW).await.unwrap();
        }
        // Suspended then reinstated: back to 0.
        set(store, &c, a.list, a.indexes[2], Status::Valid, NOW)
            .await
            .unwrap();
        let expected: HashMap<u64, u8> = [
            (a.indexes[0], 1u8),
            (a.indexes[1], 2u8),
            (a.indexes[3], 1u8),
        ]
        .into_iter()
        .collect();

        let snap = store.read_list(&a.list).await.unwrap().unwrap();
        assert_eq!(snap.meta.format, format);
        assert_eq!(snap.meta.bits, settings.bits);
        let bits = u64::from(settings.bits.get());
        assert_eq!(
            snap.bytes.len() as u64,
            (settings.capacity * bits).div_ceil(8),
            "exactly the packed length"
        );
        let entries = StatusList::from_bytes(
            format.layout(),
            snap.meta.bits,
            snap.meta.capacity,
            snap.bytes.clone(),
        )
        .unwrap();
        let nonzero: HashMap<u64, u8> = entries.nonzero().collect();
        assert_eq!(nonzero, expected, "{format}: only the changed entries");

        // And by hand, without the domain's bit rules.
        for idx in a.indexes.iter().copied() {
            let first_bit = idx * bits;
            let byte = snap.bytes[(first_bit / 8) as usize];
            let within = (first_bit % 8) as u32;
            let shift = match format {
                ListFormat::Token => within,
                ListFormat::Bitstring => 8 - within - bits as u32,
            };
            let mask = ((1u16 << bits) - 1) as u8;
            let value = (byte >> shift) & mask;
            assert_eq!(
                value,
                expected.get(&idx).copied().unwrap_or(0),
                "{format} idx {idx}: byte {byte:#010b}"
            );
        }
    }
}

/// 1-bit lists hold VALID and INVALID only: revocation works, suspension is
/// a typed refusal, not an error, a panic or a corrupted neighbour.
pub async fn one_bit_lists<S: Store>(store: &S, settings: &StoreSettings) {
    assert_eq!(settings.bits, Bits::One);
    let c = client("c1");
    let mut r = req("c1", ListFormat::Bitstring, "one-bit", NOW);
    r.count = 2;
    let a = allocated(store.allocate(&r).await.unwrap());
    let (x, y) = (a.indexes[0], a.indexes[1]);
    assert_eq!(
        set(store, &c, a.list, x, Status::Invalid, NOW)
            .await
            .unwrap(),
        SetStatusOutcome::Done { at: NOW }
    );
    assert_eq!(
        set(store, &c, a.list, y, Status::Suspended, NOW)
            .await
            .unwrap(),
        SetStatusOutcome::Unsupported { bits: Bits::One }
    );
    let snap = store.read_list(&a.list).await.unwrap().unwrap();
    assert_eq!(snap.meta.bits, Bits::One);
    assert_eq!(snap.bytes.len() as u64, settings.capacity.div_ceil(8));
    let byte = snap.bytes[(x / 8) as usize];
    assert_eq!((byte >> (7 - x % 8)) & 1, 1, "W3C: entry 0 is the MSB");
    let entries = StatusList::from_bytes(
        snap.meta.format.layout(),
        Bits::One,
        settings.capacity,
        snap.bytes,
    )
    .unwrap();
    assert_eq!(entries.nonzero().collect::<Vec<_>>(), vec![(x, 1)]);
}

/// A list's retire-after is the latest statusExpiry allocated in it, and
/// created_at is when it opened.
pub async fn retire_after_is_the_latest_status_expiry<S: Store>(
    store: &S,
    _settings: &StoreSettings,
) {
    let mut list = None;
    for (i, expiry) in [NOW + 500, NOW + 900, NOW + 700].into_iter().enumerate() {
        let r = AllocateRequest {
            status_expiry: expiry,
            now: NOW + i as u64,
            ..req("c1", ListFormat::Token, &format!("ret{i}"), NOW)
        };
        list = Some(allocated(store.allocate(&r).await.unwrap()).list);
    }
    let meta = store.read_list(&list.unwrap()).await.unwrap().unwrap().meta;
    assert_eq!(meta.retire_after, NOW + 900);
    assert_eq!(meta.created_at, NOW);
    assert_eq!(meta.allocated, 3);
}

/// Unknown lists read as absent; health answers, clean.
pub async fn unknown_lists_and_ping<S: Store>(store: &S, _settings: &StoreSettings) {
    assert!(store.health().await.unwrap().damaged.is_empty());
    let unknown = ListId::parse("000000000000").unwrap();
    assert_eq!(store.list_version(&unknown).await.unwrap(), None);
    assert_eq!(store.read_list(&unknown).await.unwrap(), None);
    assert_eq!(
        set(store, &client("c1"), unknown, 0, Status::Invalid, NOW)
            .await
            .unwrap(),
        SetStatusOutcome::ListNotFound
    );
    let (list, _) = one(store, "c1", ListFormat::Token, "exists").await;
    assert!(store.list_version(&list).await.unwrap().is_some());
    assert!(store.health().await.unwrap().damaged.is_empty());
}

/// Requests the store cannot serve are typed errors, and the store keeps
/// working after them.
pub async fn bad_input_is_a_typed_error<S: Store>(store: &S, settings: &StoreSettings) {
    let base = req("c1", ListFormat::Token, "bad", NOW);
    let too_many = u32::try_from(settings.capacity + 1).unwrap_or(u32::MAX);
    for (why, bad) in [
        (
            "count 0",
            AllocateRequest {
                count: 0,
                issuance_ref: None,
                ..base.clone()
            },
        ),
        (
            "count above capacity",
            AllocateRequest {
                count: too_many,
                issuance_ref: None,
                ..base.clone()
            },
        ),
        (
            "count u32::MAX",
            AllocateRequest {
                count: u32::MAX,
                issuance_ref: None,
                ..base.clone()
            },
        ),
        (
            "a record that ends before its request",
            AllocateRequest {
                keep_until: NOW,
                ..base.clone()
            },
        ),
    ] {
        let err = store.allocate(&bad).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{why}: {err:?}");
    }
    // Odd but valid values: the largest timestamps. (A jti is always a
    // lowercase UUID: `Jti` cannot hold anything else.)
    let odd = AllocateRequest {
        status_expiry: u64::MAX,
        now: NOW,
        ..base.clone()
    };
    let a = allocated(store.allocate(&odd).await.unwrap());
    assert_eq!(
        store.allocate(&odd).await.unwrap(),
        AllocateOutcome::Replayed(a.clone())
    );
    let meta = store.read_list(&a.list).await.unwrap().unwrap().meta;
    assert_eq!(meta.retire_after, u64::MAX);
    // A refused request took nothing.
    assert_eq!(meta.allocated, 1);
    for idx in [settings.capacity, settings.capacity + 1, u64::MAX] {
        assert_eq!(
            set(store, &base.client, a.list, idx, Status::Invalid, NOW)
                .await
                .unwrap(),
            SetStatusOutcome::NeverIssued,
            "idx {idx}"
        );
    }
    for bad in [StatusChange {
        keep_until: NOW,
        ..change(&base.client, a.list, a.indexes[0], Status::Invalid, NOW)
    }] {
        let err = store.set_status(&bad).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    }
    store.health().await.unwrap();
}
