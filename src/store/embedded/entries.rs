//! The embedded store's entry tables (issue 14): what every allocation and
//! every applied change records about its entries, and the two operations
//! built on them that reach across lists: a change by ref and the entry
//! listing.
//!
//! A *space* is one client's entries of one list format. Every entry
//! allocated in a space gets the next sequence number `seq` (0, 1, 2, …).
//! Lists are filled in order, so a tracked list holds the contiguous range
//! `base .. base + counter` of its space (`base` is in its `ListRecord`,
//! and in `entry_lists` for the way back from a seq); entry `seq` is
//! allocation number `seq - base` of its list, whose index is the list
//! allocator's `permute` of it. Nothing is stored per entry at allocation:
//! one issuance record per `/issue` (`entry_log`) gives its entries'
//! `createdAt`, `statusExpiry` and ref. Only changed entries, few, are
//! indexed one by one (`entry_changed`, `entry_changed_by_time`): the
//! others are VALID, and updated when created.
//!
//! The listing cuts its page out of two sources with the pure reference
//! algorithm ([`crate::domain::entries::cut`], then `merge`): **U**, the
//! never-changed entries of the seq window (whose keys `(created, seq)`
//! rise with seq, created being monotone within a space), reached by rank
//! through the changed seqs of the window; and **Z**, the changed entries
//! in the window of `updatedAt`, read in key order from
//! `entry_changed_by_time`. The embedded store has no cost target: the
//! window's changed seqs and the Z source are loaded into memory, and only
//! the U side is reached by rank. A ref filter materialises the ref's
//! entries (a ref has few).

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};

use super::outbox::{self, EventBody};
use super::records::{IdemRecord, ListRecord, LogRecord, Recorded, format_byte};
use super::{IDEM, Inner, LIST_BYTES, LISTS, STATUS_TIMES, db_err, idem_record};
use crate::domain::entries::{EntryKey, SortOrder, cut, merge};
use crate::domain::events::{Event, EventKind};
use crate::domain::{IssuanceRef, ListId, Status, StatusList, StatusSet};
use crate::ports::{
    AllocateRequest, EntryItem, EntryPage, EntryQuery, JtiClaim, JtiClaimOutcome, RefChange,
    RefChangeOutcome, RefChangeReport, StoreError, UnixSeconds,
};
use crate::store::common::{self, EntryRule, ReplayDecision, TransitionRules};

/// A space: (client, format byte).
pub(super) type SpaceKey<'a> = (&'a str, u8);

/// (client, format) → (next seq, last `createdAt`): where the space's next
/// entry goes, and the floor of its `createdAt`.
pub(super) const SPACES: TableDefinition<(&str, u8), (u64, u64)> =
    TableDefinition::new("entry_spaces");
/// (client, format, first seq) → [`LogRecord`]: one per allocation.
pub(super) const LOG: TableDefinition<(&str, u8, u64), &[u8]> = TableDefinition::new("entry_log");
/// (client, format, base seq) → list id: one per tracked list.
pub(super) const LISTS_BY_SEQ: TableDefinition<(&str, u8, u64), &str> =
    TableDefinition::new("entry_lists");
/// (client, format, ref, first seq) → (): the issuance records bound to a
/// ref (one insert per allocation with a ref, nothing rewritten).
pub(super) const REFS: TableDefinition<(&str, u8, &str, u64), ()> =
    TableDefinition::new("entry_refs");
/// (client, format, seq) → (status, updated at): every entry that changed
/// at least once.
pub(super) const CHANGED: TableDefinition<(&str, u8, u64), (u8, u64)> =
    TableDefinition::new("entry_changed");
/// (client, format, updated at, seq) → status: the same entries in listing
/// order.
pub(super) const CHANGED_BY_TIME: TableDefinition<(&str, u8, u64, u64), u8> =
    TableDefinition::new("entry_changed_by_time");

/// [`LOG`] as a listing reads it.
type LogTable = ReadOnlyTable<(&'static str, u8, u64), &'static [u8]>;

/// Creates the entry tables that do not exist yet (a file written before
/// entries were tracked has none of them).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(SPACES).map_err(db_err)?;
    txn.open_table(LOG).map_err(db_err)?;
    txn.open_table(LISTS_BY_SEQ).map_err(db_err)?;
    txn.open_table(REFS).map_err(db_err)?;
    txn.open_table(CHANGED).map_err(db_err)?;
    txn.open_table(CHANGED_BY_TIME).map_err(db_err)?;
    Ok(())
}

/// Writes the issuance record of an allocation whose entries start at
/// `first_seq` of `space`, and binds them to the request's ref: one insert,
/// two with a ref.
pub(super) fn record_issuance(
    txn: &WriteTransaction,
    (client, fmt): SpaceKey<'_>,
    first_seq: u64,
    req: &AllocateRequest,
    created: UnixSeconds,
) -> Result<(), StoreError> {
    let rec = LogRecord {
        count: req.count,
        created,
        expiry: req.status_expiry,
        issuance_ref: req.issuance_ref.clone(),
    };
    txn.open_table(LOG)
        .map_err(db_err)?
        .insert((client, fmt, first_seq), rec.encode().as_slice())
        .map_err(db_err)?;
    if let Some(r) = &req.issuance_ref {
        txn.open_table(REFS)
            .map_err(db_err)?
            .insert((client, fmt, r.as_str(), first_seq), ())
            .map_err(db_err)?;
    }
    Ok(())
}

/// The ref entry `seq` of `space` was issued with, read in `txn` the way
/// the listing reads it (through its issuance record): what a single
/// change's event carries. `None` also when that record is lost.
pub(super) fn issuance_ref_at(
    txn: &WriteTransaction,
    space: SpaceKey<'_>,
    seq: u64,
) -> Result<Option<IssuanceRef>, StoreError> {
    let log = txn.open_table(LOG).map_err(db_err)?;
    match record_at(&log, space, seq) {
        Ok((_, record)) => Ok(record.issuance_ref),
        // A lost or unreadable issuance record must not stop a revocation:
        // the change is applied and its event goes without a ref, as on
        // Redis. The listing reports the damage where it reads the record.
        Err(StoreError::Corrupt(reason)) => {
            tracing::warn!(client = space.0, seq, %reason, "event recorded without its ref");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The change index of a write transaction: both tables of changed entries.
pub(super) struct ChangeIndex<'txn> {
    changed: Table<'txn, (&'static str, u8, u64), (u8, u64)>,
    by_time: Table<'txn, (&'static str, u8, u64, u64), u8>,
}

impl<'txn> ChangeIndex<'txn> {
    /// Opens both tables in `txn`.
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(ChangeIndex {
            changed: txn.open_table(CHANGED).map_err(db_err)?,
            by_time: txn.open_table(CHANGED_BY_TIME).map_err(db_err)?,
        })
    }

    /// Records that entry `seq` of `space` now holds `value`, since `at`.
    pub(super) fn record(
        &mut self,
        (client, fmt): SpaceKey<'_>,
        seq: u64,
        value: u8,
        at: UnixSeconds,
    ) -> Result<(), StoreError> {
        let before = self
            .changed
            .insert((client, fmt, seq), (value, at))
            .map_err(db_err)?
            .map(|g| g.value());
        if let Some((_, was)) = before {
            self.by_time
                .remove((client, fmt, was, seq))
                .map_err(db_err)?;
        }
        self.by_time
            .insert((client, fmt, at, seq), value)
            .map_err(db_err)?;
        Ok(())
    }
}

/// The entries of a ref in one list: seq ranges `[start, end)` of the
/// space, ascending.
struct RefList {
    list: ListId,
    base: u64,
    ranges: Vec<(u64, u64)>,
}

/// The status a change index holds (only ever one the service sets).
fn status_of(value: u8) -> Result<Status, StoreError> {
    Status::from_value(value).ok_or_else(|| {
        StoreError::Corrupt(format!("the change index holds the unknown status {value}"))
    })
}

/// The issuance record holding entry `seq` of `space`, with its first seq.
fn record_at<T>(log: &T, (c, f): SpaceKey<'_>, seq: u64) -> Result<(u64, LogRecord), StoreError>
where
    T: ReadableTable<(&'static str, u8, u64), &'static [u8]>,
{
    let found = log
        .range((c, f, 0u64)..=(c, f, seq))
        .map_err(db_err)?
        .next_back()
        .transpose()
        .map_err(db_err)?;
    let missing = || StoreError::Corrupt(format!("entry {seq} of {c} has no issuance record"));
    let (key, value) = found.ok_or_else(missing)?;
    let first = key.value().2;
    let rec = LogRecord::decode(value.value())?;
    if first.saturating_add(u64::from(rec.count)) <= seq {
        return Err(missing());
    }
    Ok((first, rec))
}

/// The tracked list holding entry `seq` of `space`: its base, its id, and
/// the base of the space's next list (`u64::MAX` for the last one).
fn list_at<T>(by_seq: &T, (c, f): SpaceKey<'_>, seq: u64) -> Result<(u64, ListId, u64), StoreError>
where
    T: ReadableTable<(&'static str, u8, u64), &'static str>,
{
    let (base, list) = {
        let found = by_seq
            .range((c, f, 0u64)..=(c, f, seq))
            .map_err(db_err)?
            .next_back()
            .transpose()
            .map_err(db_err)?;
        let (key, value) = found
            .ok_or_else(|| StoreError::Corrupt(format!("entry {seq} of {c} is in no list")))?;
        let list = ListId::parse(value.value())
            .map_err(|_| StoreError::Corrupt("a stored list id does not parse".into()))?;
        (key.value().2, list)
    };
    let next = by_seq
        .range::<(&str, u8, u64)>((
            std::ops::Bound::Excluded((c, f, seq)),
            std::ops::Bound::Included((c, f, u64::MAX)),
        ))
        .map_err(db_err)?
        .next()
        .transpose()
        .map_err(db_err)?
        .map_or(u64::MAX, |(key, _)| key.value().2);
    Ok((base, list, next))
}

/// The issuance records bound to ref `r` in `space`, in allocation order.
fn ref_records<R, L>(
    refs: &R,
    log: &L,
    (c, f): SpaceKey<'_>,
    r: &str,
) -> Result<Vec<(u64, LogRecord)>, StoreError>
where
    R: ReadableTable<(&'static str, u8, &'static str, u64), ()>,
    L: ReadableTable<(&'static str, u8, u64), &'static [u8]>,
{
    let mut out = Vec::new();
    for entry in refs
        .range((c, f, r, 0u64)..=(c, f, r, u64::MAX))
        .map_err(db_err)?
    {
        let (key, _) = entry.map_err(db_err)?;
        let first = key.value().3;
        let rec = log.get((c, f, first)).map_err(db_err)?.ok_or_else(|| {
            StoreError::Corrupt(format!("ref of {c} points at a missing issuance record"))
        })?;
        out.push((first, LogRecord::decode(rec.value())?));
    }
    Ok(out)
}

/// The entries of ref `r` in `space`, grouped by list, lists and entries in
/// allocation order (empty for an unknown ref).
fn ref_lists<R, L, B>(
    refs: &R,
    log: &L,
    by_seq: &B,
    space: SpaceKey<'_>,
    r: &str,
) -> Result<Vec<RefList>, StoreError>
where
    R: ReadableTable<(&'static str, u8, &'static str, u64), ()>,
    L: ReadableTable<(&'static str, u8, u64), &'static [u8]>,
    B: ReadableTable<(&'static str, u8, u64), &'static str>,
{
    let mut out: Vec<RefList> = Vec::new();
    for (first, rec) in ref_records(refs, log, space, r)? {
        let end = first.saturating_add(u64::from(rec.count));
        let mut seq = first;
        // An issuance spans at most two lists; lists follow each other in
        // seq order, so a list met again is the last one of `out`.
        while seq < end {
            let (base, list, next_base) = list_at(by_seq, space, seq)?;
            let stop = end.min(next_base);
            match out.last_mut() {
                Some(last) if last.list == list => last.ranges.push((seq, stop)),
                _ => out.push(RefList {
                    list,
                    base,
                    ranges: vec![(seq, stop)],
                }),
            }
            seq = stop;
        }
    }
    Ok(out)
}

/// One list of a change by ref, loaded and checked before anything is
/// written.
struct Loaded {
    record: ListRecord,
    entries: StatusList,
    ranges: Vec<(u64, u64)>,
}

impl Inner {
    /// The entries of ref `r` of `space` by list, read in `txn`.
    fn ref_lists_in(
        &self,
        txn: &WriteTransaction,
        space: SpaceKey<'_>,
        r: &str,
    ) -> Result<Vec<RefList>, StoreError> {
        let refs = txn.open_table(REFS).map_err(db_err)?;
        let log = txn.open_table(LOG).map_err(db_err)?;
        let by_seq = txn.open_table(LISTS_BY_SEQ).map_err(db_err)?;
        ref_lists(&refs, &log, &by_seq, space, r)
    }

    /// A change by ref inside the batch's transaction `txn` (checked by
    /// [`common::check_ref_change`] before it was queued): every entry of
    /// the ref, all lists, then the record. A damaged list fails it before
    /// anything is written (and the writer drops whatever a failure leaves
    /// in the transaction anyway).
    pub(super) fn set_status_by_ref(
        &self,
        txn: &WriteTransaction,
        change: &RefChange,
    ) -> Result<RefChangeOutcome, StoreError> {
        let client = change.client.as_str();
        let space = (client, format_byte(change.format));
        let record_key = (client, change.jti.as_str());
        let mut idem = txn.open_table(IDEM).map_err(db_err)?;
        if let Some(rec) = idem_record(&idem, record_key)? {
            match common::replay_decision(&rec.digest, rec.expires_at, &change.digest, change.now) {
                ReplayDecision::Changed => return Ok(RefChangeOutcome::Changed),
                ReplayDecision::Replay => {
                    let Recorded::RefChange {
                        at,
                        changed,
                        skipped,
                        already,
                    } = rec.answer
                    else {
                        // Another kind's record: the same digest cannot
                        // belong to a change by ref.
                        return Ok(RefChangeOutcome::Changed);
                    };
                    // The lists now: entries never leave their lists, so
                    // these are the ones the change reached (and any that
                    // entries issued since under the ref went to).
                    let lists = self.ref_lists_in(txn, space, change.issuance_ref.as_str())?;
                    return Ok(RefChangeOutcome::Done(RefChangeReport {
                        at,
                        changed,
                        skipped,
                        already,
                        lists: lists.iter().map(|l| l.list).collect(),
                    }));
                }
                ReplayDecision::Expired => {}
            }
        }
        let found = self.ref_lists_in(txn, space, change.issuance_ref.as_str())?;
        if found.is_empty() {
            // Nothing recorded: the jti stays free.
            return Ok(RefChangeOutcome::NotFound);
        }
        let lists_of_ref: Vec<ListId> = found.iter().map(|l| l.list).collect();

        let mut lists = txn.open_table(LISTS).map_err(db_err)?;
        let mut bytes = txn.open_table(LIST_BYTES).map_err(db_err)?;
        let mut loaded = Vec::with_capacity(found.len());
        for RefList { list, base, ranges } in found {
            let record = self
                .load_list(&lists, &list)?
                .ok_or_else(|| StoreError::Corrupt(format!("the ref's list {list} is missing")))?;
            if record.client != change.client
                || record.format != change.format
                || record.base != Some(base)
            {
                return Err(StoreError::Corrupt(format!(
                    "list {list} is not the one the entry index of {client} names"
                )));
            }
            let raw = self.list_bytes(&bytes, &record)?;
            let entries =
                StatusList::from_bytes(record.format.layout(), record.bits, record.capacity, raw)
                    .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))?;
            loaded.push(Loaded {
                record,
                entries,
                ranges,
            });
        }

        let target = change.status.value();
        // The changed entries (list, idx, seq), in allocation order, only
        // when they get events.
        let mut evented: Option<Vec<(ListId, u64, u64)>> = change.events.map(|_| Vec::new());
        let mut times = txn.open_table(STATUS_TIMES).map_err(db_err)?;
        let mut index = ChangeIndex::open(txn)?;
        let (mut changed, mut skipped, mut already) = (0u64, 0u64, 0u64);
        for Loaded {
            mut record,
            mut entries,
            ranges,
        } in loaded
        {
            let id = record.id;
            let corrupt =
                |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("list {id}: {e}"));
            let base = record.base.unwrap_or(0);
            let rules = TransitionRules::new(change.status, record.bits);
            let allocator =
                self.allocators
                    .get_or_build(&record.id, &record.key, record.capacity)?;
            let mut changed_here = 0u64;
            for seq in ranges.iter().flat_map(|&(start, end)| start..end) {
                let idx = allocator
                    .permute(seq.saturating_sub(base))
                    .map_err(|e| corrupt(&e))?;
                let current = entries.get(idx).map_err(|e| corrupt(&e))?;
                // A value the service never writes: corrupt, as on the
                // single path.
                if Status::from_value(current).is_none() {
                    return Err(corrupt(&format!(
                        "entry {idx} holds the unknown value {current}"
                    )));
                }
                match rules.get(current) {
                    EntryRule::Change => {
                        entries.set(idx, target).map_err(|e| corrupt(&e))?;
                        times
                            .insert((id.as_str(), idx), (target, change.now))
                            .map_err(db_err)?;
                        index.record(space, seq, target, change.now)?;
                        if let Some(evented) = evented.as_mut() {
                            evented.push((id, idx, seq));
                        }
                        changed_here += 1;
                    }
                    EntryRule::Unchanged => already += 1,
                    EntryRule::NotAllowed | EntryRule::TooWide => skipped += 1,
                }
            }
            if changed_here > 0 {
                bytes
                    .insert(id.as_str(), entries.as_bytes())
                    .map_err(db_err)?;
                // One version bump per list, however many of its entries
                // changed.
                record.version = record.version.saturating_add(1);
                lists
                    .insert(id.as_str(), record.encode().as_slice())
                    .map_err(db_err)?;
            }
            changed += changed_here;
        }

        if let (Some(seed), Some(evented), Some(kind)) =
            (change.events, evented, EventKind::for_status(change.status))
        {
            let mut bodies = Vec::with_capacity(evented.len());
            for (n, (list, idx, seq)) in evented.into_iter().enumerate() {
                let ordinal = u32::try_from(n).map_err(|_| {
                    StoreError::Invalid("a change by ref of more than 2^32 entries".into())
                })?;
                let event = Event {
                    id: seed.id(ordinal),
                    kind,
                    client: change.client.clone(),
                    format: change.format,
                    at: change.now,
                    entries: vec![(list, idx)],
                    issuance_ref: Some(change.issuance_ref.clone()),
                };
                bodies.push(EventBody {
                    event,
                    entry_seq: Some(seq),
                });
            }
            outbox::record(txn, &change.client, bodies)?;
        }

        self.sweep(&mut idem, change.now)?;
        let rec = IdemRecord {
            digest: change.digest,
            expires_at: change.keep_until,
            answer: Recorded::RefChange {
                at: change.now,
                changed,
                skipped,
                already,
            },
        };
        idem.insert(record_key, rec.encode().as_slice())
            .map_err(db_err)?;
        Ok(RefChangeOutcome::Done(RefChangeReport {
            at: change.now,
            changed,
            skipped,
            already,
            lists: lists_of_ref,
        }))
    }

    /// A single-use jti inside the batch's transaction `txn`: used when a
    /// live record of any kind holds it, else recorded.
    pub(super) fn claim_jti(
        &self,
        txn: &WriteTransaction,
        claim: &JtiClaim,
    ) -> Result<JtiClaimOutcome, StoreError> {
        let key = (claim.client.as_str(), claim.jti.as_str());
        let mut idem = txn.open_table(IDEM).map_err(db_err)?;
        if idem_record(&idem, key)?.is_some_and(|rec| claim.now < rec.expires_at) {
            return Ok(JtiClaimOutcome::Used);
        }
        self.sweep(&mut idem, claim.now)?;
        let rec = IdemRecord {
            digest: claim.digest,
            expires_at: claim.keep_until,
            answer: Recorded::Claim,
        };
        idem.insert(key, rec.encode().as_slice()).map_err(db_err)?;
        Ok(JtiClaimOutcome::Fresh)
    }

    /// One page of a space's entries, from one read transaction (one
    /// consistent moment).
    pub(super) fn list_entries(&self, q: &EntryQuery) -> Result<EntryPage, StoreError> {
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let view = View::open(&txn, (q.client.as_str(), format_byte(q.format)))?;
        let Some((next_seq, _)) = view
            .spaces
            .get(view.space)
            .map_err(db_err)?
            .map(|g| g.value())
        else {
            return Ok(EntryPage::default());
        };
        let (lo, hi) = match &q.list {
            None => (0, next_seq),
            Some(id) => match self.load_list(&view.lists, id)? {
                Some(list) if list.client == q.client && list.format == q.format => {
                    match list.base {
                        Some(base) => (base, base.saturating_add(list.counter)),
                        // Untracked: its entries are not listed.
                        None => return Ok(EntryPage::default()),
                    }
                }
                // Not a list of this space.
                _ => return Ok(EntryPage::default()),
            },
        };
        let window = Window {
            statuses: q.statuses,
            lo,
            hi: hi.min(next_seq),
            since: q.updated_since.unwrap_or(0),
            until: q.updated_until.unwrap_or(u64::MAX),
        };
        if window.since > window.until || window.lo >= window.hi {
            return Ok(EntryPage::default());
        }
        let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
        let (total, page) = match &q.issuance_ref {
            Some(r) => view.by_ref(r.as_str(), &window, q.order, q.offset, limit)?,
            None => view.page(&window, q.order, q.offset, limit)?,
        };
        let items = page
            .into_iter()
            .map(|(key, status)| view.item(self, key, status))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EntryPage { total, items })
    }
}

/// What a listing selects, apart from the ref: statuses, the seq window
/// `[lo, hi)` (the space, or one list's range) and the inclusive window of
/// `updatedAt`.
struct Window {
    statuses: StatusSet,
    lo: u64,
    hi: u64,
    since: UnixSeconds,
    until: UnixSeconds,
}

impl Window {
    fn holds(&self, seq: u64, status: Status, updated: UnixSeconds) -> bool {
        (self.lo..self.hi).contains(&seq)
            && self.statuses.contains(status)
            && (self.since..=self.until).contains(&updated)
    }
}

/// The never-changed entries of the seq window `[lo, hi)`, by rank in the
/// listing order: the window minus its changed seqs (`changed`, sorted).
struct Unchanged<'a> {
    lo: u64,
    hi: u64,
    changed: &'a [u64],
    len: u64,
    order: SortOrder,
}

impl Unchanged<'_> {
    fn new(lo: u64, hi: u64, changed: &[u64], order: SortOrder) -> Unchanged<'_> {
        let len = hi
            .saturating_sub(lo)
            .saturating_sub(u64::try_from(changed.len()).unwrap_or(u64::MAX));
        Unchanged {
            lo,
            hi,
            changed,
            len,
            order,
        }
    }

    /// The seq at rank `r` (< `len`) in the listing order.
    fn seq_at(&self, r: u64) -> Result<u64, StoreError> {
        if r >= self.len {
            return Err(StoreError::Backend(format!(
                "listing rank {r} beyond {} entries",
                self.len
            )));
        }
        let k = match self.order {
            SortOrder::Asc => r,
            SortOrder::Desc => self.len - 1 - r,
        };
        // The smallest seq with more than k unchanged seqs in [lo, seq]:
        // "unchanged in [lo, s]" = (s - lo + 1) - "changed in [lo, s]".
        let (mut a, mut b) = (self.lo, self.hi - 1);
        while a < b {
            let m = a + (b - a) / 2;
            let changed = self.changed.partition_point(|c| *c <= m);
            let unchanged = (m - self.lo + 1).saturating_sub(changed as u64);
            if unchanged > k {
                b = m;
            } else {
                a = m + 1;
            }
        }
        Ok(a)
    }
}

/// The tables a listing reads, in one read transaction.
struct View<'q> {
    space: SpaceKey<'q>,
    spaces: ReadOnlyTable<(&'static str, u8), (u64, u64)>,
    lists: ReadOnlyTable<&'static str, &'static [u8]>,
    log: LogTable,
    by_seq: ReadOnlyTable<(&'static str, u8, u64), &'static str>,
    refs: ReadOnlyTable<(&'static str, u8, &'static str, u64), ()>,
    changed: ReadOnlyTable<(&'static str, u8, u64), (u8, u64)>,
    by_time: ReadOnlyTable<(&'static str, u8, u64, u64), u8>,
}

impl<'q> View<'q> {
    fn open(txn: &ReadTransaction, space: SpaceKey<'q>) -> Result<Self, StoreError> {
        Ok(View {
            space,
            spaces: txn.open_table(SPACES).map_err(db_err)?,
            lists: txn.open_table(LISTS).map_err(db_err)?,
            log: txn.open_table(LOG).map_err(db_err)?,
            by_seq: txn.open_table(LISTS_BY_SEQ).map_err(db_err)?,
            refs: txn.open_table(REFS).map_err(db_err)?,
            changed: txn.open_table(CHANGED).map_err(db_err)?,
            by_time: txn.open_table(CHANGED_BY_TIME).map_err(db_err)?,
        })
    }

    fn created_of(&self, seq: u64) -> Result<UnixSeconds, StoreError> {
        Ok(record_at(&self.log, self.space, seq)?.1.created)
    }

    /// The first seq of `[lo, hi)` created at or after `t` (`hi` if none):
    /// created is monotone in seq, so a binary search.
    fn first_created_from(&self, lo: u64, hi: u64, t: UnixSeconds) -> Result<u64, StoreError> {
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let m = a + (b - a) / 2;
            if self.created_of(m)? >= t {
                b = m;
            } else {
                a = m + 1;
            }
        }
        Ok(a)
    }

    /// The changed seqs of `[lo, hi)`, ascending.
    fn changed_seqs(&self, lo: u64, hi: u64) -> Result<Vec<u64>, StoreError> {
        let (c, f) = self.space;
        let mut out = Vec::new();
        if lo >= hi {
            return Ok(out);
        }
        for entry in self.changed.range((c, f, lo)..(c, f, hi)).map_err(db_err)? {
            out.push(entry.map_err(db_err)?.0.value().2);
        }
        Ok(out)
    }

    /// Z: the changed entries the window selects, ascending by key.
    fn changed_in(&self, w: &Window) -> Result<Vec<(EntryKey, Status)>, StoreError> {
        let (c, f) = self.space;
        let mut out = Vec::new();
        let range = (c, f, w.since, 0u64)..=(c, f, w.until, u64::MAX);
        for entry in self.by_time.range(range).map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let (_, _, updated_at, seq) = key.value();
            let status = status_of(value.value())?;
            if w.holds(seq, status, updated_at) {
                out.push((EntryKey { updated_at, seq }, status));
            }
        }
        Ok(out)
    }

    /// The total and the page, without a ref filter: U and Z cut with
    /// [`cut`] and merged.
    fn page(
        &self,
        w: &Window,
        order: SortOrder,
        offset: u64,
        limit: usize,
    ) -> Result<(u64, Vec<(EntryKey, Status)>), StoreError> {
        // U: never-changed entries are VALID, updated when created; the
        // time window is a seq window on them.
        let (ulo, uhi) = if w.statuses.contains(Status::Valid) {
            let ulo = self.first_created_from(w.lo, w.hi, w.since)?;
            let uhi = match w.until.checked_add(1) {
                Some(after) => self.first_created_from(ulo, w.hi, after)?,
                None => w.hi,
            };
            (ulo, uhi)
        } else {
            (w.lo, w.lo)
        };
        let changed = self.changed_seqs(ulo, uhi)?;
        let u = Unchanged::new(ulo, uhi, &changed, order);
        let u_entry = |r: u64| -> Result<(EntryKey, Status), StoreError> {
            let seq = u.seq_at(r)?;
            let key = EntryKey {
                updated_at: self.created_of(seq)?,
                seq,
            };
            Ok((key, Status::Valid))
        };
        let mut z = self.changed_in(w)?;
        if order == SortOrder::Desc {
            z.reverse();
        }
        let z_len = u64::try_from(z.len()).unwrap_or(u64::MAX);
        let z_at = |r: u64| {
            usize::try_from(r)
                .ok()
                .and_then(|r| z.get(r))
                .copied()
                .ok_or_else(|| StoreError::Backend(format!("listing rank {r} beyond Z")))
        };
        let (i, j) = cut(
            offset,
            order,
            u.len,
            z_len,
            |r| u_entry(r).map(|(k, _)| k),
            |r| z_at(r).map(|(k, _)| k),
        )?;
        let more = u64::try_from(limit).unwrap_or(u64::MAX);
        let from_u = (i..i.saturating_add(more).min(u.len))
            .map(u_entry)
            .collect::<Result<Vec<_>, _>>()?;
        let from_z = (j..j.saturating_add(more).min(z_len))
            .map(z_at)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            u.len.saturating_add(z_len),
            merge(order, from_u, from_z, limit),
        ))
    }

    /// The total and the page of the entries bound to ref `r`: all of them
    /// materialised, filtered, sorted and sliced.
    fn by_ref(
        &self,
        r: &str,
        w: &Window,
        order: SortOrder,
        offset: u64,
        limit: usize,
    ) -> Result<(u64, Vec<(EntryKey, Status)>), StoreError> {
        let (c, f) = self.space;
        let mut hits: Vec<(EntryKey, Status)> = Vec::new();
        for (first, rec) in ref_records(&self.refs, &self.log, self.space, r)? {
            let end = first.saturating_add(u64::from(rec.count));
            for seq in first.max(w.lo)..end.min(w.hi) {
                let (status, updated_at) = match self.changed.get((c, f, seq)).map_err(db_err)? {
                    Some(guard) => {
                        let (value, at) = guard.value();
                        (status_of(value)?, at)
                    }
                    None => (Status::Valid, rec.created),
                };
                if w.holds(seq, status, updated_at) {
                    hits.push((EntryKey { updated_at, seq }, status));
                }
            }
        }
        hits.sort_unstable_by_key(|(key, _)| *key);
        if order == SortOrder::Desc {
            hits.reverse();
        }
        let total = u64::try_from(hits.len()).unwrap_or(u64::MAX);
        let page = hits
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit)
            .collect();
        Ok((total, page))
    }

    /// The listed item of entry `key.seq`, whose status is `status`.
    fn item(&self, inner: &Inner, key: EntryKey, status: Status) -> Result<EntryItem, StoreError> {
        let (_, rec) = record_at(&self.log, self.space, key.seq)?;
        let (base, list, _) = list_at(&self.by_seq, self.space, key.seq)?;
        let allocator = inner.allocator_of(&self.lists, &list)?;
        let idx = allocator
            .permute(key.seq.saturating_sub(base))
            .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))?;
        Ok(EntryItem {
            list,
            idx,
            issuance_ref: rec.issuance_ref,
            status,
            created_at: rec.created,
            updated_at: key.updated_at,
            status_expiry: rec.expiry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The never-changed seq at every rank, in both orders, is the one a
    /// plain filter of the window finds, for every set of changed seqs of a
    /// small window.
    #[test]
    fn unchanged_seqs_by_rank_match_a_filter() {
        let (lo, hi) = (5u64, 16u64);
        for mask in 0u32..(1 << (hi - lo)) {
            let changed: Vec<u64> = (lo..hi).filter(|s| mask & (1 << (s - lo)) != 0).collect();
            let unchanged: Vec<u64> = (lo..hi).filter(|s| !changed.contains(s)).collect();
            for order in [SortOrder::Asc, SortOrder::Desc] {
                let u = Unchanged::new(lo, hi, &changed, order);
                assert_eq!(u.len, unchanged.len() as u64);
                let got: Vec<u64> = (0..u.len).map(|r| u.seq_at(r).unwrap()).collect();
                let mut want = unchanged.clone();
                if order == SortOrder::Desc {
                    want.reverse();
                }
                assert_eq!(got, want, "{changed:?} {order:?}");
                assert!(u.seq_at(u.len).is_err(), "past the end is an error");
            }
        }
    }
}
