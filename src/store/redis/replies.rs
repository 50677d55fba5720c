//! Redis replies decoded once into typed values: the scripts' string-tagged
//! answers ([`AllocateReply`], [`SetStatusReply`], [`ClaimReply`],
//! [`RefReadReply`], [`RefChangeReply`], [`EntriesReply`]), the metadata
//! fields the adapter reads ([`StoredFacts`], [`ListState`]) and the event
//! outbox's events and dead letters ([`TakenEvent`], [`StoredDeadLetter`]).
//! Anything unexpected is [`StoreError::Corrupt`]; no other file matches a
//! tag or reads a `Value`.

use ::redis::Value;

use crate::domain::events::{EventId, EventKind};
use crate::domain::{AllocatorKey, Bits, ClientId, IssuanceRef, ListFormat, ListId, Status};
use crate::ports::StoreError;

/// A list's immutable facts as stored in its metadata hash, checked but not
/// yet expanded (building the allocator is left to the facts cache, which
/// does it once per list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredFacts {
    /// The list's format.
    pub format: ListFormat,
    /// Bits per entry.
    pub bits: Bits,
    /// Entries in the list.
    pub capacity: u64,
    /// The key of the list's index permutation.
    pub key: AllocatorKey,
    /// Bytes per chunk of its bytes; `None` for a list made before chunking
    /// (one chunk).
    pub chunk_bytes: Option<usize>,
    /// The seq of its first entry in its entry space; `None` for a list
    /// opened before entry spaces (never allocated from again, its entries
    /// never listed).
    pub base: Option<u64>,
}

/// A list's facts fields as read, in [`StoredFacts::decode`]'s order.
struct FactFields<'a> {
    fmt: &'a Value,
    bits: &'a Value,
    cap: &'a Value,
    key: &'a Value,
    cs: &'a Value,
    e: &'a Value,
}

impl StoredFacts {
    /// Decodes the `fmt`, `bits`, `cap`, `key`, `cs` and `e` fields of
    /// `list`.
    fn decode(list: &ListId, f: FactFields<'_>) -> Result<Self, StoreError> {
        let FactFields {
            fmt,
            bits,
            cap,
            key,
            cs,
            e,
        } = f;
        let format = text(fmt)
            .and_then(|s| s.parse::<ListFormat>().ok())
            .ok_or_else(|| corrupt_field(list, "fmt"))?;
        let bits = int(bits)
            .and_then(|b| Bits::try_from(b).ok())
            .ok_or_else(|| corrupt_field(list, "bits"))?;
        let capacity = int(cap).ok_or_else(|| corrupt_field(list, "cap"))?;
        let key: [u8; 32] = match key {
            Value::BulkString(b) => b.as_slice().try_into().ok(),
            _ => None,
        }
        .ok_or_else(|| corrupt_field(list, "key"))?;
        let chunk_bytes = match cs {
            Value::Nil => None,
            cs => Some(
                int(cs)
                    .and_then(|c| usize::try_from(c).ok())
                    .filter(|c| *c > 0)
                    .ok_or_else(|| corrupt_field(list, "cs"))?,
            ),
        };
        let base = match e {
            Value::Nil => None,
            e => Some(int(e).ok_or_else(|| corrupt_field(list, "e"))?),
        };
        Ok(StoredFacts {
            format,
            bits,
            capacity,
            key: AllocatorKey::from_bytes(key),
            chunk_bytes,
            base,
        })
    }

    /// The fields [`StoredFacts::from_meta`] decodes, in its order.
    pub const META_FIELDS: [&'static str; 7] = ["owner", "fmt", "bits", "cap", "key", "cs", "e"];

    /// Decodes `HMGET <meta> owner fmt bits cap key cs e` of `list`, whose
    /// owner entry names `client`. `None` when the list was never opened (an
    /// owner entry left by a lost race or a crash).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a reply of another shape, an owner that
    /// disagrees with the owner entry, or a bad field.
    pub(super) fn from_meta(
        list: &ListId,
        client: &ClientId,
        fields: &[Value],
    ) -> Result<Option<Self>, StoreError> {
        let [owner, fmt, bits, cap, key, cs, e] = fields else {
            return Err(StoreError::Corrupt("unexpected HMGET reply".to_owned()));
        };
        if matches!(owner, Value::Nil) {
            return Ok(None);
        }
        if text(owner).as_deref() != Some(client.as_str()) {
            return Err(StoreError::Corrupt(format!(
                "list {list} disagrees about its owner"
            )));
        }
        Self::decode(
            list,
            FactFields {
                fmt,
                bits,
                cap,
                key,
                cs,
                e,
            },
        )
        .map(Some)
    }
}

/// Allocation numbers handed out (or recorded) for one request in one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grant {
    /// The list they come from.
    pub list: ListId,
    /// The first allocation number.
    pub first: u64,
    /// How many, from `first` on.
    pub count: u32,
    /// The list's facts, unless the caller said it knows the list.
    pub facts: Option<StoredFacts>,
}

/// What one request got: numbers in one list, and in a second when it
/// spilled into a new list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grants {
    /// The first list's numbers.
    pub first: Grant,
    /// The new list's, when the first had too little room.
    pub next: Option<Grant>,
}

/// The answer of `allocate.lua` for one request of its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AllocateReply {
    /// Fresh numbers.
    Allocated(Grants),
    /// The idempotency record's numbers.
    Replayed(Grants),
    /// The jti was used with another digest.
    Changed,
    /// A new list is needed and no candidate id is claimed (or the claimed
    /// one was used by an earlier request of the batch).
    Open,
    /// The candidate id is taken.
    Collision,
    /// Not looked at: an earlier request of the batch needed a new list.
    Pending,
    /// A chunk of the current list's bytes is missing.
    Damaged(ListId),
}

/// The answer of `allocate.lua`: one [`AllocateReply`] per request, in
/// order, and whether the candidate list was opened (its owner claim is
/// used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AllocateBatch {
    /// One per request.
    pub replies: Vec<AllocateReply>,
    /// The candidate list was opened.
    pub opened: bool,
}

impl AllocateBatch {
    /// Decodes `{answers, opened, facts}` (see `allocate.lua`).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for another shape, an unknown tag or a bad
    /// field.
    pub(super) fn decode(reply: &[Value]) -> Result<Self, StoreError> {
        let [Value::Array(answers), opened, Value::Array(facts)] = reply else {
            return Err(StoreError::Corrupt(
                "unexpected allocation reply".to_owned(),
            ));
        };
        let mut known = Vec::new();
        for f in facts.chunks(7) {
            let [list, key, cap, fmt, bits, cs, e] = f else {
                return Err(StoreError::Corrupt("unexpected list facts".to_owned()));
            };
            let list = list_id(list)?;
            let fields = FactFields {
                fmt,
                bits,
                cap,
                key,
                cs,
                e,
            };
            known.push((list, StoredFacts::decode(&list, fields)?));
        }
        let replies = answers
            .iter()
            .map(|a| match a {
                Value::Array(a) => AllocateReply::decode(a, &known),
                _ => Err(StoreError::Corrupt(
                    "unexpected allocation answer".to_owned(),
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(AllocateBatch {
            replies,
            opened: int(opened) == Some(1),
        })
    }
}

impl AllocateReply {
    /// Decodes `{tag, list, first, count[, list, first, count]}`,
    /// `{'damaged', list}` or a bare tag, the facts of the lists coming from
    /// `known`.
    fn decode(reply: &[Value], known: &[(ListId, StoredFacts)]) -> Result<Self, StoreError> {
        let tag = reply.first().and_then(text).unwrap_or_default();
        let run = |run: &[Value]| -> Result<Grant, StoreError> {
            let [list, first, count] = run else {
                return Err(StoreError::Corrupt(
                    "unexpected allocation answer".to_owned(),
                ));
            };
            let list = list_id(list)?;
            Ok(Grant {
                first: int(first).ok_or_else(|| corrupt_field(&list, "first"))?,
                count: int(count)
                    .and_then(|c| u32::try_from(c).ok())
                    .ok_or_else(|| corrupt_field(&list, "count"))?,
                // Left out when the caller said it knows the list.
                facts: known
                    .iter()
                    .find(|(l, _)| *l == list)
                    .map(|(_, f)| f.clone()),
                list,
            })
        };
        let grants = || -> Result<Grants, StoreError> {
            let runs = reply.get(1..).unwrap_or_default();
            let (first, next) = match runs.len() {
                6 => runs.split_at(3),
                _ => (runs, &[][..]),
            };
            Ok(Grants {
                first: run(first)?,
                next: (!next.is_empty()).then(|| run(next)).transpose()?,
            })
        };
        Ok(match tag.as_str() {
            "allocated" => AllocateReply::Allocated(grants()?),
            "replayed" => AllocateReply::Replayed(grants()?),
            "changed" => AllocateReply::Changed,
            "open" => AllocateReply::Open,
            "collision" => AllocateReply::Collision,
            "pending" => AllocateReply::Pending,
            "damaged" => AllocateReply::Damaged(list_id(reply.get(1).unwrap_or(&Value::Nil))?),
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unexpected allocation reply {other:?}"
                )));
            }
        })
    }
}

/// A list id in a reply.
fn list_id(v: &Value) -> Result<ListId, StoreError> {
    text(v)
        .and_then(|s| ListId::parse(&s).ok())
        .ok_or_else(|| StoreError::Corrupt("bad list id in a reply".to_owned()))
}

/// The answer of `set_status.lua`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SetStatusReply {
    /// Written now.
    Done,
    /// The entry already had the target; `at` is when it got it, if known.
    Already {
        /// The recorded time of the entry's last change.
        at: Option<u64>,
    },
    /// A replay of a request that wrote at `at`.
    ReplayedDone {
        /// When the original request wrote.
        at: u64,
    },
    /// A replay of a request answered "already".
    ReplayedAlready {
        /// The time the original request answered with.
        at: Option<u64>,
    },
    /// The jti was used with another digest.
    Changed,
    /// The transition is forbidden from `current`.
    NotAllowed {
        /// The entry's status.
        current: Status,
    },
    /// The allocation number was never handed out.
    NeverIssued,
    /// The target does not fit the list's width.
    TooWide,
    /// Another client's list.
    NotYours,
    /// No such list.
    NotFound,
    /// The list's bytes are missing or of the wrong length.
    Damaged,
}

impl SetStatusReply {
    /// Decodes the script's answer for a change of `list`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an unknown tag, an entry value with no
    /// meaning, or a bad change record.
    pub(super) fn decode(list: &ListId, reply: &[Value]) -> Result<Self, StoreError> {
        let tag = reply.first().and_then(text).unwrap_or_default();
        let current = || {
            reply
                .get(1)
                .and_then(int)
                .and_then(|v| u8::try_from(v).ok())
                .and_then(Status::from_value)
                .ok_or_else(|| corrupt_field(list, "entry value"))
        };
        Ok(match tag.as_str() {
            "done" => SetStatusReply::Done,
            "already" => {
                current()?;
                SetStatusReply::Already {
                    at: reply.get(2).and_then(int),
                }
            }
            "replayed" => {
                let at = reply.get(2).and_then(int);
                match reply.get(1).and_then(text).as_deref() {
                    Some("d") => SetStatusReply::ReplayedDone {
                        at: at.ok_or_else(|| corrupt_field(list, "recorded change time"))?,
                    },
                    Some("a") => SetStatusReply::ReplayedAlready { at },
                    _ => return Err(StoreError::Corrupt("bad change record".to_owned())),
                }
            }
            "changed" => SetStatusReply::Changed,
            "notallowed" => SetStatusReply::NotAllowed {
                current: current()?,
            },
            "never" => SetStatusReply::NeverIssued,
            "toowide" => SetStatusReply::TooWide,
            "notyours" => SetStatusReply::NotYours,
            "notfound" => SetStatusReply::NotFound,
            "damaged" => SetStatusReply::Damaged,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unexpected status reply {other:?}"
                )));
            }
        })
    }
}

/// The answer of `claim.lua`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClaimReply {
    /// The jti was unused; it is recorded now.
    Fresh,
    /// A live record of the jti exists.
    Used,
}

impl ClaimReply {
    /// Decodes `{'fresh'}` or `{'used'}`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for anything else.
    pub(super) fn decode(reply: &[Value]) -> Result<Self, StoreError> {
        match reply.first().and_then(text).as_deref() {
            Some("fresh") => Ok(ClaimReply::Fresh),
            Some("used") => Ok(ClaimReply::Used),
            other => Err(StoreError::Corrupt(format!(
                "unexpected claim reply {other:?}"
            ))),
        }
    }
}

/// Allocation numbers `first .. first + count` of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    /// The list.
    pub list: ListId,
    /// The first allocation number.
    pub first: u64,
    /// How many.
    pub count: u64,
}

/// What a change by ref did, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RefCounts {
    /// Entries changed.
    pub changed: u64,
    /// Entries the rules did not let change.
    pub skipped: u64,
    /// Entries that had the status already.
    pub already: u64,
}

/// The answer of `ref_read.lua`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RefReadReply {
    /// The jti was used for another request.
    Changed,
    /// No entry is bound to the ref.
    NotFound,
    /// The ref's entries, read at `stamp`.
    Runs {
        /// The ref's last binding (index + 1) when read.
        stamp: u64,
        /// Its entries, in allocation order.
        runs: Vec<Run>,
    },
    /// A replay of a change by ref.
    Replayed {
        /// The ref's entries, in allocation order.
        runs: Vec<Run>,
        /// When the original request was applied.
        at: u64,
        /// What it did.
        counts: RefCounts,
    },
}

impl RefReadReply {
    /// Decodes `{'changed'}`, `{'notfound'}`, `{'runs', stamp, runs}` or
    /// `{'replayed', stamp, runs, at, changed, skipped, already}`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for anything else.
    pub(super) fn decode(reply: &[Value]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("unexpected ref read reply".to_owned());
        let tag = reply.first().and_then(text).unwrap_or_default();
        let runs = |v: Option<&Value>| -> Result<Vec<Run>, StoreError> {
            let Some(Value::Array(flat)) = v else {
                return Err(bad());
            };
            flat.chunks(3)
                .map(|r| match r {
                    [list, first, count] => Ok(Run {
                        list: list_id(list)?,
                        first: int(first).ok_or_else(bad)?,
                        count: int(count).ok_or_else(bad)?,
                    }),
                    _ => Err(bad()),
                })
                .collect()
        };
        let num = |i: usize| reply.get(i).and_then(int).ok_or_else(bad);
        Ok(match tag.as_str() {
            "changed" => RefReadReply::Changed,
            "notfound" => RefReadReply::NotFound,
            "runs" => RefReadReply::Runs {
                stamp: num(1)?,
                runs: runs(reply.get(2))?,
            },
            "replayed" => RefReadReply::Replayed {
                runs: runs(reply.get(2))?,
                at: num(3)?,
                counts: RefCounts {
                    changed: num(4)?,
                    skipped: num(5)?,
                    already: num(6)?,
                },
            },
            _ => return Err(bad()),
        })
    }
}

/// The answer of `ref_change.lua`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RefChangeReply {
    /// Applied now.
    Done(RefCounts),
    /// A replay (of a request applied meanwhile).
    Replayed {
        /// When the original request was applied.
        at: u64,
        /// What it did.
        counts: RefCounts,
    },
    /// The jti was used for another request.
    Changed,
    /// The ref bound more entries since they were read: read again.
    Stale,
    /// A list of the ref is damaged; nothing was changed.
    Damaged(ListId),
}

impl RefChangeReply {
    /// Decodes the script's answer.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for anything unexpected.
    pub(super) fn decode(reply: &[Value]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("unexpected ref change reply".to_owned());
        let tag = reply.first().and_then(text).unwrap_or_default();
        let num = |i: usize| reply.get(i).and_then(int).ok_or_else(bad);
        let counts = |at: usize| -> Result<RefCounts, StoreError> {
            Ok(RefCounts {
                changed: num(at)?,
                skipped: num(at + 1)?,
                already: num(at + 2)?,
            })
        };
        Ok(match tag.as_str() {
            "done" => RefChangeReply::Done(counts(1)?),
            "replayed" => RefChangeReply::Replayed {
                at: num(1)?,
                counts: counts(2)?,
            },
            "changed" => RefChangeReply::Changed,
            "stale" => RefChangeReply::Stale,
            "damaged" => RefChangeReply::Damaged(list_id(reply.get(1).unwrap_or(&Value::Nil))?),
            _ => return Err(bad()),
        })
    }
}

/// One listed entry as `list.lua` answers it (its index is for the adapter
/// to compute from the allocation number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawEntry {
    /// Its list.
    pub list: ListId,
    /// Its allocation number in the list.
    pub n: u64,
    /// Its status.
    pub status: Status,
    /// When it was allocated.
    pub created_at: u64,
    /// When its status last changed (`created_at` if never).
    pub updated_at: u64,
    /// Its status expiry.
    pub status_expiry: u64,
    /// The ref it is bound to.
    pub issuance_ref: Option<IssuanceRef>,
}

/// The answer of `list.lua`: the matching count and the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntriesReply {
    /// Matching entries on all pages.
    pub total: u64,
    /// The page, in order.
    pub items: Vec<RawEntry>,
}

impl EntriesReply {
    /// Decodes `{total, (seq, list, n, value, created, updated, expiry,
    /// ref)...}`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for another shape or a bad value.
    pub(super) fn decode(reply: &[Value]) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("listing reply: bad {what}"));
        let Some((total, flat)) = reply.split_first() else {
            return Err(bad("shape"));
        };
        let total = int(total).ok_or_else(|| bad("total"))?;
        if flat.len() % 8 != 0 {
            return Err(bad("shape"));
        }
        let items = flat
            .chunks(8)
            .map(|f| {
                let [_seq, list, n, value, created, updated, expiry, r] = f else {
                    return Err(bad("shape"));
                };
                let num = |v: &Value, what: &str| int(v).ok_or_else(|| bad(what));
                let status = int(value)
                    .and_then(|v| u8::try_from(v).ok())
                    .and_then(Status::from_value)
                    .ok_or_else(|| bad("status"))?;
                let issuance_ref = match text(r).as_deref() {
                    Some("") => None,
                    Some(t) => Some(IssuanceRef::parse(t).map_err(|_| bad("ref"))?),
                    None => return Err(bad("ref")),
                };
                Ok(RawEntry {
                    list: list_id(list)?,
                    n: num(n, "allocation number")?,
                    status,
                    created_at: num(created, "created")?,
                    updated_at: num(updated, "updated")?,
                    status_expiry: num(expiry, "expiry")?,
                    issuance_ref,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(EntriesReply { total, items })
    }
}

/// An event as the outbox keeps it (`events.lua`), its entries still as runs
/// of allocation numbers (the adapter turns them into indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredEvent {
    /// Its id.
    pub id: EventId,
    /// What it reports.
    pub kind: EventKind,
    /// Its lists' format.
    pub format: ListFormat,
    /// When the change was applied (unix s).
    pub at: u64,
    /// Its entries, in allocation order.
    pub runs: Vec<Run>,
    /// The ref of its entries.
    pub issuance_ref: Option<IssuanceRef>,
}

/// A decimal number stored as text (how Lua writes numbers into fields).
fn decimal(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Bytes per run of an event's packed entries (`EV_RUN` in `events.lua`):
/// list id u48, first allocation number u48, count u32.
const EVENT_RUN_BYTES: usize = 16;

impl StoredEvent {
    /// Decodes an event's fields `i`, `k`, `f`, `t`, `e` and `r` (empty:
    /// no ref), as bytes.
    fn decode(
        id: &[u8],
        kind: &[u8],
        format: &[u8],
        at: &[u8],
        entries: &[u8],
        issuance_ref: &[u8],
    ) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("an outbox event: bad {what}"));
        let id: [u8; 16] = id.try_into().map_err(|_| bad("id"))?;
        let kind = decimal(kind)
            .and_then(|k| u8::try_from(k).ok())
            .and_then(EventKind::from_code)
            .ok_or_else(|| bad("kind"))?;
        let format = std::str::from_utf8(format)
            .ok()
            .and_then(|f| f.parse::<ListFormat>().ok())
            .ok_or_else(|| bad("format"))?;
        let at = decimal(at).ok_or_else(|| bad("time"))?;
        if entries.is_empty() || !entries.len().is_multiple_of(EVENT_RUN_BYTES) {
            return Err(bad("entries"));
        }
        let be_uint = |b: &[u8]| b.iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x));
        let runs = entries
            .chunks_exact(EVENT_RUN_BYTES)
            .map(|r| {
                let mut list = [0u8; 6];
                list.copy_from_slice(&r[..6]);
                Run {
                    list: ListId::from_random_bytes(list),
                    first: be_uint(&r[6..12]),
                    count: be_uint(&r[12..16]),
                }
            })
            .collect();
        let issuance_ref = match issuance_ref {
            [] => None,
            r => Some(
                std::str::from_utf8(r)
                    .ok()
                    .and_then(|t| IssuanceRef::parse(t).ok())
                    .ok_or_else(|| bad("ref"))?,
            ),
        };
        Ok(StoredEvent {
            id: EventId::from_bytes(id),
            kind,
            format,
            at,
            runs,
            issuance_ref,
        })
    }
}

/// An event `take.lua` handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TakenEvent {
    /// Its stream id (the lease's handle).
    pub handle: String,
    /// The attempt this is, from 1.
    pub attempt: u32,
    /// The event.
    pub event: StoredEvent,
}

impl TakenEvent {
    /// Decodes `take.lua`'s answer: 8 values per event (stream id,
    /// attempt, id, kind, format, at, entries, ref).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for another shape or a bad value.
    pub(super) fn decode_all(reply: &[Value]) -> Result<Vec<Self>, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("take reply: bad {what}"));
        if !reply.len().is_multiple_of(8) {
            return Err(bad("shape"));
        }
        reply
            .chunks_exact(8)
            .map(|f| {
                let [handle, attempt, fields @ ..] = f else {
                    return Err(bad("shape"));
                };
                let handle = text(handle).ok_or_else(|| bad("stream id"))?;
                let attempt = int(attempt)
                    .and_then(|a| u32::try_from(a).ok())
                    .ok_or_else(|| bad("attempt"))?;
                let mut raw: [&[u8]; 6] = [&[]; 6];
                for (slot, v) in raw.iter_mut().zip(fields) {
                    *slot = match v {
                        Value::BulkString(b) => b,
                        _ => return Err(bad("field")),
                    };
                }
                let [i, k, fmt, t, e, r] = raw;
                Ok(TakenEvent {
                    handle,
                    attempt,
                    event: StoredEvent::decode(i, k, fmt, t, e, r)?,
                })
            })
            .collect()
    }
}

/// A dead letter as the outbox keeps it (`evx`, see `events.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredDeadLetter {
    /// The event.
    pub event: StoredEvent,
    /// How many attempts were made.
    pub attempts: u32,
    /// When it died (unix ms).
    pub dead_at: u64,
    /// The last attempt's error.
    pub error: String,
}

impl StoredDeadLetter {
    /// Decodes the dead letter stored under event id `id`: its values (kind,
    /// format, at, entries, ref, attempts, dead_at, error), each a u32
    /// length then its bytes (`ev_dead_pack`).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for anything else.
    pub(super) fn decode(id: &[u8], blob: &[u8]) -> Result<Self, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("a dead letter: bad {what}"));
        let mut values: Vec<&[u8]> = Vec::with_capacity(8);
        let mut rest = blob;
        while !rest.is_empty() {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(|| bad("shape"))?;
            let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| bad("shape"))?;
            if tail.len() < len {
                return Err(bad("shape"));
            }
            let (value, tail) = tail.split_at(len);
            values.push(value);
            rest = tail;
        }
        let [k, f, t, e, r, attempts, dead_at, error] = values[..] else {
            return Err(bad("shape"));
        };
        Ok(StoredDeadLetter {
            event: StoredEvent::decode(id, k, f, t, e, r)?,
            attempts: decimal(attempts)
                .and_then(|a| u32::try_from(a).ok())
                .ok_or_else(|| bad("attempts"))?,
            dead_at: decimal(dead_at).ok_or_else(|| bad("time"))?,
            error: String::from_utf8_lossy(error).into_owned(),
        })
    }
}

/// Decodes `redeliver.lua`'s answer: the event ids redelivered.
///
/// # Errors
/// [`StoreError::Corrupt`] for anything but 16-byte ids.
pub(super) fn event_ids(reply: &[Value]) -> Result<Vec<EventId>, StoreError> {
    reply
        .iter()
        .map(|v| match v {
            Value::BulkString(b) => <[u8; 16]>::try_from(b.as_slice())
                .ok()
                .map(EventId::from_bytes),
            _ => None,
        })
        .map(|id| id.ok_or_else(|| StoreError::Corrupt("redeliver reply: bad id".to_owned())))
        .collect()
}

/// A list's mutable state, as `read_list` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ListState {
    /// The counter `n`: allocation numbers handed out.
    pub allocated: u64,
    /// When the list was opened.
    pub created_at: u64,
    /// The latest status expiry of its entries.
    pub retire_after: u64,
    /// Bumped once per change.
    pub version: u64,
}

/// A decoded reply that may name no list.
pub(super) enum Found<T> {
    /// The list's metadata hash does not exist.
    Absent,
    /// It exists; its fields, decoded only when asked for, so that a list
    /// whose bytes are lost is reported damaged before its fields are read.
    Present(T),
}

/// The fields of a list's metadata hash `read_list` asks for, undecoded.
pub(super) struct StateFields<'a> {
    list: &'a ListId,
    n: &'a Value,
    created: &'a Value,
    retire: &'a Value,
    v: &'a Value,
}

impl ListState {
    /// The fields [`ListState::from_meta`] decodes, in its order.
    pub const META_FIELDS: [&'static str; 5] = ["owner", "n", "created", "retire", "v"];

    /// Splits `HMGET <meta> owner n created retire v` of `list`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a reply of another shape.
    pub(super) fn from_meta<'a>(
        list: &'a ListId,
        fields: &'a [Value],
    ) -> Result<Found<StateFields<'a>>, StoreError> {
        let [owner, n, created, retire, v] = fields else {
            return Err(StoreError::Corrupt("unexpected HMGET reply".to_owned()));
        };
        if matches!(owner, Value::Nil) {
            return Ok(Found::Absent);
        }
        Ok(Found::Present(StateFields {
            list,
            n,
            created,
            retire,
            v,
        }))
    }
}

impl StateFields<'_> {
    /// Decodes the fields.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a missing or non-numeric field.
    pub(super) fn decode(&self) -> Result<ListState, StoreError> {
        let list = self.list;
        Ok(ListState {
            allocated: int(self.n).ok_or_else(|| corrupt_field(list, "n"))?,
            created_at: int(self.created).ok_or_else(|| corrupt_field(list, "created"))?,
            retire_after: int(self.retire).ok_or_else(|| corrupt_field(list, "retire"))?,
            version: int(self.v).ok_or_else(|| corrupt_field(list, "v"))?,
        })
    }
}

/// Splits `HGET <meta> v` of `list`: absent for a list that does not exist.
pub(super) fn version(v: &Value) -> Found<&Value> {
    match v {
        Value::Nil => Found::Absent,
        v => Found::Present(v),
    }
}

/// Decodes a list's version field.
///
/// # Errors
/// [`StoreError::Corrupt`] for a non-numeric version.
pub(super) fn decode_version(list: &ListId, v: &Value) -> Result<u64, StoreError> {
    int(v).ok_or_else(|| corrupt_field(list, "v"))
}

/// The owner entry of `list`, as a client id.
///
/// # Errors
/// [`StoreError::Corrupt`] for an owner that is not a client id.
/// Decodes `mark.lua`'s answer: true for `{'marked'}`, false for
/// `{'changed'}`.
///
/// # Errors
/// [`StoreError::Corrupt`] for anything else.
pub(super) fn marked(reply: &[Value]) -> Result<bool, StoreError> {
    match reply.first().and_then(text).as_deref() {
        Some("marked") => Ok(true),
        Some("changed") => Ok(false),
        other => Err(StoreError::Corrupt(format!(
            "unexpected mark reply {other:?}"
        ))),
    }
}

/// The error for a missing or malformed metadata field.
pub(super) fn corrupt_field(list: &ListId, field: &str) -> StoreError {
    StoreError::Corrupt(format!("list {list}: bad or missing field {field}"))
}

/// A reply element as text (`None` for nil or non-text).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

/// A reply element as a non-negative integer (`None` for nil or anything
/// else).
fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn list() -> ListId {
        ListId::parse("0123456789AB").unwrap()
    }

    #[test]
    fn reply_values_convert_or_refuse() {
        assert_eq!(int(&Value::Int(7)), Some(7));
        assert_eq!(int(&Value::Int(-1)), None);
        assert_eq!(int(&Value::BulkString(b"42".to_vec())), Some(42));
        assert_eq!(int(&Value::BulkString(b"4x".to_vec())), None);
        assert_eq!(int(&Value::Nil), None);
        assert_eq!(
            text(&Value::BulkString(b"ok".to_vec())).as_deref(),
            Some("ok")
        );
        assert_eq!(text(&Value::BulkString(vec![0xff])), None);
        assert_eq!(text(&Value::Nil), None);
    }

    #[test]
    fn allocation_replies() {
        let facts = StoredFacts {
            format: ListFormat::Token,
            bits: Bits::Two,
            capacity: 100,
            key: AllocatorKey::from_bytes([7; 32]),
            chunk_bytes: Some(25),
            base: Some(40),
        };
        let fact_values = || {
            vec![
                bulk("0123456789AB"),
                Value::BulkString(vec![7; 32]),
                bulk("100"),
                bulk(ListFormat::Token.name()),
                bulk("2"),
                bulk("25"),
                bulk("40"),
            ]
        };
        let answer = |tag: &str| {
            Value::Array(vec![
                bulk(tag),
                bulk("0123456789AB"),
                Value::Int(5),
                Value::Int(2),
            ])
        };
        let batch = |answers: Vec<Value>, opened: i64, facts: Vec<Value>| {
            vec![
                Value::Array(answers),
                Value::Int(opened),
                Value::Array(facts),
            ]
        };
        let grant = Grant {
            list: list(),
            first: 5,
            count: 2,
            facts: Some(facts),
        };
        let one = |grant: &Grant| Grants {
            first: grant.clone(),
            next: None,
        };
        let reply = AllocateBatch::decode(&batch(
            vec![
                answer("allocated"),
                answer("replayed"),
                Value::Array(vec![bulk("changed")]),
                Value::Array(vec![bulk("open")]),
                Value::Array(vec![bulk("pending")]),
            ],
            1,
            fact_values(),
        ))
        .unwrap();
        assert!(reply.opened);
        assert_eq!(
            reply.replies,
            vec![
                AllocateReply::Allocated(one(&grant)),
                AllocateReply::Replayed(one(&grant)),
                AllocateReply::Changed,
                AllocateReply::Open,
                AllocateReply::Pending,
            ]
        );
        // Facts left out for the list the caller knows.
        let reply = AllocateBatch::decode(&batch(vec![answer("allocated")], 0, vec![])).unwrap();
        assert!(!reply.opened);
        assert_eq!(
            reply.replies,
            vec![AllocateReply::Allocated(one(&Grant {
                facts: None,
                ..grant.clone()
            }))]
        );
        // A request that spilled into a new list: two runs, each with the
        // facts of its list when sent.
        let other = ListId::parse("BA9876543210").unwrap();
        let spilled = Value::Array(vec![
            bulk("allocated"),
            bulk("0123456789AB"),
            Value::Int(5),
            Value::Int(2),
            bulk("BA9876543210"),
            Value::Int(0),
            Value::Int(3),
        ]);
        let reply = AllocateBatch::decode(&batch(vec![spilled], 1, fact_values())).unwrap();
        assert_eq!(
            reply.replies,
            vec![AllocateReply::Allocated(Grants {
                first: grant.clone(),
                next: Some(Grant {
                    list: other,
                    first: 0,
                    count: 3,
                    facts: None,
                }),
            })]
        );
        for (tag, want) in [
            ("collision", AllocateReply::Collision),
            ("open", AllocateReply::Open),
        ] {
            let r = AllocateBatch::decode(&batch(vec![Value::Array(vec![bulk(tag)])], 0, vec![]));
            assert_eq!(r.unwrap().replies, vec![want]);
        }
        let r = AllocateBatch::decode(&batch(
            vec![Value::Array(vec![bulk("damaged"), bulk("0123456789AB")])],
            0,
            vec![],
        ));
        assert_eq!(r.unwrap().replies, vec![AllocateReply::Damaged(list())]);
        let mut bad_fmt = fact_values();
        bad_fmt[3] = bulk("nope");
        let mut bad_chunk = fact_values();
        bad_chunk[5] = bulk("0");
        let mut bad_base = fact_values();
        bad_base[6] = bulk("-1");
        let mut unchunked = fact_values();
        unchunked[5] = Value::Nil;
        unchunked[6] = Value::Nil;
        let r = AllocateBatch::decode(&batch(vec![answer("replayed")], 0, unchunked)).unwrap();
        assert!(matches!(
            &r.replies[0],
            AllocateReply::Replayed(Grants {
                first: Grant {
                    facts: Some(StoredFacts {
                        chunk_bytes: None,
                        base: None,
                        ..
                    }),
                    ..
                },
                next: None,
            })
        ));
        let five = Value::Array(vec![
            bulk("allocated"),
            bulk("0123456789AB"),
            Value::Int(5),
            Value::Int(2),
            bulk("BA9876543210"),
        ]);
        let bad_first = Value::Array(vec![
            bulk("allocated"),
            bulk("0123456789AB"),
            Value::Int(-1),
            Value::Int(2),
        ]);
        for bad in [
            vec![],
            batch(vec![Value::Array(vec![bulk("allocated")])], 0, vec![]),
            batch(vec![Value::Array(vec![bulk("surprise")])], 0, vec![]),
            batch(
                vec![Value::Array(vec![bulk("damaged"), bulk("not a list")])],
                0,
                vec![],
            ),
            batch(vec![answer("allocated")], 0, bad_fmt),
            batch(vec![answer("allocated")], 0, bad_chunk),
            batch(vec![answer("allocated")], 0, bad_base),
            batch(vec![bad_first], 0, vec![]),
            batch(vec![five], 0, vec![]),
        ] {
            assert!(
                matches!(AllocateBatch::decode(&bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn status_replies() {
        let l = list();
        for (reply, want) in [
            (
                vec![bulk("done"), Value::Int(0), Value::Int(3)],
                SetStatusReply::Done,
            ),
            (
                vec![bulk("already"), Value::Int(1), bulk("77")],
                SetStatusReply::Already { at: Some(77) },
            ),
            (
                vec![bulk("already"), Value::Int(0)],
                SetStatusReply::Already { at: None },
            ),
            (
                vec![bulk("replayed"), bulk("d"), bulk("9")],
                SetStatusReply::ReplayedDone { at: 9 },
            ),
            (
                vec![bulk("replayed"), bulk("a"), bulk("")],
                SetStatusReply::ReplayedAlready { at: None },
            ),
            (vec![bulk("changed")], SetStatusReply::Changed),
            (
                vec![bulk("notallowed"), Value::Int(1)],
                SetStatusReply::NotAllowed {
                    current: Status::Invalid,
                },
            ),
            (vec![bulk("never")], SetStatusReply::NeverIssued),
            (vec![bulk("toowide")], SetStatusReply::TooWide),
            (vec![bulk("notyours")], SetStatusReply::NotYours),
            (vec![bulk("notfound")], SetStatusReply::NotFound),
            (vec![bulk("damaged")], SetStatusReply::Damaged),
        ] {
            assert_eq!(
                SetStatusReply::decode(&l, &reply).unwrap(),
                want,
                "{reply:?}"
            );
        }
        for bad in [
            vec![],
            vec![bulk("surprise")],
            vec![bulk("notallowed"), Value::Int(9)],
            vec![bulk("already"), Value::Nil],
            vec![bulk("replayed"), bulk("d"), bulk("")],
            vec![bulk("replayed"), bulk("x"), bulk("1")],
        ] {
            assert!(
                matches!(
                    SetStatusReply::decode(&l, &bad),
                    Err(StoreError::Corrupt(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn claim_and_ref_replies() {
        assert_eq!(
            ClaimReply::decode(&[bulk("fresh")]).unwrap(),
            ClaimReply::Fresh
        );
        assert_eq!(
            ClaimReply::decode(&[bulk("used")]).unwrap(),
            ClaimReply::Used
        );
        assert!(ClaimReply::decode(&[bulk("maybe")]).is_err());
        assert!(ClaimReply::decode(&[]).is_err());

        let runs = Value::Array(vec![
            bulk("0123456789AB"),
            Value::Int(3),
            Value::Int(2),
            bulk("BA9876543210"),
            Value::Int(0),
            Value::Int(1),
        ]);
        let want_runs = vec![
            Run {
                list: list(),
                first: 3,
                count: 2,
            },
            Run {
                list: ListId::parse("BA9876543210").unwrap(),
                first: 0,
                count: 1,
            },
        ];
        assert_eq!(
            RefReadReply::decode(&[bulk("runs"), Value::Int(4), runs.clone()]).unwrap(),
            RefReadReply::Runs {
                stamp: 4,
                runs: want_runs.clone()
            }
        );
        let counts = RefCounts {
            changed: 1,
            skipped: 2,
            already: 3,
        };
        assert_eq!(
            RefReadReply::decode(&[
                bulk("replayed"),
                Value::Int(4),
                runs.clone(),
                Value::Int(99),
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
            ])
            .unwrap(),
            RefReadReply::Replayed {
                runs: want_runs,
                at: 99,
                counts
            }
        );
        assert_eq!(
            RefReadReply::decode(&[bulk("notfound")]).unwrap(),
            RefReadReply::NotFound
        );
        assert_eq!(
            RefReadReply::decode(&[bulk("changed")]).unwrap(),
            RefReadReply::Changed
        );
        for bad in [
            vec![],
            vec![bulk("runs"), Value::Int(4)],
            vec![bulk("runs"), Value::Int(4), Value::Array(vec![bulk("x")])],
            vec![bulk("runs"), Value::Nil, runs.clone()],
            vec![bulk("replayed"), Value::Int(4), runs],
        ] {
            assert!(RefReadReply::decode(&bad).is_err(), "{bad:?}");
        }

        let n = Value::Int;
        assert_eq!(
            RefChangeReply::decode(&[bulk("done"), n(1), n(2), n(3)]).unwrap(),
            RefChangeReply::Done(counts)
        );
        assert_eq!(
            RefChangeReply::decode(&[bulk("replayed"), n(9), n(1), n(2), n(3)]).unwrap(),
            RefChangeReply::Replayed { at: 9, counts }
        );
        assert_eq!(
            RefChangeReply::decode(&[bulk("stale")]).unwrap(),
            RefChangeReply::Stale
        );
        assert_eq!(
            RefChangeReply::decode(&[bulk("changed")]).unwrap(),
            RefChangeReply::Changed
        );
        assert_eq!(
            RefChangeReply::decode(&[bulk("damaged"), bulk("0123456789AB")]).unwrap(),
            RefChangeReply::Damaged(list())
        );
        for bad in [
            vec![bulk("done"), n(1)],
            vec![bulk("damaged")],
            vec![bulk("later")],
        ] {
            assert!(RefChangeReply::decode(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listing_replies() {
        let n = Value::Int;
        let item = |value: i64, r: &str| {
            vec![
                n(7),
                bulk("0123456789AB"),
                n(3),
                n(value),
                n(100),
                n(150),
                n(900),
                bulk(r),
            ]
        };
        let mut reply = vec![n(12)];
        reply.extend(item(1, "order 7"));
        reply.extend(item(0, ""));
        let got = EntriesReply::decode(&reply).unwrap();
        assert_eq!(got.total, 12);
        assert_eq!(
            got.items,
            vec![
                RawEntry {
                    list: list(),
                    n: 3,
                    status: Status::Invalid,
                    created_at: 100,
                    updated_at: 150,
                    status_expiry: 900,
                    issuance_ref: Some(IssuanceRef::parse("order 7").unwrap()),
                },
                RawEntry {
                    list: list(),
                    n: 3,
                    status: Status::Valid,
                    created_at: 100,
                    updated_at: 150,
                    status_expiry: 900,
                    issuance_ref: None,
                },
            ]
        );
        assert_eq!(EntriesReply::decode(&[n(0)]).unwrap().items, vec![]);
        let mut short = vec![n(1)];
        short.extend(item(0, "").into_iter().take(7));
        let mut bad_status = vec![n(1)];
        bad_status.extend(item(9, ""));
        let mut bad_ref = vec![n(1)];
        bad_ref.extend(item(0, "tab\there"));
        for bad in [vec![], vec![bulk("x")], short, bad_status, bad_ref] {
            assert!(EntriesReply::decode(&bad).is_err(), "{bad:?}");
        }
    }

    /// Events as `take.lua` hands them out and dead letters as
    /// `ev_dead_pack` stores them decode into the stored event; anything
    /// malformed is Corrupt.
    #[test]
    fn outbox_replies() {
        use crate::domain::events::EventSeed;
        let id = EventSeed { ms: 5, nonce: 6 }.id(7);
        let mut runs = Vec::new();
        runs.extend_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB]);
        runs.extend_from_slice(&[0, 0, 0, 0, 1, 0]);
        runs.extend_from_slice(&2u32.to_be_bytes());
        let bytes = |b: &[u8]| Value::BulkString(b.to_vec());
        let taken = [
            bulk("1-0"),
            Value::Int(2),
            bytes(&id.to_bytes()),
            bulk("4"),
            bulk("token"),
            bulk("1700000000"),
            bytes(&runs),
            bulk("order 1"),
        ];
        let event = StoredEvent {
            id,
            kind: EventKind::EntriesIssued,
            format: ListFormat::Token,
            at: 1_700_000_000,
            runs: vec![Run {
                list: list(),
                first: 256,
                count: 2,
            }],
            issuance_ref: Some(IssuanceRef::parse("order 1").unwrap()),
        };
        assert_eq!(
            TakenEvent::decode_all(&taken).unwrap(),
            vec![TakenEvent {
                handle: "1-0".to_owned(),
                attempt: 2,
                event: event.clone(),
            }]
        );
        assert!(TakenEvent::decode_all(&[]).unwrap().is_empty());
        let corrupt =
            |r: Result<Vec<TakenEvent>, StoreError>| matches!(r, Err(StoreError::Corrupt(_)));
        assert!(corrupt(TakenEvent::decode_all(&taken[..7])));
        for (at, bad) in [
            (2, bulk("short")),
            (3, bulk("9")),
            (4, bulk("jwt")),
            (5, bulk("-1")),
            (6, bytes(&runs[..15])),
            (6, bytes(&[])),
        ] {
            let mut t = taken.clone();
            t[at] = bad;
            assert!(corrupt(TakenEvent::decode_all(&t)), "{at}");
        }
        let pack = |values: &[&[u8]]| -> Vec<u8> {
            values
                .iter()
                .flat_map(|v| {
                    let mut out = (v.len() as u32).to_be_bytes().to_vec();
                    out.extend_from_slice(v);
                    out
                })
                .collect()
        };
        let letter = pack(&[
            b"4",
            b"token",
            b"1700000000",
            &runs,
            b"order 1",
            b"3",
            b"1700000000123",
            b"HTTP 500",
        ]);
        assert_eq!(
            StoredDeadLetter::decode(&id.to_bytes(), &letter).unwrap(),
            StoredDeadLetter {
                event,
                attempts: 3,
                dead_at: 1_700_000_000_123,
                error: "HTTP 500".to_owned(),
            }
        );
        for bad in [
            &letter[..letter.len() - 1],
            &letter[..4],
            &pack(&[b"4"])[..],
        ] {
            assert!(matches!(
                StoredDeadLetter::decode(&id.to_bytes(), bad),
                Err(StoreError::Corrupt(_))
            ));
        }
        assert_eq!(event_ids(&[bytes(&id.to_bytes())]).unwrap(), vec![id]);
        assert!(event_ids(&[bulk("x")]).is_err());
    }

    #[test]
    fn metadata_fields() {
        let l = list();
        let c = ClientId::parse("acme").unwrap();
        let meta = |owner: Value| {
            vec![
                owner,
                bulk(ListFormat::Bitstring.name()),
                bulk("1"),
                bulk("64"),
                Value::BulkString(vec![1; 32]),
                bulk("8"),
                bulk("1000"),
            ]
        };
        assert_eq!(
            StoredFacts::from_meta(&l, &c, &meta(bulk("acme"))).unwrap(),
            Some(StoredFacts {
                format: ListFormat::Bitstring,
                bits: Bits::One,
                capacity: 64,
                key: AllocatorKey::from_bytes([1; 32]),
                chunk_bytes: Some(8),
                base: Some(1000),
            })
        );
        // A list opened before entry spaces has no base.
        let mut untracked = meta(bulk("acme"));
        untracked[6] = Value::Nil;
        let facts = StoredFacts::from_meta(&l, &c, &untracked).unwrap().unwrap();
        assert_eq!(facts.base, None);
        assert_eq!(
            StoredFacts::from_meta(&l, &c, &meta(Value::Nil)).unwrap(),
            None
        );
        assert!(StoredFacts::from_meta(&l, &c, &meta(bulk("other"))).is_err());
        assert!(StoredFacts::from_meta(&l, &c, &[]).is_err());

        let state = [bulk("acme"), bulk("3"), bulk("10"), bulk("20"), bulk("4")];
        let Ok(Found::Present(fields)) = ListState::from_meta(&l, &state) else {
            panic!("present");
        };
        assert_eq!(
            fields.decode().unwrap(),
            ListState {
                allocated: 3,
                created_at: 10,
                retire_after: 20,
                version: 4
            }
        );
        let absent = [Value::Nil, Value::Nil, Value::Nil, Value::Nil, Value::Nil];
        assert!(matches!(
            ListState::from_meta(&l, &absent),
            Ok(Found::Absent)
        ));
        let bad = [bulk("acme"), bulk("x"), bulk("10"), bulk("20"), bulk("4")];
        let Ok(Found::Present(fields)) = ListState::from_meta(&l, &bad) else {
            panic!("present");
        };
        assert!(fields.decode().is_err());
        assert!(matches!(version(&Value::Nil), Found::Absent));
        assert_eq!(decode_version(&l, &bulk("5")).unwrap(), 5);
        assert!(decode_version(&l, &bulk("-")).is_err());
        assert!(marked(&[bulk("marked")]).unwrap());
        assert!(!marked(&[bulk("changed")]).unwrap());
        assert!(marked(&[bulk("fresh")]).is_err());
    }
}
