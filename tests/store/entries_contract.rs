//! The store contract of issue references, batches, changes by ref,
//! single-use jtis and the entry listing: run against every adapter through
//! `contract_suite!` like the rest of the contract.
//!
//! The listing is checked against a model: a plain vector of every entry in
//! allocation order, filtered and sorted the slow, obvious way
//! ([`Model::page`]). A seeded random scenario of issues (with and without
//! refs, batches spanning lists, replays), single changes and changes by
//! ref drives both the store and the model, then every kind of query is
//! compared page by page.

use std::collections::{HashMap, HashSet};

use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statuslist::domain::{
    Bits, ClientId, IssuanceRef, ListFormat, ListId, SortOrder, Status, StatusSet,
};
use statuslist::ports::{
    AllocateOutcome, AllocateRequest, Allocation, EntryItem, EntryPage, EntryQuery, JtiClaim,
    JtiClaimOutcome, RefChange, RefChangeOutcome, RefChangeReport, SetStatusOutcome, Store,
    StoreSettings, UnixSeconds,
};

use crate::contract::{KEEP, NOW, allocated, client, jti, req, set};

/// A ref from its text.
pub fn iref(s: &str) -> IssuanceRef {
    IssuanceRef::parse(s).unwrap()
}

/// An `/issue` of `count` entries bound to `r`, with a fresh digest per jti
/// name.
pub fn ref_req(
    who: &str,
    format: ListFormat,
    jti_name: &str,
    r: Option<&str>,
    count: u32,
    now: UnixSeconds,
) -> AllocateRequest {
    AllocateRequest {
        count,
        issuance_ref: r.map(iref),
        digest: *blake3::hash(format!("issue/{jti_name}/{r:?}/{count}").as_bytes()).as_bytes(),
        ..req(who, format, jti_name, now)
    }
}

/// A change by ref with its own jti.
pub fn ref_change(
    who: &str,
    format: ListFormat,
    r: &str,
    status: Status,
    jti_name: &str,
    now: UnixSeconds,
) -> RefChange {
    RefChange {
        client: client(who),
        format,
        issuance_ref: iref(r),
        status,
        jti: jti(jti_name),
        digest: *blake3::hash(format!("ref/{r}/{status}/{jti_name}").as_bytes()).as_bytes(),
        now,
        keep_until: now + KEEP,
        events: None,
    }
}

/// The report of a change by ref that was done (panics otherwise).
pub fn done(outcome: RefChangeOutcome) -> RefChangeReport {
    match outcome {
        RefChangeOutcome::Done(report) => report,
        other => panic!("expected Done, got {other:?}"),
    }
}

/// Every entry `query` selects, in the store's order: all its pages of its
/// `limit`, from its offset.
pub async fn all_pages<S: Store>(store: &S, query: &EntryQuery) -> Vec<EntryItem> {
    let mut out = Vec::new();
    let mut q = query.clone();
    loop {
        let page = store.list_entries(&q).await.unwrap();
        let n = page.items.len();
        out.extend(page.items);
        if n < q.limit as usize {
            return out;
        }
        q.offset += u64::from(q.limit);
    }
}

/// The listing of every entry of `who`'s `format`, no filter, pages of 100.
pub fn everything(who: &str, format: ListFormat) -> EntryQuery {
    EntryQuery::first_page(client(who), format, 100)
}

/// A request for more than the current list has room for takes what is left
/// there and the rest from a new list; all distinct, replayed together,
/// every one changeable, both lists' counters exact.
pub async fn count_spans_into_a_new_list<S: Store>(store: &S, settings: &StoreSettings) {
    let cap = settings.capacity;
    assert_eq!(cap, 10, "this case needs lists of 10");
    let first = allocated(
        store
            .allocate(&ref_req("c1", ListFormat::Token, "fill", None, 7, NOW))
            .await
            .unwrap(),
    );
    assert!(first.next.is_none());
    let r = ref_req("c1", ListFormat::Token, "span", Some("order-1"), 5, NOW);
    let a = allocated(store.allocate(&r).await.unwrap());
    assert_eq!(a.list, first.list, "the rest of the current list first");
    assert_eq!(a.indexes.len(), 3);
    let next = a.next.clone().expect("spilled into a new list");
    assert_ne!(next.list, first.list);
    assert_eq!(next.indexes.len(), 2);
    assert_eq!(a.len(), 5);
    let all: HashSet<(ListId, u64)> = first.entries().chain(a.entries()).collect();
    assert_eq!(all.len(), 12, "all distinct");
    assert!(all.iter().all(|(_, i)| *i < cap));
    assert_eq!(
        store
            .read_list(&first.list)
            .await
            .unwrap()
            .unwrap()
            .meta
            .allocated,
        cap,
        "the first list is full"
    );
    assert_eq!(
        store
            .read_list(&next.list)
            .await
            .unwrap()
            .unwrap()
            .meta
            .allocated,
        2
    );
    assert_eq!(
        store.allocate(&r).await.unwrap(),
        AllocateOutcome::Replayed(a.clone()),
        "replayed whole"
    );
    // The next request continues in the new list.
    let b = allocated(
        store
            .allocate(&ref_req("c1", ListFormat::Token, "after", None, 1, NOW))
            .await
            .unwrap(),
    );
    assert_eq!(b.list, next.list);
    for (list, idx) in a.entries() {
        assert_eq!(
            set(store, &r.client, list, idx, Status::Invalid, NOW + 1)
                .await
                .unwrap(),
            SetStatusOutcome::Done { at: NOW + 1 }
        );
    }
    // A whole list's worth spans too, and a request of exactly the room
    // left stays in its list.
    let whole = allocated(
        store
            .allocate(&ref_req("c1", ListFormat::Token, "whole", None, 10, NOW))
            .await
            .unwrap(),
    );
    assert_eq!(whole.list, next.list);
    assert_eq!(whole.indexes.len(), 7);
    assert_eq!(whole.next.as_ref().map(|r| r.indexes.len()), Some(3));
    let exact = allocated(
        store
            .allocate(&ref_req("c1", ListFormat::Token, "exact", None, 7, NOW))
            .await
            .unwrap(),
    );
    assert_eq!(Some(exact.list), whole.next.as_ref().map(|r| r.list));
    assert!(exact.next.is_none());
}

/// Entries bound to a ref accumulate over requests; a change by ref applies
/// to all of them at once, is recorded and replayed, and refs are per client
/// and format.
pub async fn refs_bind_entries_and_accumulate<S: Store>(store: &S, _settings: &StoreSettings) {
    let t = ListFormat::Token;
    let a = allocated(
        store
            .allocate(&ref_req("c1", t, "r1", Some("batch 7"), 3, NOW))
            .await
            .unwrap(),
    );
    let b = allocated(
        store
            .allocate(&ref_req("c1", t, "r2", Some("batch 7"), 2, NOW + 1))
            .await
            .unwrap(),
    );
    let other = allocated(
        store
            .allocate(&ref_req("c1", t, "r3", Some("batch 8"), 1, NOW + 1))
            .await
            .unwrap(),
    );
    // Another client's identical ref, and the same client's other format.
    let c2 = allocated(
        store
            .allocate(&ref_req("c2", t, "r1", Some("batch 7"), 1, NOW + 1))
            .await
            .unwrap(),
    );
    let bits = allocated(
        store
            .allocate(&ref_req(
                "c1",
                ListFormat::Bitstring,
                "r4",
                Some("batch 7"),
                1,
                NOW + 1,
            ))
            .await
            .unwrap(),
    );

    let revoke = ref_change("c1", t, "batch 7", Status::Invalid, "rv1", NOW + 5);
    let report = done(store.set_status_by_ref(&revoke).await.unwrap());
    assert_eq!(
        report,
        RefChangeReport {
            at: NOW + 5,
            changed: 5,
            skipped: 0,
            already: 0,
            lists: vec![a.list],
        }
    );
    let bound: Vec<(ListId, u64)> = a.entries().chain(b.entries()).collect();
    for (list, idx) in &bound {
        assert_eq!(
            set(store, &client("c1"), *list, *idx, Status::Invalid, NOW + 6)
                .await
                .unwrap(),
            SetStatusOutcome::Already { at: Some(NOW + 5) },
            "revoked by the ref"
        );
    }
    for (who, list, idx, format) in [
        ("c1", other.list, other.indexes[0], t),
        ("c2", c2.list, c2.indexes[0], t),
        ("c1", bits.list, bits.indexes[0], ListFormat::Bitstring),
    ] {
        let q = everything(who, format);
        let items = all_pages(store, &q).await;
        let item = items
            .iter()
            .find(|i| i.list == list && i.idx == idx)
            .expect("listed");
        assert_eq!(item.status, Status::Valid, "untouched: {who} {format}");
    }
    // The same request again: the same report, nothing applied.
    assert_eq!(
        store
            .set_status_by_ref(&RefChange {
                now: NOW + 9,
                ..revoke.clone()
            })
            .await
            .unwrap(),
        RefChangeOutcome::Done(report.clone())
    );
    // The jti with another digest, or reused from an entry change.
    assert_eq!(
        store
            .set_status_by_ref(&RefChange {
                digest: [9; 32],
                ..revoke.clone()
            })
            .await
            .unwrap(),
        RefChangeOutcome::Changed
    );
    // Unknown refs, and refs of other clients or formats.
    for (who, format, r) in [
        ("c1", t, "batch 9"),
        ("c3", t, "batch 7"),
        ("c2", ListFormat::Bitstring, "batch 7"),
    ] {
        assert_eq!(
            store
                .set_status_by_ref(&ref_change(who, format, r, Status::Invalid, "nf", NOW))
                .await
                .unwrap(),
            RefChangeOutcome::NotFound,
            "{who} {format} {r}"
        );
    }
    // A suspension of revoked entries skips them all.
    let again = done(
        store
            .set_status_by_ref(&ref_change(
                "c1",
                t,
                "batch 7",
                Status::Suspended,
                "s1",
                NOW + 7,
            ))
            .await
            .unwrap(),
    );
    assert_eq!(
        (again.changed, again.skipped, again.already),
        (0, 5, 0),
        "{again:?}"
    );
    // Each list the ref touches is changed once: one version bump.
    assert_eq!(store.list_version(&a.list).await.unwrap(), Some(1));
}

/// Mixed entries: what a change by ref changes, skips and finds done.
pub async fn ref_changes_skip_and_count<S: Store>(store: &S, _settings: &StoreSettings) {
    let t = ListFormat::Token;
    let c = client("mix");
    let a = allocated(
        store
            .allocate(&ref_req("mix", t, "m1", Some("m"), 6, NOW))
            .await
            .unwrap(),
    );
    let e: Vec<(ListId, u64)> = a.entries().collect();
    set(store, &c, e[0].0, e[0].1, Status::Invalid, NOW + 1)
        .await
        .unwrap();
    set(store, &c, e[1].0, e[1].1, Status::Suspended, NOW + 1)
        .await
        .unwrap();
    set(store, &c, e[2].0, e[2].1, Status::Suspended, NOW + 1)
        .await
        .unwrap();
    // Suspend: 3 VALID change, 2 SUSPENDED already, 1 INVALID skipped.
    let s = done(
        store
            .set_status_by_ref(&ref_change("mix", t, "m", Status::Suspended, "x1", NOW + 2))
            .await
            .unwrap(),
    );
    assert_eq!((s.changed, s.already, s.skipped), (3, 2, 1));
    // Unsuspend: 5 SUSPENDED change, 1 INVALID skipped.
    let u = done(
        store
            .set_status_by_ref(&ref_change("mix", t, "m", Status::Valid, "x2", NOW + 3))
            .await
            .unwrap(),
    );
    assert_eq!((u.changed, u.already, u.skipped), (5, 0, 1));
    // Revoke: 5 change, 1 already.
    let r = done(
        store
            .set_status_by_ref(&ref_change("mix", t, "m", Status::Invalid, "x3", NOW + 4))
            .await
            .unwrap(),
    );
    assert_eq!((r.changed, r.already, r.skipped), (5, 1, 0));
    let items = all_pages(store, &everything("mix", t)).await;
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(|i| i.status == Status::Invalid));
    let first = items
        .iter()
        .find(|i| (i.list, i.idx) == e[0])
        .expect("listed");
    assert_eq!(first.updated_at, NOW + 1, "revoked on its own before");
    assert!(
        items
            .iter()
            .filter(|i| (i.list, i.idx) != e[0])
            .all(|i| i.updated_at == NOW + 4)
    );
}

/// A listing JWT's jti is used once, and shares the key space of the
/// idempotency records.
pub async fn claimed_jtis_are_single_use<S: Store>(store: &S, _settings: &StoreSettings) {
    let claim = |name: &str, now| JtiClaim {
        client: client("c1"),
        jti: jti(name),
        digest: [7; 32],
        now,
        keep_until: now + 100,
    };
    assert_eq!(
        store.claim_jti(&claim("l1", NOW)).await.unwrap(),
        JtiClaimOutcome::Fresh
    );
    for later in [NOW, NOW + 1, NOW + 99] {
        assert_eq!(
            store.claim_jti(&claim("l1", later)).await.unwrap(),
            JtiClaimOutcome::Used,
            "at {later}"
        );
    }
    assert_eq!(
        store.claim_jti(&claim("l1", NOW + 100)).await.unwrap(),
        JtiClaimOutcome::Fresh,
        "a record that is over no longer counts"
    );
    // Another client's jti is another jti.
    assert_eq!(
        store
            .claim_jti(&JtiClaim {
                client: client("c2"),
                ..claim("l2", NOW)
            })
            .await
            .unwrap(),
        JtiClaimOutcome::Fresh
    );
    // A jti of an /issue is used; a claimed jti cannot issue.
    allocated(
        store
            .allocate(&req("c1", ListFormat::Token, "i1", NOW))
            .await
            .unwrap(),
    );
    assert_eq!(
        store.claim_jti(&claim("i1", NOW)).await.unwrap(),
        JtiClaimOutcome::Used
    );
    assert_eq!(
        store.claim_jti(&claim("l3", NOW)).await.unwrap(),
        JtiClaimOutcome::Fresh
    );
    assert_eq!(
        store
            .allocate(&req("c1", ListFormat::Token, "l3", NOW))
            .await
            .unwrap(),
        AllocateOutcome::Changed
    );
}

/// Concurrent issues bound to one ref: every entry distinct, every one
/// listed and changed by the ref.
pub async fn concurrent_issues_with_refs_are_all_listed<S: Store>(
    store: &S,
    _settings: &StoreSettings,
) {
    let t = ListFormat::Token;
    let calls = (0..40u32).map(|i| async move {
        let r = ref_req("conc", t, &format!("cj{i}"), Some("shared"), 1 + i % 4, NOW);
        allocated(store.allocate(&r).await.unwrap())
    });
    let got: Vec<Allocation> = join_all(calls).await;
    let entries: HashSet<(ListId, u64)> = got.iter().flat_map(Allocation::entries).collect();
    let total: usize = got.iter().map(Allocation::len).sum();
    assert_eq!(entries.len(), total, "distinct");
    let items = all_pages(store, &everything("conc", t)).await;
    assert_eq!(items.len(), total);
    let listed: HashSet<(ListId, u64)> = items.iter().map(|i| (i.list, i.idx)).collect();
    assert_eq!(listed, entries);
    let report = done(
        store
            .set_status_by_ref(&ref_change(
                "conc",
                t,
                "shared",
                Status::Invalid,
                "cr",
                NOW + 1,
            ))
            .await
            .unwrap(),
    );
    assert_eq!(report.changed as usize, total);
    let items = all_pages(store, &everything("conc", t)).await;
    assert!(items.iter().all(|i| i.status == Status::Invalid));
}

/// One entry of the model.
#[derive(Debug, Clone)]
struct ModelEntry {
    list: ListId,
    idx: u64,
    issuance_ref: Option<IssuanceRef>,
    status: Status,
    created_at: u64,
    updated_at: u64,
    status_expiry: u64,
}

impl ModelEntry {
    fn item(&self) -> EntryItem {
        EntryItem {
            list: self.list,
            idx: self.idx,
            issuance_ref: self.issuance_ref.clone(),
            status: self.status,
            created_at: self.created_at,
            updated_at: self.updated_at,
            status_expiry: self.status_expiry,
        }
    }
}

/// Every entry of one client and format, in allocation order.
#[derive(Debug, Default)]
struct Space {
    entries: Vec<ModelEntry>,
    last_created: u64,
}

#[derive(Debug, Default)]
struct Model {
    spaces: HashMap<(ClientId, ListFormat), Space>,
}

impl Model {
    fn issued(&mut self, r: &AllocateRequest, a: &Allocation) {
        let space = self.spaces.entry((r.client.clone(), r.format)).or_default();
        let created = r.now.max(space.last_created);
        space.last_created = created;
        for (list, idx) in a.entries() {
            space.entries.push(ModelEntry {
                list,
                idx,
                issuance_ref: r.issuance_ref.clone(),
                status: Status::Valid,
                created_at: created,
                updated_at: created,
                status_expiry: r.status_expiry,
            });
        }
    }

    fn entry(&mut self, who: &ClientId, list: ListId, idx: u64) -> Option<&mut ModelEntry> {
        self.spaces
            .iter_mut()
            .filter(|((c, _), _)| c == who)
            .flat_map(|(_, s)| s.entries.iter_mut())
            .find(|e| e.list == list && e.idx == idx)
    }

    /// What a change by ref must report, applied to the model.
    fn by_ref(&mut self, c: &RefChange) -> Option<(u64, u64, u64, Vec<ListId>)> {
        let space = self.spaces.get_mut(&(c.client.clone(), c.format))?;
        let mut counts = (0, 0, 0);
        let mut lists = Vec::new();
        for e in space
            .entries
            .iter_mut()
            .filter(|e| e.issuance_ref.as_ref() == Some(&c.issuance_ref))
        {
            if !lists.contains(&e.list) {
                lists.push(e.list);
            }
            match e.status.transition_to(c.status) {
                Ok(statuslist::domain::Transition::Unchanged) => counts.2 += 1,
                Ok(statuslist::domain::Transition::Changed) => {
                    counts.0 += 1;
                    e.status = c.status;
                    e.updated_at = c.now;
                }
                Err(_) => counts.1 += 1,
            }
        }
        (!lists.is_empty()).then_some((counts.0, counts.1, counts.2, lists))
    }

    /// The page the store must answer, the slow way.
    fn page(&self, q: &EntryQuery) -> EntryPage {
        let Some(space) = self.spaces.get(&(q.client.clone(), q.format)) else {
            return EntryPage {
                total: 0,
                items: Vec::new(),
            };
        };
        let mut hits: Vec<(u64, u64, &ModelEntry)> = space
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| q.statuses.contains(e.status))
            .filter(|(_, e)| {
                q.issuance_ref
                    .as_ref()
                    .is_none_or(|r| e.issuance_ref.as_ref() == Some(r))
            })
            .filter(|(_, e)| q.list.is_none_or(|l| e.list == l))
            .filter(|(_, e)| q.updated_since.is_none_or(|t| e.updated_at >= t))
            .filter(|(_, e)| q.updated_until.is_none_or(|t| e.updated_at <= t))
            .map(|(seq, e)| (e.updated_at, seq as u64, e))
            .collect();
        hits.sort_by_key(|(t, s, _)| (*t, *s));
        if q.order == SortOrder::Desc {
            hits.reverse();
        }
        EntryPage {
            total: hits.len() as u64,
            items: hits
                .iter()
                .skip(usize::try_from(q.offset).unwrap_or(usize::MAX))
                .take(q.limit as usize)
                .map(|(_, _, e)| e.item())
                .collect(),
        }
    }
}

/// A seeded random history against the store and the model, then every
/// kind of query, page by page, compared.
pub async fn listing_matches_a_model<S: Store>(store: &S, settings: &StoreSettings) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0014);
    let mut model = Model::default();
    let clients = ["alpha", "beta"];
    let refs = ["r-a", "r-b", "r-c", "r d", "r-e"];
    let formats = [ListFormat::Token, ListFormat::Bitstring];
    let mut now = NOW;
    let mut issued: Vec<(AllocateRequest, Allocation)> = Vec::new();
    for step in 0..260 {
        // Time moves by 0 to 2 seconds, so ties are common.
        now += rng.gen_range(0..3);
        let who = clients[rng.gen_range(0..clients.len())];
        // Mostly the client's own format; now and then the other one.
        let format = if rng.gen_bool(0.85) {
            formats[usize::from(who == "beta")]
        } else {
            formats[usize::from(who != "beta")]
        };
        let roll = rng.gen_range(0..100);
        if roll < 45 || issued.is_empty() {
            let r = if rng.gen_bool(0.6) {
                Some(refs[rng.gen_range(0..refs.len())])
            } else {
                None
            };
            let count = rng.gen_range(1..=5u32.min(settings.capacity as u32));
            let mut request = ref_req(who, format, &format!("s{step}"), r, count, now);
            request.status_expiry = now + rng.gen_range(1..1000);
            let a = allocated(store.allocate(&request).await.unwrap());
            assert_eq!(a.len(), count as usize);
            model.issued(&request, &a);
            issued.push((request, a));
        } else if roll < 50 {
            // A replay, later: the same answer, nothing new.
            let (request, a) = &issued[rng.gen_range(0..issued.len())];
            let again = store
                .allocate(&AllocateRequest {
                    now,
                    ..request.clone()
                })
                .await
                .unwrap();
            assert_eq!(again, AllocateOutcome::Replayed(a.clone()));
        } else if roll < 88 {
            let (request, a) = &issued[rng.gen_range(0..issued.len())];
            let entries: Vec<(ListId, u64)> = a.entries().collect();
            let (list, idx) = entries[rng.gen_range(0..entries.len())];
            let target = [Status::Valid, Status::Invalid, Status::Suspended][rng.gen_range(0..3)];
            let outcome = set(store, &request.client, list, idx, target, now)
                .await
                .unwrap();
            let e = model
                .entry(&request.client, list, idx)
                .expect("the model has it");
            match outcome {
                SetStatusOutcome::Done { at } => {
                    assert_eq!(at, now);
                    e.status = target;
                    e.updated_at = now;
                }
                SetStatusOutcome::Already { .. } => assert_eq!(e.status, target),
                SetStatusOutcome::NotAllowed { current } => assert_eq!(e.status, current),
                other => panic!("unexpected {other:?}"),
            }
        } else {
            let r = refs[rng.gen_range(0..refs.len())];
            let target = [Status::Valid, Status::Invalid, Status::Suspended][rng.gen_range(0..3)];
            let c = ref_change(who, format, r, target, &format!("rc{step}"), now);
            let outcome = store.set_status_by_ref(&c).await.unwrap();
            match (model.by_ref(&c), outcome) {
                (None, RefChangeOutcome::NotFound) => {}
                (Some((changed, skipped, already, lists)), RefChangeOutcome::Done(report)) => {
                    assert_eq!(
                        report,
                        RefChangeReport {
                            at: now,
                            changed,
                            skipped,
                            already,
                            lists,
                        },
                        "step {step}"
                    );
                }
                (want, got) => panic!("step {step}: model {want:?}, store {got:?}"),
            }
        }
    }
    let end = now;

    // Every query shape, for each client and format.
    let other_list = issued
        .iter()
        .find(|(r, _)| r.client == client("beta"))
        .map(|(_, a)| a.list);
    for who in clients {
        for format in formats {
            let base = everything(who, format);
            let lists: Vec<ListId> = issued
                .iter()
                .filter(|(r, _)| r.client == base.client && r.format == format)
                .flat_map(|(_, a)| a.entries().map(|(l, _)| l))
                .collect::<Vec<_>>();
            let mut shapes: Vec<EntryQuery> = Vec::new();
            for mask in 1..=7u8 {
                shapes.push(EntryQuery {
                    statuses: StatusSet::from_mask(mask).unwrap(),
                    ..base.clone()
                });
            }
            for r in refs.iter().copied().chain(["nobody's"]) {
                shapes.push(EntryQuery {
                    issuance_ref: Some(iref(r)),
                    ..base.clone()
                });
            }
            for list in lists.iter().take(3).copied().chain(other_list) {
                shapes.push(EntryQuery {
                    list: Some(list),
                    ..base.clone()
                });
            }
            for _ in 0..12 {
                let a = rng.gen_range(NOW..=end + 1);
                let b = rng.gen_range(a..=end + 2);
                shapes.push(EntryQuery {
                    statuses: StatusSet::from_mask(rng.gen_range(1..=7)).unwrap(),
                    issuance_ref: rng
                        .gen_bool(0.3)
                        .then(|| iref(refs[rng.gen_range(0..refs.len())])),
                    list: (rng.gen_bool(0.3) && !lists.is_empty())
                        .then(|| lists[rng.gen_range(0..lists.len())]),
                    updated_since: rng.gen_bool(0.6).then_some(a),
                    updated_until: rng.gen_bool(0.6).then_some(b),
                    ..base.clone()
                });
            }
            for shape in shapes {
                for order in [SortOrder::Desc, SortOrder::Asc] {
                    for limit in [1u32, 3, 7, 100] {
                        let q = EntryQuery {
                            order,
                            limit,
                            ..shape.clone()
                        };
                        let want_all = model.page(&EntryQuery {
                            offset: 0,
                            limit: u32::MAX,
                            ..q.clone()
                        });
                        // Every page, and one past the end.
                        let pages = want_all.total.div_ceil(u64::from(limit)) + 1;
                        let step = if limit == 1 { 1 + pages / 12 } else { 1 };
                        let mut page = 0;
                        while page < pages {
                            let q = EntryQuery {
                                offset: page * u64::from(limit),
                                ..q.clone()
                            };
                            let got = store.list_entries(&q).await.unwrap();
                            assert_eq!(got, model.page(&q), "{q:?}");
                            page += step;
                        }
                    }
                }
            }
        }
    }
}

/// Width and bits: a 1-bit store lists entries, and a change by ref to
/// SUSPENDED skips what a 1-bit entry cannot hold.
pub async fn one_bit_refs_skip_suspension<S: Store>(store: &S, settings: &StoreSettings) {
    assert_eq!(settings.bits, Bits::One);
    let t = ListFormat::Token;
    allocated(
        store
            .allocate(&ref_req("ob", t, "o1", Some("one"), 4, NOW))
            .await
            .unwrap(),
    );
    let s = done(
        store
            .set_status_by_ref(&ref_change(
                "ob",
                t,
                "one",
                Status::Suspended,
                "o2",
                NOW + 1,
            ))
            .await
            .unwrap(),
    );
    assert_eq!((s.changed, s.skipped, s.already), (0, 4, 0));
    let r = done(
        store
            .set_status_by_ref(&ref_change("ob", t, "one", Status::Invalid, "o3", NOW + 2))
            .await
            .unwrap(),
    );
    assert_eq!((r.changed, r.skipped, r.already), (4, 0, 0));
    let items = all_pages(store, &everything("ob", t)).await;
    assert_eq!(items.len(), 4);
    assert!(
        items
            .iter()
            .all(|i| i.status == Status::Invalid && i.updated_at == NOW + 2)
    );
}
