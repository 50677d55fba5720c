//! The binary form of the embedded store's records: a list's metadata, a
//! (client, jti) idempotency record, and an issuance record of the entry
//! log.
//!
//! Hand-written rather than serde: the records are small, fixed and hot (one
//! is decoded and re-encoded by every allocation), and a leading format byte
//! lets a later version of the service read files written by this one.
//! Decoding never panics: short or unknown input is [`StoreError::Corrupt`].

use crate::domain::{AllocatorKey, Bits, ClientId, IssuanceRef, ListFormat, ListId};
use crate::ports::{ListMeta, StoreError, UnixSeconds};

/// Format byte of [`ListRecord`] encodings without a first sequence number:
/// lists opened before entries were tracked (and such lists rewritten since,
/// which keep this encoding so that they stay what they are).
const LIST_V1: u8 = 1;
/// Format byte of [`ListRecord`] encodings with a first sequence number.
const LIST_V2: u8 = 2;
/// Format byte of [`LogRecord`] encodings.
const LOG_V1: u8 = 1;
/// Format byte of [`IdemRecord`] encodings written before change requests
/// were recorded (read only).
const IDEM_V1: u8 = 1;
/// Format byte of [`IdemRecord`] encodings.
const IDEM_V2: u8 = 2;

/// Everything the store keeps about a list apart from its bytes and the
/// sparse status times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListRecord {
    pub id: ListId,
    pub client: ClientId,
    pub format: ListFormat,
    pub bits: Bits,
    pub capacity: u64,
    /// The allocation counter: numbers `0..counter` have been handed out.
    pub counter: u64,
    pub created_at: UnixSeconds,
    pub retire_after: UnixSeconds,
    /// Bumped once per status change.
    pub version: u64,
    /// The list's secret allocator key.
    pub key: AllocatorKey,
    /// The sequence number of the list's first entry within its client and
    /// format (its entries are `base .. base + counter`); `None` for a list
    /// opened before entries were tracked ("untracked": read, published and
    /// changed as before, never allocated from again, its entries not
    /// listed).
    pub base: Option<u64>,
}

impl ListRecord {
    pub fn meta(&self) -> ListMeta {
        ListMeta {
            id: self.id,
            client: self.client.clone(),
            format: self.format,
            bits: self.bits,
            capacity: self.capacity,
            allocated: self.counter,
            created_at: self.created_at,
            retire_after: self.retire_after,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let client = self.client.as_str().as_bytes();
        let mut out = Vec::with_capacity(4 + 6 * 8 + 32 + 1 + client.len());
        out.push(if self.base.is_some() {
            LIST_V2
        } else {
            LIST_V1
        });
        out.push(format_byte(self.format));
        out.push(self.bits.get());
        for n in [
            self.capacity,
            self.counter,
            self.created_at,
            self.retire_after,
            self.version,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        if let Some(base) = self.base {
            out.extend_from_slice(&base.to_le_bytes());
        }
        out.extend_from_slice(self.key.as_bytes());
        // ClientId is at most 128 bytes, so its length fits one byte.
        out.push(u8::try_from(client.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(client);
        out
    }

    pub fn decode(id: ListId, bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "list record");
        let tracked = match r.u8()? {
            LIST_V1 => false,
            LIST_V2 => true,
            _ => return Err(r.corrupt("unknown format")),
        };
        let format = parse_format(r.u8()?).ok_or_else(|| r.corrupt("bad format"))?;
        let bits = Bits::try_from(r.u8()?).map_err(|_| r.corrupt("bad bits"))?;
        let capacity = r.u64()?;
        let counter = r.u64()?;
        let created_at = r.u64()?;
        let retire_after = r.u64()?;
        let version = r.u64()?;
        let base = if tracked { Some(r.u64()?) } else { None };
        let key = AllocatorKey::from_bytes(r.array::<32>()?);
        let len = usize::from(r.u8()?);
        let client = std::str::from_utf8(r.take(len)?)
            .ok()
            .and_then(|s| ClientId::parse(s).ok())
            .ok_or_else(|| r.corrupt("bad client id"))?;
        r.end()?;
        Ok(ListRecord {
            id,
            client,
            format,
            bits,
            capacity,
            counter,
            created_at,
            retire_after,
            version,
            key,
            base,
        })
    }
}

/// A (client, jti) idempotency record: the first request's digest, until
/// when the record counts, and the answer it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IdemRecord {
    pub digest: [u8; 32],
    /// Exclusive end of the record's life (the request's `keep_until`).
    pub expires_at: UnixSeconds,
    pub answer: Recorded,
}

/// The answer an idempotency record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// An `/issue`: where its allocation landed (list + first allocation
    /// number + count; the indexes are recomputed with the list's allocator),
    /// and when it spilled into a new list, that list and how many it took
    /// there (from its allocation number 0).
    Issue {
        list: ListId,
        format: ListFormat,
        first: u64,
        count: u32,
        next: Option<(ListId, u32)>,
    },
    /// A status change that was applied (`done`) or found the entry already
    /// in that status, and the time it answered with.
    Change { done: bool, at: Option<UnixSeconds> },
    /// A change by ref and its report (the lists are recomputed on a
    /// replay: the ref's entries never leave their lists).
    RefChange {
        at: UnixSeconds,
        changed: u64,
        skipped: u64,
        already: u64,
    },
    /// A single-use jti (a listing request): nothing to answer but "used".
    Claim,
}

/// Kind bytes of [`IdemRecord`] encodings. An issue that stayed in one list
/// keeps the encoding of `KIND_ISSUE` it always had; the other kinds were
/// added with entry tracking.
const KIND_ISSUE: u8 = 0;
const KIND_CHANGE: u8 = 1;
const KIND_ISSUE_SPILLED: u8 = 2;
const KIND_REF_CHANGE: u8 = 3;
const KIND_CLAIM: u8 = 4;

impl IdemRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 32 + 8 + 1 + 8 + 4 + 12 + 4 + 12);
        out.push(IDEM_V2);
        out.push(match self.answer {
            Recorded::Issue { next: None, .. } => KIND_ISSUE,
            Recorded::Issue { next: Some(_), .. } => KIND_ISSUE_SPILLED,
            Recorded::Change { .. } => KIND_CHANGE,
            Recorded::RefChange { .. } => KIND_REF_CHANGE,
            Recorded::Claim => KIND_CLAIM,
        });
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.expires_at.to_le_bytes());
        match self.answer {
            Recorded::Issue {
                list,
                format,
                first,
                count,
                next,
            } => {
                out.push(format_byte(format));
                out.extend_from_slice(&first.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(list.as_str().as_bytes());
                if let Some((list, count)) = next {
                    out.extend_from_slice(&count.to_le_bytes());
                    out.extend_from_slice(list.as_str().as_bytes());
                }
            }
            Recorded::Change { done, at } => {
                out.push(u8::from(done));
                out.push(u8::from(at.is_some()));
                out.extend_from_slice(&at.unwrap_or(0).to_le_bytes());
            }
            Recorded::RefChange {
                at,
                changed,
                skipped,
                already,
            } => {
                for n in [at, changed, skipped, already] {
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
            Recorded::Claim => {}
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "idempotency record");
        match r.u8()? {
            IDEM_V1 => return Self::decode_v1(r),
            IDEM_V2 => {}
            _ => return Err(r.corrupt("unknown format")),
        }
        let kind = r.u8()?;
        let digest = r.array::<32>()?;
        let expires_at = r.u64()?;
        let answer = match kind {
            KIND_ISSUE | KIND_ISSUE_SPILLED => {
                let format = parse_format(r.u8()?).ok_or_else(|| r.corrupt("bad format"))?;
                let first = r.u64()?;
                let count = u32::from_le_bytes(r.array::<4>()?);
                let list = read_list_id(&mut r)?;
                let next = if kind == KIND_ISSUE_SPILLED {
                    let count = u32::from_le_bytes(r.array::<4>()?);
                    Some((read_list_id(&mut r)?, count))
                } else {
                    None
                };
                Recorded::Issue {
                    list,
                    format,
                    first,
                    count,
                    next,
                }
            }
            KIND_CHANGE => {
                let done = read_bool(&mut r)?;
                let has_at = read_bool(&mut r)?;
                let at = r.u64()?;
                Recorded::Change {
                    done,
                    at: has_at.then_some(at),
                }
            }
            KIND_REF_CHANGE => Recorded::RefChange {
                at: r.u64()?,
                changed: r.u64()?,
                skipped: r.u64()?,
                already: r.u64()?,
            },
            KIND_CLAIM => Recorded::Claim,
            _ => return Err(r.corrupt("unknown kind")),
        };
        r.end()?;
        Ok(IdemRecord {
            digest,
            expires_at,
            answer,
        })
    }

    /// Records written before change requests were recorded, when an issue
    /// record also had an in-flight state and a lease: both are ignored now
    /// (the allocation it points at stands either way).
    fn decode_v1(mut r: Reader<'_>) -> Result<Self, StoreError> {
        read_bool(&mut r)?;
        let format = parse_format(r.u8()?).ok_or_else(|| r.corrupt("bad format"))?;
        let digest = r.array::<32>()?;
        let _lease_until = r.u64()?;
        let expires_at = r.u64()?;
        let first = r.u64()?;
        let count = u32::from_le_bytes(r.array::<4>()?);
        let list = read_list_id(&mut r)?;
        r.end()?;
        Ok(IdemRecord {
            digest,
            expires_at,
            answer: Recorded::Issue {
                list,
                format,
                first,
                count,
                next: None,
            },
        })
    }
}

/// One issuance (one `/issue`) in a space's entry log, keyed by the
/// sequence number of its first entry: its entries are `first .. first +
/// count` of the space, in allocation order (they may span two lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogRecord {
    /// How many entries it allocated.
    pub count: u32,
    /// Its `createdAt`: never earlier than the space's previous record's.
    pub created: UnixSeconds,
    /// The `statusExpiry` it was issued with.
    pub expiry: UnixSeconds,
    /// The ref its entries are bound to.
    pub issuance_ref: Option<IssuanceRef>,
}

impl LogRecord {
    pub fn encode(&self) -> Vec<u8> {
        let text_len = self.issuance_ref.as_ref().map_or(0, |r| r.as_str().len());
        let mut out = Vec::with_capacity(1 + 4 + 8 + 8 + 1 + text_len);
        out.push(LOG_V1);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.created.to_le_bytes());
        out.extend_from_slice(&self.expiry.to_le_bytes());
        put_ref(&mut out, self.issuance_ref.as_ref());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "issuance record");
        if r.u8()? != LOG_V1 {
            return Err(r.corrupt("unknown format"));
        }
        let count = u32::from_le_bytes(r.array::<4>()?);
        let created = r.u64()?;
        let expiry = r.u64()?;
        let issuance_ref = r.issuance_ref()?;
        r.end()?;
        if count == 0 {
            return Err(r.corrupt("no entries"));
        }
        Ok(LogRecord {
            count,
            created,
            expiry,
            issuance_ref,
        })
    }
}

fn read_bool(r: &mut Reader<'_>) -> Result<bool, StoreError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(r.corrupt("bad flag")),
    }
}

pub(super) fn read_list_id(r: &mut Reader<'_>) -> Result<ListId, StoreError> {
    std::str::from_utf8(r.take(12)?)
        .ok()
        .and_then(|s| ListId::parse(s).ok())
        .ok_or_else(|| r.corrupt("bad list id"))
}

/// The key under which a client's current list of a format is kept.
pub(super) fn format_byte(format: ListFormat) -> u8 {
    match format {
        ListFormat::Token => 0,
        ListFormat::Bitstring => 1,
    }
}

pub(super) fn parse_format(b: u8) -> Option<ListFormat> {
    match b {
        0 => Some(ListFormat::Token),
        1 => Some(ListFormat::Bitstring),
        _ => None,
    }
}

/// Appends an optional ref as [`Reader::issuance_ref`] reads it: its length
/// in one byte (a ref is 1 to 128 bytes; 0 means none), then its text.
pub(super) fn put_ref(out: &mut Vec<u8>, issuance_ref: Option<&IssuanceRef>) {
    let text = issuance_ref.map_or("", IssuanceRef::as_str);
    out.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(text.as_bytes());
}

/// A cursor over stored bytes that turns every short read into
/// [`StoreError::Corrupt`].
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    pub(super) fn corrupt(&self, why: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: {why}", self.what))
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(self.corrupt("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array::<8>()?))
    }

    /// An optional ref as [`put_ref`] wrote it.
    pub(super) fn issuance_ref(&mut self) -> Result<Option<IssuanceRef>, StoreError> {
        match usize::from(self.u8()?) {
            0 => Ok(None),
            len => std::str::from_utf8(self.take(len)?)
                .ok()
                .and_then(|s| IssuanceRef::parse(s).ok())
                .map(Some)
                .ok_or_else(|| self.corrupt("bad ref")),
        }
    }

    pub(super) fn end(&self) -> Result<(), StoreError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> ListRecord {
        ListRecord {
            id: ListId::from_random_bytes([1, 2, 3, 4, 5, 6]),
            client: ClientId::parse("client-1").unwrap(),
            format: ListFormat::Bitstring,
            bits: Bits::Two,
            capacity: 131_072,
            counter: 17,
            created_at: 1_700_000_000,
            retire_after: 1_800_000_000,
            version: 4,
            key: AllocatorKey::from_bytes([7; 32]),
            base: Some(1_000),
        }
    }

    fn log() -> LogRecord {
        LogRecord {
            count: 3,
            created: 1_700_000_000,
            expiry: u64::MAX,
            issuance_ref: Some(IssuanceRef::parse("order 42").unwrap()),
        }
    }

    fn idem() -> IdemRecord {
        IdemRecord {
            digest: [9; 32],
            expires_at: 3600,
            answer: Recorded::Issue {
                list: ListId::from_random_bytes([6, 5, 4, 3, 2, 1]),
                format: ListFormat::Token,
                first: 12,
                count: 3,
                next: None,
            },
        }
    }

    /// Every kind of answer, for the round trips.
    fn answers() -> Vec<Recorded> {
        vec![
            idem().answer,
            Recorded::Issue {
                list: ListId::from_random_bytes([6, 5, 4, 3, 2, 1]),
                format: ListFormat::Bitstring,
                first: 99,
                count: 4,
                next: Some((ListId::from_random_bytes([1, 1, 2, 3, 5, 8]), 7)),
            },
            Recorded::Change {
                done: true,
                at: Some(77),
            },
            Recorded::Change {
                done: false,
                at: None,
            },
            Recorded::RefChange {
                at: 5,
                changed: 6,
                skipped: 7,
                already: u64::MAX,
            },
            Recorded::Claim,
        ]
    }

    #[test]
    fn records_round_trip() {
        let l = list();
        assert_eq!(ListRecord::decode(l.id, &l.encode()).unwrap(), l);
        let untracked = ListRecord { base: None, ..l };
        assert_eq!(
            ListRecord::decode(untracked.id, &untracked.encode()).unwrap(),
            untracked
        );
        for answer in answers() {
            let c = IdemRecord { answer, ..idem() };
            assert_eq!(IdemRecord::decode(&c.encode()).unwrap(), c);
        }
        for g in [
            log(),
            LogRecord {
                issuance_ref: None,
                ..log()
            },
            LogRecord {
                issuance_ref: Some(IssuanceRef::parse(&"~".repeat(128)).unwrap()),
                ..log()
            },
        ] {
            assert_eq!(LogRecord::decode(&g.encode()).unwrap(), g);
        }
    }

    /// A list record written before entries were tracked reads as an
    /// untracked list, and one that stays untracked keeps that encoding
    /// byte for byte.
    #[test]
    fn list_records_of_the_first_layout_read_as_untracked() {
        let l = list();
        let mut v1 = vec![1u8, 1, 2];
        for n in [
            l.capacity,
            l.counter,
            l.created_at,
            l.retire_after,
            l.version,
        ] {
            v1.extend_from_slice(&n.to_le_bytes());
        }
        v1.extend_from_slice(&[7; 32]);
        v1.push(8);
        v1.extend_from_slice(b"client-1");
        let old = ListRecord::decode(l.id, &v1).unwrap();
        assert_eq!(old, ListRecord { base: None, ..l });
        assert_eq!(old.encode(), v1);
    }

    #[test]
    fn records_of_the_previous_layout_still_read() {
        // V1: version, done, format, digest, lease, expiry, first, count, list.
        let mut v1 = vec![1u8, 0, 0];
        v1.extend_from_slice(&[9; 32]);
        for n in [30u64, 3600, 12] {
            v1.extend_from_slice(&n.to_le_bytes());
        }
        v1.extend_from_slice(&3u32.to_le_bytes());
        v1.extend_from_slice(
            ListId::from_random_bytes([6, 5, 4, 3, 2, 1])
                .as_str()
                .as_bytes(),
        );
        assert_eq!(IdemRecord::decode(&v1).unwrap(), idem());
    }

    #[test]
    fn every_truncation_and_garbage_is_corrupt_not_a_panic() {
        let l = list().encode();
        for n in 0..l.len() {
            assert!(matches!(
                ListRecord::decode(list().id, &l[..n]),
                Err(StoreError::Corrupt(_))
            ));
        }
        let i = idem().encode();
        for n in 0..i.len() {
            assert!(matches!(
                IdemRecord::decode(&i[..n]),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut long = i.clone();
        long.push(0);
        assert!(IdemRecord::decode(&long).is_err());
        let mut bad = l.clone();
        bad[0] = 99;
        assert!(ListRecord::decode(list().id, &bad).is_err());
        let mut bad = i;
        bad[1] = 7;
        assert!(IdemRecord::decode(&bad).is_err());
        for answer in answers() {
            let c = IdemRecord { answer, ..idem() }.encode();
            for n in 0..c.len() {
                assert!(IdemRecord::decode(&c[..n]).is_err());
            }
            let mut long = c.clone();
            long.push(0);
            assert!(IdemRecord::decode(&long).is_err());
        }
        let g = log().encode();
        for n in 0..g.len() {
            assert!(matches!(
                LogRecord::decode(&g[..n]),
                Err(StoreError::Corrupt(_))
            ));
        }
        let mut long = g.clone();
        long.push(b'x');
        assert!(LogRecord::decode(&long).is_err());
        let mut bad = g.clone();
        bad[0] = 9;
        assert!(LogRecord::decode(&bad).is_err());
        let mut tab = g;
        let last = tab.len() - 1;
        tab[last] = b'\t';
        assert!(LogRecord::decode(&tab).is_err(), "not a ref");
        let none = LogRecord {
            count: 0,
            issuance_ref: None,
            ..log()
        };
        assert!(LogRecord::decode(&none.encode()).is_err(), "no entries");
    }
}
