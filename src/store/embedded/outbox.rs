//! The event outbox of the embedded store (see [`crate::ports::outbox`]):
//! the events recorded with the writes they report, and their delivery
//! state.
//!
//! Recording: a write whose request carries an
//! [`EventSeed`](crate::domain::events::EventSeed) records its events with
//! [`record`] inside its own operation, so in the write transaction (and
//! the group-commit batch) of the change: when the operation fails, or its
//! batch does, the transaction is dropped and neither exists; when a batch
//! runs again without a failed operation, the others record theirs anew in
//! the fresh transaction, once. A write without a seed opens none of these
//! tables.
//!
//! Delivery operations (`take`, `delivered`, `retry`, `dead_letter`,
//! `redeliver`) are write operations like the others: queued to the writer
//! thread, applied in a batch's transaction, answered once committed (so a
//! lease, a report or a redelivery is durable when acknowledged). The
//! writer applies operations one at a time, which is what makes a lease
//! exclusive within the process: two takes never see the same event due.
//! `pending` and `dead_letters` are reads, and so is a take that finds
//! nothing to hand out (it looks first with a read), so that an idle
//! dispatcher's polls cost no commit and no fsync.
//!
//! Tables (every key starts with the client; `seq` is the client's record
//! sequence, 0, 1, 2, … in the order events are recorded, never reused, so
//! a lease's handle, the seq as decimal text, never names another event):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `event_clients` | client | (next seq, pending count) |
//! | `events` | (client, seq) | [`Stored`]: state, attempt, due, the event |
//! | `event_waiting` | (client, seq) | `()`: the waiting events, in record order |
//! | `event_due` | (client, due ms, seq) | `()`: the held and scheduled events, by due time |
//! | `event_entries` | (client, list, idx, seq) | `()`: each entry of each pending entry event |
//! | `event_issued` | (client, format, first entry seq, seq) | entry count: each pending `entries.issued` event |
//! | `event_dead` | (client, event id as u128) | [`DeadRecord`]: the dead events, by id |
//!
//! `events` holds only pending events (waiting, held, scheduled): a
//! delivered event is removed, a dead one moves to `event_dead`, and the
//! pending count of `event_clients` follows both, so `pending` is one read.
//!
//! Hold-back ("Order" in the port): an event is not handed out while an
//! earlier pending event (smaller seq) shares one of its entries. For an
//! entry event that is a range read of `event_entries` below its seq, and,
//! for an entry of a tracked list, one read of `event_issued`: the
//! `entries.issued` event whose space range holds the entry's seq (an
//! allocation's entries are a contiguous seq range of their space, see
//! `entries.rs`, and allocations never overlap, so the last range starting
//! at or before the seq is the only candidate). Indexing an issue by its
//! range keeps a batch of n entries at one index write instead of n. An
//! `entries.issued` event itself is never held back: nothing about its
//! entries existed before it was recorded. A redelivered event is recorded
//! anew (a new seq, like Redis appending it to its stream): it waits behind
//! the pending events of its entries recorded before its redelivery and
//! holds back those recorded after, except that a redelivered
//! `entries.issued` event is not held back (the spec allows it).
//!
//! Leases across a restart: opening the store makes every held event due at
//! once ([`release_leases`], one pass over `events`). Only one process can
//! have the file open (redb locks it), so a held event found at open was
//! held by a process that is gone; waiting for its lease to end would only
//! delay its redelivery. The attempt it was handed out for still counts.
//! Re-opening the file after a failure inside a running store (`handle.rs`)
//! does not do this: that store's dispatcher still holds its leases.
//!
//! Encodings (little-endian integers; a leading format byte so a later
//! build can read them; decoding never panics, bad bytes are
//! [`StoreError::Corrupt`]):
//!
//! - [`Stored`] (`events`): format `1`, state (`0` waiting, `1` held, `2`
//!   scheduled), attempt (u32), due in unix ms (u64, `0` while waiting),
//!   then the body.
//! - [`DeadRecord`] (`event_dead`): format `1`, attempts (u32), dead at in
//!   unix ms (u64), error (u16 length + UTF-8, cut to [`ERROR_MAX`] bytes),
//!   then the body.
//! - body: event id (16 bytes, big-endian), kind code (u8), list format
//!   byte, `at` (u64, unix s), entry seq (u8 flag `0`/`1`, then u64 if `1`:
//!   the space seq of the first entry, absent for an untracked list), ref
//!   (u8 length, `0` for none, + bytes), then the entries as runs of one
//!   list: run count (u32), and per run the list id (12 bytes), the count
//!   (u32) and that many indexes (u64), in the event's order. The client is
//!   not repeated: it is the key's.

use std::collections::HashSet;
use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};

use super::records::{Reader, format_byte, parse_format, put_ref, read_list_id};
use super::{EmbeddedStore, Inner, db_err};
use crate::domain::events::{Event, EventId, EventKind};
use crate::domain::{ClientId, ListId};
use crate::ports::{DeadLetter, Failure, Lease, Outbox, StoreError, TakeRequest, UnixMillis};
use crate::store::common::millis;

/// client → (next seq, pending count).
const CLIENTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("event_clients");
/// (client, seq) → [`Stored`]: every pending event.
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
/// (client, seq) → (): the waiting events.
const WAITING: TableDefinition<(&str, u64), ()> = TableDefinition::new("event_waiting");
/// (client, due ms, seq) → (): the held and scheduled events.
const DUE: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("event_due");
/// (client, list, idx, seq) → (): the entries of the pending events other
/// than issues indexed by range.
const BY_ENTRY: TableDefinition<(&str, &str, u64, u64), ()> = TableDefinition::new("event_entries");
/// (client, format byte, first entry seq, seq) → entry count: the pending
/// `entries.issued` events of tracked lists.
const ISSUED: TableDefinition<(&str, u8, u64, u64), u64> = TableDefinition::new("event_issued");
/// (client, event id) → [`DeadRecord`].
const DEAD: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("event_dead");

/// Format byte of [`Stored`] encodings.
const STORED_V1: u8 = 1;
/// Format byte of [`DeadRecord`] encodings.
const DEAD_V1: u8 = 1;
/// The longest error text a dead letter keeps, in bytes: the port promises
/// a status code or an error kind, so this only bounds a misbehaving caller.
const ERROR_MAX: usize = 1024;
/// How many index keys a take reads at a time before it updates them (redb
/// cannot write a table while iterating it).
const CHUNK: usize = 64;

/// Creates the outbox tables that do not exist yet (a file from before
/// events has none).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CLIENTS).map_err(db_err)?;
    txn.open_table(EVENTS).map_err(db_err)?;
    txn.open_table(WAITING).map_err(db_err)?;
    txn.open_table(DUE).map_err(db_err)?;
    txn.open_table(BY_ENTRY).map_err(db_err)?;
    txn.open_table(ISSUED).map_err(db_err)?;
    txn.open_table(DEAD).map_err(db_err)?;
    Ok(())
}

/// An event to record and where its entries start in their space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EventBody {
    /// The event (its client is the one it is recorded for).
    pub event: Event,
    /// The space seq of its first entry, when its list is tracked (for an
    /// `entries.issued` event, the allocation's first seq): what the hold
    /// back by range needs.
    pub entry_seq: Option<u64>,
}

impl EventBody {
    /// Whether the event is indexed by the range of its entries' seqs
    /// (`event_issued`) rather than entry by entry (`event_entries`).
    fn by_range(&self) -> Option<u64> {
        match self.event.kind {
            EventKind::EntriesIssued => self.entry_seq,
            _ => None,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        let e = &self.event;
        out.extend_from_slice(&e.id.to_bytes());
        out.push(e.kind.code());
        out.push(format_byte(e.format));
        out.extend_from_slice(&e.at.to_le_bytes());
        match self.entry_seq {
            None => out.push(0),
            Some(seq) => {
                out.push(1);
                out.extend_from_slice(&seq.to_le_bytes());
            }
        }
        put_ref(out, e.issuance_ref.as_ref());
        let runs = runs(&e.entries);
        // Counts come from allocations (u32) and lists: they fit.
        out.extend_from_slice(&u32::try_from(runs.len()).unwrap_or(u32::MAX).to_le_bytes());
        for run in runs {
            out.extend_from_slice(run[0].0.as_str().as_bytes());
            out.extend_from_slice(&u32::try_from(run.len()).unwrap_or(u32::MAX).to_le_bytes());
            for (_, idx) in run {
                out.extend_from_slice(&idx.to_le_bytes());
            }
        }
    }

    fn decode(r: &mut Reader<'_>, client: &ClientId) -> Result<Self, StoreError> {
        let id = EventId::from_bytes(r.array::<16>()?);
        let kind = EventKind::from_code(r.u8()?).ok_or_else(|| r.corrupt("bad kind"))?;
        let format = parse_format(r.u8()?).ok_or_else(|| r.corrupt("bad format"))?;
        let at = r.u64()?;
        let entry_seq = match r.u8()? {
            0 => None,
            1 => Some(r.u64()?),
            _ => return Err(r.corrupt("bad flag")),
        };
        let issuance_ref = r.issuance_ref()?;
        let runs = u32_of(r)?;
        if runs == 0 {
            return Err(r.corrupt("no entries"));
        }
        let mut entries = Vec::new();
        for _ in 0..runs {
            let list = read_list_id(r)?;
            let n = u32_of(r)?;
            if n == 0 {
                return Err(r.corrupt("empty run"));
            }
            // Nothing reserved from the count: a bad count runs out of
            // bytes (corrupt) instead of asking the allocator for it.
            for _ in 0..n {
                entries.push((list, r.u64()?));
            }
        }
        Ok(EventBody {
            event: Event {
                id,
                kind,
                client: client.clone(),
                format,
                at,
                entries,
                issuance_ref,
            },
            entry_seq,
        })
    }
}

fn u32_of(r: &mut Reader<'_>) -> Result<u32, StoreError> {
    Ok(u32::from_le_bytes(r.array::<4>()?))
}

/// The entries cut into runs of one list, in order.
fn runs(entries: &[(ListId, u64)]) -> Vec<&[(ListId, u64)]> {
    entries.chunk_by(|a, b| a.0 == b.0).collect()
}

/// Where a pending event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Recorded (or redelivered), never handed out: in `event_waiting`.
    Waiting,
    /// Handed out until `due`: in `event_due`.
    Held,
    /// Due again at `due` (a failed attempt, a hold back, a released
    /// lease): in `event_due`.
    Scheduled,
}

impl State {
    const fn code(self) -> u8 {
        match self {
            State::Waiting => 0,
            State::Held => 1,
            State::Scheduled => 2,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(State::Waiting),
            1 => Some(State::Held),
            2 => Some(State::Scheduled),
            _ => None,
        }
    }
}

/// A pending event as `events` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stored {
    state: State,
    /// How many times it was handed out since it was recorded or
    /// redelivered.
    attempt: u32,
    /// Unix ms: the end of the lease (held), the next try (scheduled); 0
    /// while waiting.
    due: UnixMillis,
    body: EventBody,
}

impl Stored {
    fn waiting(body: EventBody) -> Self {
        Stored {
            state: State::Waiting,
            attempt: 0,
            due: 0,
            body,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 8 * self.body.event.entries.len());
        out.push(STORED_V1);
        out.push(self.state.code());
        out.extend_from_slice(&self.attempt.to_le_bytes());
        out.extend_from_slice(&self.due.to_le_bytes());
        self.body.encode_into(&mut out);
        out
    }

    fn decode(client: &ClientId, bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "event record");
        let (state, attempt, due) = header(&mut r)?;
        let body = EventBody::decode(&mut r, client)?;
        r.end()?;
        Ok(Stored {
            state,
            attempt,
            due,
            body,
        })
    }
}

/// The fixed head of a [`Stored`] encoding: what [`release_leases`] reads
/// without decoding the event.
fn header(r: &mut Reader<'_>) -> Result<(State, u32, UnixMillis), StoreError> {
    if r.u8()? != STORED_V1 {
        return Err(r.corrupt("unknown format"));
    }
    let state = State::from_code(r.u8()?).ok_or_else(|| r.corrupt("bad state"))?;
    let attempt = u32_of(r)?;
    let due = r.u64()?;
    Ok((state, attempt, due))
}

/// A dead event as `event_dead` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeadRecord {
    attempts: u32,
    dead_at: UnixMillis,
    error: String,
    body: EventBody,
}

impl DeadRecord {
    fn encode(&self) -> Vec<u8> {
        let error = clip(&self.error, ERROR_MAX);
        let mut out = Vec::with_capacity(64 + error.len() + 8 * self.body.event.entries.len());
        out.push(DEAD_V1);
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&self.dead_at.to_le_bytes());
        // At most ERROR_MAX bytes: fits a u16.
        out.extend_from_slice(&u16::try_from(error.len()).unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(error.as_bytes());
        self.body.encode_into(&mut out);
        out
    }

    fn decode(client: &ClientId, bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "dead letter");
        if r.u8()? != DEAD_V1 {
            return Err(r.corrupt("unknown format"));
        }
        let attempts = u32_of(&mut r)?;
        let dead_at = r.u64()?;
        let len = usize::from(u16::from_le_bytes(r.array::<2>()?));
        let error = std::str::from_utf8(r.take(len)?)
            .map_err(|_| r.corrupt("bad error text"))?
            .to_owned();
        let body = EventBody::decode(&mut r, client)?;
        r.end()?;
        Ok(DeadRecord {
            attempts,
            dead_at,
            error,
            body,
        })
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The key of an event id in `event_dead`: the id's number, so that the
/// table's order is the ids' order.
fn id_key(id: EventId) -> u128 {
    u128::from_be_bytes(id.to_bytes())
}

/// A lease's handle: the seq. A handle that is not one names no event.
fn seq_of(handle: &str) -> Option<u64> {
    handle.parse().ok()
}

/// Records `bodies`, in order, as waiting events of `client` inside the
/// write's transaction `txn`.
pub(super) fn record(
    txn: &WriteTransaction,
    client: &ClientId,
    bodies: Vec<EventBody>,
) -> Result<(), StoreError> {
    if bodies.is_empty() {
        return Ok(());
    }
    Tables::open(txn)?.append(client.as_str(), bodies)
}

/// Makes every held event due at once (see the module doc); returns how
/// many there were. Run by `open`, in its transaction.
pub(super) fn release_leases(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let mut events = txn.open_table(EVENTS).map_err(db_err)?;
    let mut due = txn.open_table(DUE).map_err(db_err)?;
    let mut held: Vec<(String, u64, u32, UnixMillis, Vec<u8>)> = Vec::new();
    for entry in events.iter().map_err(db_err)? {
        let (key, value) = entry.map_err(db_err)?;
        let bytes = value.value();
        let mut r = Reader::new(bytes, "event record");
        if let (State::Held, attempt, until) = header(&mut r)? {
            let (client, seq) = key.value();
            held.push((client.to_owned(), seq, attempt, until, bytes.to_vec()));
        }
    }
    let released = u64::try_from(held.len()).unwrap_or(u64::MAX);
    for (client, seq, attempt, until, mut bytes) in held {
        due.remove((client.as_str(), until, seq)).map_err(db_err)?;
        due.insert((client.as_str(), 0, seq), ()).map_err(db_err)?;
        // Only the head changes: patched in place, the event as it was.
        let mut head = vec![STORED_V1, State::Scheduled.code()];
        head.extend_from_slice(&attempt.to_le_bytes());
        head.extend_from_slice(&0u64.to_le_bytes());
        bytes.splice(..head.len(), head);
        events
            .insert((client.as_str(), seq), bytes.as_slice())
            .map_err(db_err)?;
    }
    Ok(released)
}

/// The outbox tables of a write transaction.
struct Tables<'txn> {
    clients: Table<'txn, &'static str, (u64, u64)>,
    events: Table<'txn, (&'static str, u64), &'static [u8]>,
    waiting: Table<'txn, (&'static str, u64), ()>,
    due: Table<'txn, (&'static str, u64, u64), ()>,
    by_entry: Table<'txn, (&'static str, &'static str, u64, u64), ()>,
    issued: Table<'txn, (&'static str, u8, u64, u64), u64>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            clients: txn.open_table(CLIENTS).map_err(db_err)?,
            events: txn.open_table(EVENTS).map_err(db_err)?,
            waiting: txn.open_table(WAITING).map_err(db_err)?,
            due: txn.open_table(DUE).map_err(db_err)?,
            by_entry: txn.open_table(BY_ENTRY).map_err(db_err)?,
            issued: txn.open_table(ISSUED).map_err(db_err)?,
        })
    }

    /// The client's (next seq, pending count).
    fn counters(&self, c: &str) -> Result<(u64, u64), StoreError> {
        Ok(self
            .clients
            .get(c)
            .map_err(db_err)?
            .map_or((0, 0), |g| g.value()))
    }

    /// Changes the client's pending count with `f`.
    fn count(&mut self, c: &str, f: impl FnOnce(u64) -> u64) -> Result<(), StoreError> {
        let (next, pending) = self.counters(c)?;
        self.clients.insert(c, (next, f(pending))).map_err(db_err)?;
        Ok(())
    }

    /// Adds `bodies` as waiting events under the client's next seqs, with
    /// their index keys, and counts them: one counter write however many.
    fn append(&mut self, c: &str, bodies: Vec<EventBody>) -> Result<(), StoreError> {
        let (mut next, pending) = self.counters(c)?;
        let added = u64::try_from(bodies.len()).unwrap_or(u64::MAX);
        for body in bodies {
            let stored = Stored::waiting(body);
            self.put(c, next, &stored)?;
            self.enqueue(c, next, &stored)?;
            self.index(c, next, &stored.body)?;
            next = next.saturating_add(1);
        }
        self.clients
            .insert(c, (next, pending.saturating_add(added)))
            .map_err(db_err)?;
        Ok(())
    }

    fn load(&self, client: &ClientId, seq: u64) -> Result<Option<Stored>, StoreError> {
        self.events
            .get((client.as_str(), seq))
            .map_err(db_err)?
            .map(|g| Stored::decode(client, g.value()))
            .transpose()
    }

    fn put(&mut self, c: &str, seq: u64, stored: &Stored) -> Result<(), StoreError> {
        self.events
            .insert((c, seq), stored.encode().as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Adds the queue key of the event's state.
    fn enqueue(&mut self, c: &str, seq: u64, stored: &Stored) -> Result<(), StoreError> {
        match stored.state {
            State::Waiting => self.waiting.insert((c, seq), ()).map_err(db_err)?,
            State::Held | State::Scheduled => {
                self.due.insert((c, stored.due, seq), ()).map_err(db_err)?
            }
        };
        Ok(())
    }

    /// Removes the queue key of the event's state.
    fn dequeue(&mut self, c: &str, seq: u64, stored: &Stored) -> Result<(), StoreError> {
        match stored.state {
            State::Waiting => self.waiting.remove((c, seq)).map_err(db_err)?,
            State::Held | State::Scheduled => {
                self.due.remove((c, stored.due, seq)).map_err(db_err)?
            }
        };
        Ok(())
    }

    /// Adds the hold-back keys of a pending event.
    fn index(&mut self, c: &str, seq: u64, body: &EventBody) -> Result<(), StoreError> {
        let e = &body.event;
        match body.by_range() {
            Some(first) => {
                let count = u64::try_from(e.entries.len()).unwrap_or(u64::MAX);
                self.issued
                    .insert((c, format_byte(e.format), first, seq), count)
                    .map_err(db_err)?;
            }
            None => {
                for (list, idx) in &e.entries {
                    self.by_entry
                        .insert((c, list.as_str(), *idx, seq), ())
                        .map_err(db_err)?;
                }
            }
        }
        Ok(())
    }

    /// Removes what [`Tables::index`] added.
    fn unindex(&mut self, c: &str, seq: u64, body: &EventBody) -> Result<(), StoreError> {
        let e = &body.event;
        match body.by_range() {
            Some(first) => {
                self.issued
                    .remove((c, format_byte(e.format), first, seq))
                    .map_err(db_err)?;
            }
            None => {
                for (list, idx) in &e.entries {
                    self.by_entry
                        .remove((c, list.as_str(), *idx, seq))
                        .map_err(db_err)?;
                }
            }
        }
        Ok(())
    }

    /// Removes a pending event (delivered or dead) with its keys, and makes
    /// the events it held back due at once; true when there were any.
    fn remove(&mut self, client: &ClientId, seq: u64, stored: &Stored) -> Result<bool, StoreError> {
        let c = client.as_str();
        self.events.remove((c, seq)).map_err(db_err)?;
        self.dequeue(c, seq, stored)?;
        self.unindex(c, seq, &stored.body)?;
        self.count(c, |n| n.saturating_sub(1))?;
        self.release(client, seq, &stored.body)
    }

    /// The next pending event of each entry of `body` (recorded after
    /// `seq`), when held back (scheduled, never handed out), is due at once
    /// instead of after `recheck`: a quick series of changes to one entry
    /// goes out as fast as the receiver takes it. Whether it may go is
    /// still decided by the take.
    fn release(
        &mut self,
        client: &ClientId,
        seq: u64,
        body: &EventBody,
    ) -> Result<bool, StoreError> {
        let c = client.as_str();
        let mut woken = false;
        for (list, idx) in &body.event.entries {
            let l = list.as_str();
            let next = self
                .by_entry
                .range((c, l, *idx, seq.saturating_add(1))..=(c, l, *idx, u64::MAX))
                .map_err(db_err)?
                .next()
                .transpose()
                .map_err(db_err)?
                .map(|(k, _)| k.value().3);
            let Some(next) = next else { continue };
            let Some(mut later) = self.load(client, next)? else {
                continue;
            };
            if later.state == State::Scheduled && later.attempt == 0 && later.due > 0 {
                self.dequeue(c, next, &later)?;
                later.due = 0;
                self.enqueue(c, next, &later)?;
                self.put(c, next, &later)?;
                woken = true;
            }
        }
        Ok(woken)
    }

    /// Whether an earlier pending event of the client shares an entry with
    /// the event `seq` (see the module doc).
    fn held_back(&self, c: &str, seq: u64, body: &EventBody) -> Result<bool, StoreError> {
        if body.by_range().is_some() {
            return Ok(false);
        }
        let e = &body.event;
        for (list, idx) in &e.entries {
            let l = list.as_str();
            let mut earlier = self
                .by_entry
                .range((c, l, *idx, 0u64)..(c, l, *idx, seq))
                .map_err(db_err)?;
            if earlier.next().is_some() {
                return Ok(true);
            }
        }
        let Some(pos) = body.entry_seq else {
            return Ok(false);
        };
        let f = format_byte(e.format);
        let last = self
            .issued
            .range((c, f, 0u64, 0u64)..=(c, f, pos, u64::MAX))
            .map_err(db_err)?
            .next_back()
            .transpose()
            .map_err(db_err)?;
        Ok(last.is_some_and(|(key, count)| {
            let (_, _, first, issue) = key.value();
            issue < seq && pos < first.saturating_add(count.value())
        }))
    }

    /// Looks at one candidate of a take: held back, it is due again after
    /// `recheck`; else it is handed out.
    fn consider(
        &mut self,
        client: &ClientId,
        seq: u64,
        req: &TakeRequest,
    ) -> Result<Option<Lease>, StoreError> {
        let c = client.as_str();
        let mut stored = self
            .load(client, seq)?
            .ok_or_else(|| StoreError::Corrupt(format!("event {seq} of {c} is queued but gone")))?;
        self.dequeue(c, seq, &stored)?;
        let lease = if self.held_back(c, seq, &stored.body)? {
            stored.state = State::Scheduled;
            stored.due = req.now_ms.saturating_add(millis(req.recheck));
            None
        } else {
            stored.state = State::Held;
            stored.attempt = stored.attempt.saturating_add(1);
            stored.due = req.now_ms.saturating_add(millis(req.lease));
            Some(Lease {
                event: stored.body.event.clone(),
                attempt: stored.attempt,
                handle: seq.to_string(),
            })
        };
        self.enqueue(c, seq, &stored)?;
        self.put(c, seq, &stored)?;
        Ok(lease)
    }

    /// The take: per client, the due events by due time, then the waiting
    /// ones by seq, until `max` are handed out.
    fn take(&mut self, req: &TakeRequest) -> Result<Vec<Lease>, StoreError> {
        let mut out = Vec::new();
        for client in &req.clients {
            let c = client.as_str();
            // Due events. Those looked at go back with a due time of now or
            // later, possibly inside the range again (a zero lease or
            // recheck): `seen` keeps one look each.
            let mut seen = HashSet::new();
            let mut after: Bound<(u64, u64)> = Bound::Unbounded;
            while out.len() < req.max {
                let from = match after {
                    Bound::Excluded((d, s)) => Bound::Excluded((c, d, s)),
                    _ => Bound::Included((c, 0, 0)),
                };
                let chunk: Vec<(u64, u64)> = self
                    .due
                    .range::<(&str, u64, u64)>((from, Bound::Included((c, req.now_ms, u64::MAX))))
                    .map_err(db_err)?
                    .take(CHUNK)
                    .map(|k| k.map(|(k, _)| (k.value().1, k.value().2)))
                    .collect::<Result<_, _>>()
                    .map_err(db_err)?;
                let Some(&last) = chunk.last() else { break };
                after = Bound::Excluded(last);
                for (_, seq) in chunk {
                    if out.len() >= req.max {
                        break;
                    }
                    if seen.insert(seq)
                        && let Some(lease) = self.consider(client, seq, req)?
                    {
                        out.push(lease);
                    }
                }
            }
            // Waiting events, in record order; each leaves the table.
            while out.len() < req.max {
                let chunk: Vec<u64> = self
                    .waiting
                    .range((c, 0)..=(c, u64::MAX))
                    .map_err(db_err)?
                    .take(CHUNK)
                    .map(|k| k.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()
                    .map_err(db_err)?;
                if chunk.is_empty() {
                    break;
                }
                for seq in chunk {
                    if out.len() >= req.max {
                        break;
                    }
                    if let Some(lease) = self.consider(client, seq, req)? {
                        out.push(lease);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The pending event a report names, if its attempt is still the
    /// current one.
    fn reported(&self, failure: &Failure) -> Result<Option<(u64, Stored)>, StoreError> {
        let Some(seq) = seq_of(&failure.handle) else {
            return Ok(None);
        };
        Ok(self
            .load(&failure.client, seq)?
            .filter(|s| s.attempt == failure.attempt)
            .map(|s| (seq, s)))
    }
}

impl Inner {
    fn delivered(
        &self,
        txn: &WriteTransaction,
        client: &ClientId,
        handle: &str,
    ) -> Result<bool, StoreError> {
        let Some(seq) = seq_of(handle) else {
            return Ok(false);
        };
        let mut t = Tables::open(txn)?;
        match t.load(client, seq)? {
            Some(stored) => t.remove(client, seq, &stored),
            None => Ok(false),
        }
    }

    fn retry(
        &self,
        txn: &WriteTransaction,
        failure: &Failure,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut t = Tables::open(txn)?;
        let Some((seq, mut stored)) = t.reported(failure)? else {
            return Ok(());
        };
        let c = failure.client.as_str();
        t.dequeue(c, seq, &stored)?;
        stored.state = State::Scheduled;
        stored.due = at;
        t.enqueue(c, seq, &stored)?;
        t.put(c, seq, &stored)
    }

    fn dead_letter(&self, txn: &WriteTransaction, failure: &Failure) -> Result<bool, StoreError> {
        let mut t = Tables::open(txn)?;
        let Some((seq, stored)) = t.reported(failure)? else {
            return Ok(false);
        };
        let c = failure.client.as_str();
        let woken = t.remove(&failure.client, seq, &stored)?;
        let dead = DeadRecord {
            attempts: stored.attempt,
            dead_at: failure.now_ms,
            error: clip(&failure.error, ERROR_MAX).to_owned(),
            body: stored.body,
        };
        txn.open_table(DEAD)
            .map_err(db_err)?
            .insert((c, id_key(dead.body.event.id)), dead.encode().as_slice())
            .map_err(db_err)?;
        Ok(woken)
    }

    fn redeliver(
        &self,
        txn: &WriteTransaction,
        client: &ClientId,
        ids: &[EventId],
    ) -> Result<Vec<EventId>, StoreError> {
        let c = client.as_str();
        let mut dead = txn.open_table(DEAD).map_err(db_err)?;
        let mut t = Tables::open(txn)?;
        let mut back = Vec::new();
        let mut bodies = Vec::new();
        for id in ids {
            let found = dead
                .remove((c, id_key(*id)))
                .map_err(db_err)?
                .map(|g| DeadRecord::decode(client, g.value()))
                .transpose()?;
            if let Some(rec) = found {
                bodies.push(rec.body);
                back.push(*id);
            }
        }
        if !bodies.is_empty() {
            t.append(c, bodies)?;
        }
        Ok(back)
    }

    /// Whether a take could find anything: an event of one of the clients
    /// due by then, or waiting. A read, so that an idle dispatcher's polls
    /// cost no write transaction (and no fsync).
    fn anything_to_take(&self, req: &TakeRequest) -> Result<bool, StoreError> {
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let due = txn.open_table(DUE).map_err(db_err)?;
        let waiting = txn.open_table(WAITING).map_err(db_err)?;
        for client in &req.clients {
            let c = client.as_str();
            let mut due_now = due
                .range((c, 0u64, 0u64)..=(c, req.now_ms, u64::MAX))
                .map_err(db_err)?;
            let mut waits = waiting.range((c, 0u64)..=(c, u64::MAX)).map_err(db_err)?;
            if due_now.next().is_some() || waits.next().is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn pending_events(&self, client: &ClientId) -> Result<u64, StoreError> {
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let clients = txn.open_table(CLIENTS).map_err(db_err)?;
        Ok(clients
            .get(client.as_str())
            .map_err(db_err)?
            .map_or(0, |g| g.value().1))
    }

    fn dead_events(&self, client: &ClientId) -> Result<Vec<DeadLetter>, StoreError> {
        let c = client.as_str();
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let dead = txn.open_table(DEAD).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in dead.range((c, 0u128)..=(c, u128::MAX)).map_err(db_err)? {
            let (_, value) = entry.map_err(db_err)?;
            let rec = DeadRecord::decode(client, value.value())?;
            out.push(DeadLetter {
                event: rec.body.event,
                attempts: rec.attempts,
                dead_at: rec.dead_at,
                error: rec.error,
            });
        }
        Ok(out)
    }
}

impl Outbox for EmbeddedStore {
    #[tracing::instrument(level = "debug", name = "store.take", skip_all, fields(clients = req.clients.len(), max = req.max))]
    async fn take(&self, req: &TakeRequest) -> Result<Vec<Lease>, StoreError> {
        if req.max == 0 || req.clients.is_empty() {
            return Ok(Vec::new());
        }
        let req = req.clone();
        // Events recorded after this look are found by the next take (the
        // dispatcher is nudged or polls): nothing is lost by answering
        // "none" without the writer.
        let probe = req.clone();
        if !self
            .blocking(move |inner| inner.anything_to_take(&probe))
            .await?
        {
            return Ok(Vec::new());
        }
        self.write("store.take", move |_, txn| Tables::open(txn)?.take(&req))
            .await
    }

    #[tracing::instrument(level = "debug", name = "store.delivered", skip_all, fields(client = %client))]
    async fn delivered(&self, client: &ClientId, handle: &str) -> Result<bool, StoreError> {
        let (client, handle) = (client.clone(), handle.to_owned());
        self.write("store.delivered", move |inner, txn| {
            inner.delivered(txn, &client, &handle)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "store.retry", skip_all, fields(client = %failure.client))]
    async fn retry(&self, failure: &Failure, retry_at: UnixMillis) -> Result<(), StoreError> {
        let failure = failure.clone();
        self.write("store.retry", move |inner, txn| {
            inner.retry(txn, &failure, retry_at)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "store.dead_letter", skip_all, fields(client = %failure.client))]
    async fn dead_letter(&self, failure: &Failure) -> Result<bool, StoreError> {
        let failure = failure.clone();
        self.write("store.dead_letter", move |inner, txn| {
            inner.dead_letter(txn, &failure)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "store.dead_letters", skip_all, fields(client = %client))]
    async fn dead_letters(&self, client: &ClientId) -> Result<Vec<DeadLetter>, StoreError> {
        let client = client.clone();
        self.blocking(move |inner| inner.dead_events(&client)).await
    }

    #[tracing::instrument(level = "debug", name = "store.redeliver", skip_all, fields(client = %client, ids = ids.len()))]
    async fn redeliver(
        &self,
        client: &ClientId,
        ids: &[EventId],
    ) -> Result<Vec<EventId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (client, ids) = (client.clone(), ids.to_vec());
        self.write("store.redeliver", move |inner, txn| {
            inner.redeliver(txn, &client, &ids)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "store.pending", skip_all, fields(client = %client))]
    async fn pending(&self, client: &ClientId) -> Result<u64, StoreError> {
        let client = client.clone();
        self.blocking(move |inner| inner.pending_events(&client))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::EventSeed;
    use crate::domain::{IssuanceRef, ListFormat};

    fn client() -> ClientId {
        ClientId::parse("hooked").unwrap()
    }

    fn list(n: u8) -> ListId {
        ListId::from_random_bytes([n, 2, 3, 4, 5, 6])
    }

    fn body(kind: EventKind, entries: Vec<(ListId, u64)>) -> EventBody {
        EventBody {
            event: Event {
                id: EventSeed {
                    ms: 1_700_000_000_123,
                    nonce: 0xABCD_EF01_2345,
                }
                .id(7),
                kind,
                client: client(),
                format: ListFormat::Bitstring,
                at: 1_700_000_000,
                entries,
                issuance_ref: Some(IssuanceRef::parse("order 42").unwrap()),
            },
            entry_seq: Some(1_000),
        }
    }

    /// Every shape a body takes: one entry or runs over two lists (back
    /// and forth), with and without a ref and an entry seq, each kind.
    fn bodies() -> Vec<EventBody> {
        let mut out = Vec::new();
        for kind in EventKind::ALL {
            out.push(body(kind, vec![(list(1), 7)]));
        }
        out.push(body(
            EventKind::EntriesIssued,
            vec![
                (list(1), 0),
                (list(1), u64::MAX),
                (list(2), 3),
                (list(1), 9),
            ],
        ));
        let mut bare = body(EventKind::EntryRevoked, vec![(list(3), 1)]);
        bare.event.issuance_ref = None;
        bare.entry_seq = None;
        bare.event.format = ListFormat::Token;
        out.push(bare);
        let mut long = body(EventKind::EntrySuspended, vec![(list(4), 2)]);
        long.event.issuance_ref = Some(IssuanceRef::parse(&"~".repeat(128)).unwrap());
        out.push(long);
        out
    }

    fn stored(state: State, body: EventBody) -> Stored {
        Stored {
            state,
            attempt: 3,
            due: 1_700_000_000_999,
            body,
        }
    }

    fn dead(body: EventBody) -> DeadRecord {
        DeadRecord {
            attempts: 12,
            dead_at: 1_700_000_100_000,
            error: "HTTP 503".into(),
            body,
        }
    }

    #[test]
    fn records_round_trip() {
        for b in bodies() {
            for state in [State::Waiting, State::Held, State::Scheduled] {
                let s = stored(state, b.clone());
                assert_eq!(Stored::decode(&client(), &s.encode()).unwrap(), s);
            }
            let d = dead(b);
            assert_eq!(DeadRecord::decode(&client(), &d.encode()).unwrap(), d);
        }
    }

    /// The documented layout, byte for byte, for one small event.
    #[test]
    fn the_encoding_is_the_documented_one() {
        let b = body(EventKind::EntryRevoked, vec![(list(1), 7)]);
        let s = stored(State::Held, b.clone());
        let mut want = vec![1u8, 1];
        want.extend_from_slice(&3u32.to_le_bytes());
        want.extend_from_slice(&1_700_000_000_999u64.to_le_bytes());
        want.extend_from_slice(&b.event.id.to_bytes());
        want.extend_from_slice(&[1, 1]);
        want.extend_from_slice(&1_700_000_000u64.to_le_bytes());
        want.push(1);
        want.extend_from_slice(&1_000u64.to_le_bytes());
        want.push(8);
        want.extend_from_slice(b"order 42");
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(list(1).as_str().as_bytes());
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(&7u64.to_le_bytes());
        assert_eq!(s.encode(), want);
        let d = dead(b).encode();
        assert_eq!(d[0], 1);
        assert_eq!(d[1..5], 12u32.to_le_bytes());
        assert_eq!(d[5..13], 1_700_000_100_000u64.to_le_bytes());
        assert_eq!(d[13..15], 8u16.to_le_bytes());
        assert_eq!(&d[15..23], b"HTTP 503");
        assert_eq!(d[23..], want[14..]);
    }

    #[test]
    fn entries_are_kept_as_runs_of_one_list() {
        let e = [(list(1), 1), (list(1), 2), (list(2), 3), (list(1), 4)];
        let got: Vec<usize> = runs(&e).iter().map(|r| r.len()).collect();
        assert_eq!(got, [2, 1, 1]);
        assert!(runs(&[]).is_empty());
    }

    #[test]
    fn every_truncation_and_garbage_is_corrupt_not_a_panic() {
        let corrupt = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Corrupt(_)));
        for b in bodies() {
            let s = stored(State::Scheduled, b.clone()).encode();
            for n in 0..s.len() {
                assert!(corrupt(Stored::decode(&client(), &s[..n]).map(|_| ())));
            }
            let mut long = s.clone();
            long.push(0);
            assert!(corrupt(Stored::decode(&client(), &long).map(|_| ())));
            let d = dead(b).encode();
            for n in 0..d.len() {
                assert!(corrupt(DeadRecord::decode(&client(), &d[..n]).map(|_| ())));
            }
            let mut long = d.clone();
            long.push(0);
            assert!(corrupt(DeadRecord::decode(&client(), &long).map(|_| ())));
        }
        let s = stored(
            State::Held,
            body(EventKind::EntryRevoked, vec![(list(1), 7)]),
        )
        .encode();
        // Offsets: format, state, kind (30), list format (31), entry seq
        // flag (40), ref (49 length, 50..58 text), run count (58..62),
        // list id (62..74), run length (74..78).
        for (at, bad) in [(0, 2u8), (1, 3), (30, 0), (30, 5), (31, 2), (40, 2)] {
            let mut b = s.clone();
            b[at] = bad;
            assert!(
                corrupt(Stored::decode(&client(), &b).map(|_| ())),
                "byte {at} = {bad}"
            );
        }
        for at in [58, 74] {
            let mut b = s.clone();
            b[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
            assert!(
                corrupt(Stored::decode(&client(), &b).map(|_| ())),
                "zero at {at}"
            );
            // A huge count fails on the bytes, without reserving for it.
            b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(
                corrupt(Stored::decode(&client(), &b).map(|_| ())),
                "huge at {at}"
            );
        }
        let mut bad_ref = s.clone();
        bad_ref[50] = b'\t';
        assert!(
            corrupt(Stored::decode(&client(), &bad_ref).map(|_| ())),
            "not a ref"
        );
        let mut bad_list = s;
        bad_list[62] = b'!';
        assert!(
            corrupt(Stored::decode(&client(), &bad_list).map(|_| ())),
            "not a list id"
        );
        let mut d = dead(body(EventKind::EntryRevoked, vec![(list(1), 7)])).encode();
        d[15] = 0xFF;
        assert!(
            corrupt(DeadRecord::decode(&client(), &d).map(|_| ())),
            "not UTF-8"
        );
        d[0] = 9;
        assert!(corrupt(DeadRecord::decode(&client(), &d).map(|_| ())));
    }

    /// An error text is cut to ERROR_MAX bytes at a character boundary, so
    /// that it always fits its length field and stays UTF-8.
    #[test]
    fn long_errors_are_cut_at_a_character() {
        let text = format!("x{}", "é".repeat(ERROR_MAX));
        let d = DeadRecord {
            error: text.clone(),
            ..dead(body(EventKind::EntryRevoked, vec![(list(1), 7)]))
        };
        let back = DeadRecord::decode(&client(), &d.encode()).unwrap();
        assert_eq!(back.error.len(), ERROR_MAX - 1);
        assert!(text.starts_with(&back.error));
        assert_eq!(clip("short", ERROR_MAX), "short");
    }

    /// Dead letters are keyed so that the table's order is the ids' order.
    #[test]
    fn dead_letter_keys_sort_as_ids() {
        let a = EventSeed { ms: 5, nonce: 9 }.id(3);
        let b = EventSeed { ms: 6, nonce: 0 }.id(0);
        let c = EventSeed { ms: 6, nonce: 0 }.id(1);
        assert!(id_key(a) < id_key(b) && id_key(b) < id_key(c));
        assert_eq!(format!("{:032x}", id_key(a)), a.to_string());
    }

    #[test]
    fn handles_are_seqs_and_nothing_else() {
        assert_eq!(seq_of("0"), Some(0));
        assert_eq!(seq_of("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "-1", "1-0", " 1", "18446744073709551616", "x"] {
            assert_eq!(seq_of(bad), None, "{bad:?}");
        }
    }
}
