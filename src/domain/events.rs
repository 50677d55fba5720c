//! Status-change events: what an issuer platform's webhook receives.
//!
//! An event reports one fact the store applied: an entry changed status
//! (`entry.revoked`, `entry.suspended`, `entry.unsuspended`), or an `/issue`
//! with a `ref` allocated entries (`entries.issued`). The store records it
//! in the same atomic step as the change, so that an acknowledged change
//! always has its event and no event exists for a change that did not
//! happen; the dispatcher delivers it later, at least once.
//!
//! Ids are minted before the store is called ([`EventSeed`]) so that the
//! store needs no clock and no random source: one seed per request, and the
//! request's n-th event gets `seed.id(n)`.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::ids::{ClientId, IssuanceRef, ListFormat, ListId, ListRef};
use super::status::Status;

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An entry became INVALID.
    EntryRevoked,
    /// An entry became SUSPENDED.
    EntrySuspended,
    /// An entry became VALID again.
    EntryUnsuspended,
    /// An `/issue` that carried a `ref` allocated entries.
    EntriesIssued,
}

impl EventKind {
    /// Every kind, in code order.
    pub const ALL: [EventKind; 4] = [
        EventKind::EntryRevoked,
        EventKind::EntrySuspended,
        EventKind::EntryUnsuspended,
        EventKind::EntriesIssued,
    ];

    /// The `type` of the event's body.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::EntryRevoked => "entry.revoked",
            EventKind::EntrySuspended => "entry.suspended",
            EventKind::EntryUnsuspended => "entry.unsuspended",
            EventKind::EntriesIssued => "entries.issued",
        }
    }

    /// The one-byte code stores keep (stable: stored events outlive a
    /// release).
    pub const fn code(self) -> u8 {
        match self {
            EventKind::EntryRevoked => 1,
            EventKind::EntrySuspended => 2,
            EventKind::EntryUnsuspended => 3,
            EventKind::EntriesIssued => 4,
        }
    }

    /// The kind of a stored code.
    pub const fn from_code(code: u8) -> Option<EventKind> {
        match code {
            1 => Some(EventKind::EntryRevoked),
            2 => Some(EventKind::EntrySuspended),
            3 => Some(EventKind::EntryUnsuspended),
            4 => Some(EventKind::EntriesIssued),
            _ => None,
        }
    }

    /// The kind that reports an entry reaching `status`; `None` for a status
    /// no change sets.
    pub const fn for_status(status: Status) -> Option<EventKind> {
        match status {
            Status::Invalid => Some(EventKind::EntryRevoked),
            Status::Suspended => Some(EventKind::EntrySuspended),
            Status::Valid => Some(EventKind::EntryUnsuspended),
            Status::ApplicationSpecific => None,
        }
    }

    /// The status the event's entries have after it.
    pub const fn status(self) -> Status {
        match self {
            EventKind::EntryRevoked => Status::Invalid,
            EventKind::EntrySuspended => Status::Suspended,
            EventKind::EntryUnsuspended | EventKind::EntriesIssued => Status::Valid,
        }
    }
}

/// Why an event id does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event id is 32 lowercase hexadecimal characters")]
pub struct EventIdError;

/// An event's id: unique, and sortable by the time it was minted.
///
/// 128 bits: the mint time in milliseconds (48), a random per-request nonce
/// (48) and the event's ordinal within its request (32). Shown as 32
/// lowercase hex digits, so the text sorts as the number does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u128);

impl EventId {
    /// The id of these parts (`ms` and `nonce` are cut to 48 bits).
    pub const fn new(ms: u64, nonce: u64, ordinal: u32) -> Self {
        let ms = (ms & 0xFFFF_FFFF_FFFF) as u128;
        let nonce = (nonce & 0xFFFF_FFFF_FFFF) as u128;
        EventId(ms << 80 | nonce << 32 | ordinal as u128)
    }

    /// When the id was minted, in unix milliseconds (the time its request
    /// reached the service).
    pub const fn ms(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// The id as 16 big-endian bytes (the order of the text).
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id of 16 big-endian bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        EventId(u128::from_be_bytes(bytes))
    }

    /// Reads the 32-hex-digit text.
    ///
    /// # Errors
    /// [`EventIdError`] unless `s` is exactly 32 characters of `0-9a-f`.
    pub fn parse(s: &str) -> Result<Self, EventIdError> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(EventIdError);
        }
        u128::from_str_radix(s, 16)
            .map(EventId)
            .map_err(|_| EventIdError)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for EventId {
    type Err = EventIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventId::parse(s)
    }
}

/// The ids of one request's events: minted by the service per write
/// request (only for clients with a webhook) and handed to the store, which
/// gives its n-th event of the request `id(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSeed {
    /// The request's time in unix milliseconds.
    pub ms: u64,
    /// 48 random bits, so that requests of the same millisecond differ.
    pub nonce: u64,
}

impl EventSeed {
    /// A seed for a request received at `ms`, with a fresh random nonce.
    pub fn random(ms: u64) -> Self {
        use rand::RngCore;
        EventSeed {
            ms,
            nonce: rand::rngs::OsRng.next_u64() & 0xFFFF_FFFF_FFFF,
        }
    }

    /// The id of the request's `ordinal`-th event (0-based).
    pub const fn id(self, ordinal: u32) -> EventId {
        EventId::new(self.ms, self.nonce, ordinal)
    }
}

/// One recorded event, as stores keep it and the dispatcher sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// What it reports.
    pub kind: EventKind,
    /// The client whose entries these are (the receiver is its webhook).
    pub client: ClientId,
    /// The format of the entries' lists (gives `/t/` or `/b/` in the URI).
    pub format: ListFormat,
    /// When the change was applied (the request's time, unix seconds).
    pub at: u64,
    /// The entries: exactly one for `entry.*`, every allocated one in
    /// allocation order for `entries.issued`.
    pub entries: Vec<(ListId, u64)>,
    /// The ref the entries are bound to, if any (always for
    /// `entries.issued`).
    pub issuance_ref: Option<IssuanceRef>,
}

impl Event {
    /// The JSON body sent to the webhook: `{"id", "type", "client", "at",
    /// "data"}`. For `entry.*`, `data` is `{"uri", "idx", "ref"?, "status"}`;
    /// for `entries.issued`, `{"ref", "entries": [{"idx", "uri"}], "status"}`.
    /// List URIs start with `base_url`, the service's public base URL.
    pub fn body(&self, base_url: &str) -> Vec<u8> {
        // A `Value` of strings and numbers always serialises.
        serde_json::to_vec(&self.json(base_url)).unwrap_or_default()
    }

    /// The body as a JSON value (what [`Event::body`] serialises), for
    /// answers that embed it.
    pub fn json(&self, base_url: &str) -> Value {
        let uri = |list: &ListId| {
            ListRef {
                format: self.format,
                id: *list,
            }
            .uri(base_url)
        };
        let mut data = serde_json::Map::new();
        match (self.kind, self.entries.as_slice()) {
            (EventKind::EntriesIssued, entries) | (_, entries @ ([] | [_, _, ..])) => {
                let listed: Vec<Value> = entries
                    .iter()
                    .map(|(list, idx)| json!({"idx": idx, "uri": uri(list)}))
                    .collect();
                data.insert("entries".into(), Value::Array(listed));
            }
            (_, [(list, idx)]) => {
                data.insert("uri".into(), Value::String(uri(list)));
                data.insert("idx".into(), json!(idx));
            }
        }
        if let Some(r) = &self.issuance_ref {
            data.insert("ref".into(), Value::String(r.as_str().to_owned()));
        }
        data.insert(
            "status".into(),
            Value::String(self.kind.status().name().to_owned()),
        );
        json!({
            "id": self.id.to_string(),
            "type": self.kind.name(),
            "client": self.client.as_str(),
            "at": self.at,
            "data": Value::Object(data),
        })
    }
}

/// The `Statuslist-Signature` header of a delivery made at `t` (unix
/// seconds): `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
///
/// The time is signed with the body so that a captured delivery cannot be
/// replayed later than the receiver's tolerance.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = format!("t={t},v1=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_then_nonce_then_ordinal() {
        let a = EventId::new(1_700_000_000_000, 5, 9);
        let b = EventId::new(1_700_000_000_001, 0, 0);
        let c = EventId::new(1_700_000_000_001, 0, 1);
        assert!(a < b && b < c);
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
        assert_eq!(b.ms(), 1_700_000_000_001);
        for id in [a, b, c] {
            assert_eq!(EventId::parse(&id.to_string()), Ok(id));
            assert_eq!(EventId::from_bytes(id.to_bytes()), id);
        }
        assert!(EventId::parse("ABC").is_err());
        assert!(EventId::parse(&"A".repeat(32)).is_err());
    }

    #[test]
    fn kinds_round_trip_their_codes() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_code(k.code()), Some(k));
        }
        assert_eq!(EventKind::from_code(0), None);
    }

    #[test]
    fn bodies_have_the_documented_shape() {
        let list = ListId::parse("0123456789AB").unwrap();
        let ev = Event {
            id: EventSeed { ms: 1, nonce: 2 }.id(3),
            kind: EventKind::EntryRevoked,
            client: ClientId::parse("issuer").unwrap(),
            format: ListFormat::Token,
            at: 1_700_000_000,
            entries: vec![(list, 7)],
            issuance_ref: Some(IssuanceRef::parse("order-1").unwrap()),
        };
        let v: Value = serde_json::from_slice(&ev.body("https://s.example")).unwrap();
        assert_eq!(
            v,
            json!({"id": "00000000000100000000000200000003", "type": "entry.revoked",
                   "client": "issuer", "at": 1_700_000_000u64,
                   "data": {"uri": "https://s.example/t/0123456789AB", "idx": 7,
                            "ref": "order-1", "status": "INVALID"}})
        );
        let issued = Event {
            kind: EventKind::EntriesIssued,
            format: ListFormat::Bitstring,
            entries: vec![(list, 7), (list, 9)],
            ..ev
        };
        let v: Value = serde_json::from_slice(&issued.body("https://s.example/")).unwrap();
        assert_eq!(
            v["data"],
            json!({"entries": [{"idx": 7, "uri": "https://s.example/b/0123456789AB"},
                               {"idx": 9, "uri": "https://s.example/b/0123456789AB"}],
                   "ref": "order-1", "status": "VALID"})
        );
    }

    #[test]
    fn signatures_match_an_independent_hmac() {
        // Computed with Python's hmac module over "0.what do ya want for
        // nothing?" and the key of RFC 4231's test case 2.
        assert_eq!(
            signature(b"Jefe", 0, b"what do ya want for nothing?"),
            "t=0,v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
        let other = signature(b"Jefe", 1, b"what do ya want for nothing?");
        assert!(other.starts_with("t=1,v1=") && !other.ends_with("79cc"));
    }
}
