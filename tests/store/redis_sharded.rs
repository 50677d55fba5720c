//! The Redis adapter with each client spread over 3 shards (hash tags
//! `{client}`, `{client/1}`, `{client/2}`), on a private `redis-server`:
//! the contract suite, and what sharding itself promises (allocations
//! spread over the shards, a changed request found across shards, a change
//! by list id or by ref finding its shard).

use std::collections::HashSet;

use statuslist::domain::{ListFormat, Status};
use statuslist::ports::{
    AllocateOutcome, EntryQuery, RefChangeOutcome, SetStatusOutcome, Store, StoreSettings,
};
use statuslist::store::redis::{RedisSettings, RedisStore};

use crate::contract::{
    self, NOW, all_pages, allocated, change, client, jti, ref_change, ref_req, req,
};
use crate::support::RedisServer;

/// The contract suite's factory: a fresh private server per store, each
/// client spread over 3 shards.
pub async fn make_store(settings: StoreSettings) -> (RedisStore, RedisServer) {
    let server = RedisServer::start();
    let store = connect(&server, settings).await;
    (store, server)
}

// The contract cases that hold for a client spread over shards: all but
// those that assume one current list per (client, format) (a full list
// opening the next, a count spilling into it, the lists' count and
// retire-after) or one listing order over all of a client's entries
// (sharded, the listing gives one shard's entries after the other's; see
// "Redis Cluster" in the README). What sharding promises instead is
// checked below.
macro_rules! sharded_contract_suite {
    ($make:path) => {
        $crate::contract::contract_suite!(@cases $make;
            replay_gives_the_same_answer,
            concurrent_duplicates_get_one_allocation,
            changed_digest_is_changed,
            idempotency_window_expiry,
            change_replay_gives_the_same_answer,
            a_jti_is_used_for_one_thing,
            change_records_live_until_keep_until,
            count_above_one_comes_from_one_list,
            revoke_suspend_unsuspend_outcomes,
            ownership_unknown_lists_and_never_issued,
            version_bumps_once_per_change,
            raw_bytes_in_the_list_bit_order,
            one_bit_lists,
            unknown_lists_and_ping,
            bad_input_is_a_typed_error,
            refs_bind_entries_and_accumulate,
            ref_changes_skip_and_count,
            claimed_jtis_are_single_use,
            concurrent_issues_with_refs_are_all_listed,
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
}
pub(crate) use sharded_contract_suite;

sharded_contract_suite!(make_store);

async fn connect(server: &RedisServer, settings: StoreSettings) -> RedisStore {
    let redis = RedisSettings {
        shards_per_client: 3,
        ..RedisSettings::new(server.url())
    };
    RedisStore::connect(redis, settings)
        .await
        .expect("connect to the private redis")
}

/// The hash tags that hold keys, from `KEYS *` (a private test server).
fn tags(server: &RedisServer) -> HashSet<String> {
    server
        .command("KEYS *")
        .lines()
        .filter_map(|k| {
            let open = k.find('{')?;
            let close = k[open..].find('}')?;
            Some(k[open + 1..open + close].to_owned())
        })
        .collect()
}

/// A client's allocations, with and without refs, land in all three
/// shards, each with its own lists; a replay finds its answer and a
/// changed request is refused whichever shard its new body points to.
#[tokio::test]
async fn a_client_spreads_over_its_shards() {
    let (store, server) = make_store(StoreSettings::default()).await;
    let mut lists = HashSet::new();
    let mut seen = HashSet::new();
    for i in 0..60 {
        let r = if i % 2 == 0 {
            req("big", ListFormat::Token, &format!("plain-{i}"), NOW)
        } else {
            ref_req(
                "big",
                ListFormat::Token,
                &format!("ref-{i}"),
                Some(&format!("order-{i}")),
                1,
                NOW,
            )
        };
        let a = allocated(store.allocate(&r).await.unwrap());
        assert!(seen.insert((a.list, a.indexes[0])), "one (list, idx) twice");
        lists.insert(a.list);
        assert_eq!(
            store.allocate(&r).await.unwrap(),
            AllocateOutcome::Replayed(a.clone())
        );
        // The same jti for another body: refused, whatever shard the other
        // body's ref falls in.
        for other in ["x", "y", "z", "w"] {
            let changed = ref_req(
                "big",
                ListFormat::Token,
                r.jti.to_string().as_str(),
                Some(other),
                1,
                NOW,
            );
            let changed = statuslist::ports::AllocateRequest {
                jti: r.jti.clone(),
                ..changed
            };
            assert_eq!(
                store.allocate(&changed).await.unwrap(),
                AllocateOutcome::Changed,
                "{i} {other}"
            );
        }
    }
    assert_eq!(lists.len(), 3, "one current list per shard");
    let tags = tags(&server);
    // Shard 0 is `{big}`; shard n is `{big/n}`, or `{big/n.j}` when that
    // places it in its own range of slots (see `keys::shard_tag`).
    assert!(tags.contains("big"), "big in {tags:?}");
    for n in ["big/1", "big/2"] {
        assert!(
            tags.iter()
                .any(|t| t == n || t.strip_prefix(n).is_some_and(|j| j.starts_with('.'))),
            "{n} in {tags:?}"
        );
    }
    // Every entry is listed, across the shards, each once.
    let listed = all_pages(
        &store,
        &EntryQuery::first_page(client("big"), ListFormat::Token, 7),
    )
    .await;
    assert_eq!(listed.len(), 60);
    let unique: HashSet<_> = listed.iter().map(|e| (e.list, e.idx)).collect();
    assert_eq!(unique, seen);
}

/// A change by list id finds the list's shard from its owner entry; a
/// change by ref finds every entry of the ref in the ref's shard; a jti
/// used for an issue in one shard cannot be reused for a change in
/// another.
#[tokio::test]
async fn changes_find_their_shard() {
    let (store, _server) = make_store(StoreSettings::default()).await;
    let c = client("big");
    let mut issued = Vec::new();
    for i in 0..12 {
        let a = allocated(
            store
                .allocate(&req("big", ListFormat::Token, &format!("p-{i}"), NOW))
                .await
                .unwrap(),
        );
        issued.push(a);
    }
    for a in &issued {
        let out = store
            .set_status(&change(&c, a.list, a.indexes[0], Status::Invalid, NOW + 1))
            .await
            .unwrap();
        assert_eq!(out, SetStatusOutcome::Done { at: NOW + 1 });
        let snap = store.read_list(&a.list).await.unwrap().unwrap();
        assert_eq!(
            snap.version,
            store.list_version(&a.list).await.unwrap().unwrap()
        );
    }
    // The jti of an issue, reused for a change of a list in another shard.
    for (i, a) in issued.iter().enumerate() {
        let mut reuse = change(&c, a.list, a.indexes[0], Status::Suspended, NOW + 2);
        reuse.jti = jti(&format!("p-{}", (i + 1) % issued.len()));
        assert_eq!(
            store.set_status(&reuse).await.unwrap(),
            SetStatusOutcome::Changed,
            "{i}"
        );
    }
    // A ref's entries, issued with several jtis, changed in one step.
    for i in 0..5 {
        store
            .allocate(&ref_req(
                "big",
                ListFormat::Token,
                &format!("r-{i}"),
                Some("batch-7"),
                2,
                NOW,
            ))
            .await
            .unwrap();
    }
    let out = store
        .set_status_by_ref(&ref_change(
            "big",
            ListFormat::Token,
            "batch-7",
            Status::Invalid,
            "rc-1",
            NOW + 3,
        ))
        .await
        .unwrap();
    let RefChangeOutcome::Done(report) = out else {
        panic!("{out:?}");
    };
    assert_eq!(report.changed, 10);
    let by_ref = EntryQuery {
        issuance_ref: Some(contract::iref("batch-7")),
        ..EntryQuery::first_page(c.clone(), ListFormat::Token, 100)
    };
    let listed = all_pages(&store, &by_ref).await;
    assert_eq!(listed.len(), 10);
    assert!(listed.iter().all(|e| e.status == Status::Invalid));
}
