//! Every Redis key name of the adapter, built in one place.
//!
//! Every key starts with a configurable prefix `P` (`statuslist:` by
//! default). Everything that belongs to a client carries the client's hash
//! tag, so all of a client's keys live in one Redis Cluster slot and every
//! script touches one slot only:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `P{c}:cur:<format>` | string | the client's current list of that format |
//! | `P{c}:r` | hash | the client's record table: level `L` and split pointer `s` (absent: one shard) |
//! | `P{c}:r:<n>` | hash, TTL = its latest record's end | shard `n` of the idempotency records: 16-byte jti → binary record (see `records.lua`) |
//! | `P{c}:j:<jti>` | string | an idempotency record of an earlier version, read until it expires, never written |
//! | `P{c}:l:<id>` | hash | owner, format, bits, capacity, counter `n`, allocator key, created, retire-after, version `v`, bytes per chunk `cs`, base seq `e` (absent: opened before entry spaces) |
//! | `P{c}:l:<id>:b`, `…:b1` | string | the packed entries, in the list's own bit order, cut every `cs` bytes (see `layout`) |
//! | `P{c}:l:<id>:c` | hash | change times: index bucket → sorted (offset, time) records (see `layout`) |
//! | `P{c}:l:<id>:t` | hash | index → time, written by earlier versions, read as a fallback, never written |
//! | `P{c}:e:<format>:s` | hash | the client's entry space of that format: next seq `n`, latest created time `t` |
//! | `P{c}:e:<format>:g` | string | its issuance log: 16-byte records (first seq, count, created, status expiry) |
//! | `P{c}:e:<format>:l` | string | its list registry: 12-byte records (base seq, list id) |
//! | `P{c}:e:<format>:rg` | string | its ref bindings: 12-byte records (log record, ref text, previous binding of the ref) |
//! | `P{c}:e:<format>:rb` | string | its ref texts (length byte, text) |
//! | `P{c}:e:<format>:rf` | hash | ref text → its text offset and last binding |
//! | `P{c}:e:<format>:x` | zset | its changed entries, by seq |
//! | `P{c}:e:<format>:z1` … `z7` | zset | its changed entries whose status is in the mask (1 VALID, 2 INVALID, 4 SUSPENDED), by change time |
//! | `P{c}:ev` | stream | the client's event outbox (webhooks): one entry per event neither delivered nor dead, in record order, with consumer group `dispatch` (see `events.lua`) |
//! | `P{c}:evq` | zset | stream id → due time (unix ms) of every taken event still in `ev`: held, scheduled or held back |
//! | `P{c}:eva` | hash | stream id → how many times the event was handed out |
//! | `P{c}:evl` | hash | entry (list id u48, allocation number u48) → stream id of its latest event still in `ev` (orders the events of one entry) |
//! | `P{c}:evx` | hash | event id (16 bytes) → dead letter (the event, attempts, time, error) |
//! | `P{c}:evn` | hash | stream id → stream ids of the later events it holds back (woken when it leaves `ev`) |
//! | `Plist:<id>` | string | the owning client of a list id |
//!
//! An entry space numbers a client's entries of one format in allocation
//! order (their seq); its record formats are described in `space.lua`.
//!
//! The last key is the one that needs no client: `read_list`, `list_version`
//! and `set_status` arrive with a list id only.
//!
//! One pub/sub channel, not a key: `Pchanges`, on which `set_status.lua`
//! publishes the id of every list it changes (see `feed`). It carries no
//! hash tag: channels are not keys and reach every node of a cluster.
//!
//! `allocate.lua` cannot be handed the keys of a list it has not chosen yet,
//! so it derives `P{c}:l:<id>` and its chunks from the client prefix with the
//! same [`LIST`] and [`BYTES`] parts, and every script derives a record shard
//! from the client prefix and [`RECORDS`]. The scripts are handed an entry
//! space's prefix ([`SpaceKeys::prefix`]) and derive its keys with the parts
//! of [`SPACE_PARTS`]. The scripts that record events derive the outbox's
//! keys from the client prefix with the parts of [`OUTBOX_PARTS`]; the
//! outbox's own scripts are handed them ([`OutboxKeys`]). A unit test holds
//! the scripts to them.
//!
//! The outbox keys exist only for a client whose writes recorded events (a
//! client with a webhook): a write without an event seed touches none.

use crate::domain::{ClientId, Jti, ListFormat, ListId};
use crate::ports::StoreError;

/// Between a client prefix and a list id: the list's metadata hash.
pub(super) const LIST: &str = "l:";
/// After a list's metadata key: its packed entries (the first chunk; the
/// chunk number follows from the second on).
pub(super) const BYTES: &str = ":b";
/// After a list's metadata key: its change times, by bucket.
pub(super) const TIMES: &str = ":c";
/// After a list's metadata key: change times as earlier versions kept them.
pub(super) const LEGACY_TIMES: &str = ":t";
/// After a client prefix: the record table (its state; a shard key adds
/// `:<n>`).
pub(super) const RECORDS: &str = "r";
/// After a client prefix: an entry space (the format's name and `:`
/// follow).
pub(super) const SPACE: &str = "e:";
/// After an entry space's prefix: its parts, as the scripts name them
/// (`z` is followed by a status mask, 1 to 7).
pub(super) const SPACE_PARTS: [&str; 8] = ["s", "g", "l", "rg", "rb", "rf", "x", "z"];

/// After a client prefix: its event outbox's journal, due times, attempts,
/// latest event per entry and dead letters (see `events.lua`).
pub(super) const OUTBOX_PARTS: [&str; 6] = ["ev", "evq", "eva", "evl", "evx", "evn"];

/// The key names of one deployment: every key starts with its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyNames {
    /// Holds no braces (they would move keys out of the client's hash tag)
    /// and no whitespace.
    prefix: String,
}

impl KeyNames {
    /// Key names under `prefix`.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a prefix holding braces or whitespace.
    pub(super) fn new(prefix: String) -> Result<Self, StoreError> {
        if prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace())
        {
            return Err(StoreError::Invalid(
                "the Redis key prefix may not hold braces or whitespace".to_owned(),
            ));
        }
        Ok(KeyNames { prefix })
    }

    /// The prefix every key starts with.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of `client` (all in its hash-tag slot).
    pub(super) fn client(&self, client: &ClientId) -> ClientKeys {
        ClientKeys(format!("{}{{{}}}:", self.prefix, client))
    }

    /// The change channel: every applied change publishes its list's id
    /// there.
    pub(super) fn changes(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// The list id → owner entry, the one key outside any client's slot.
    pub(super) fn owner(&self, list: &ListId) -> String {
        format!("{}{}", self.owner_prefix(), list)
    }

    /// What every owner entry's name starts with (the list id follows):
    /// the lists are enumerated by it.
    pub(super) fn owner_prefix(&self) -> String {
        format!("{}list:", self.prefix)
    }

    /// All keys of one list, whose bytes are `chunks` chunks.
    pub(super) fn list(&self, client: &ClientId, list: &ListId, chunks: usize) -> ListKeys {
        let meta = self.client(client).meta(list);
        ListKeys {
            chunks: (0..chunks).map(|k| chunk(&meta, k)).collect(),
            times: times(&meta),
            legacy_times: legacy_times(&meta),
            meta,
            owner: self.owner(list),
        }
    }
}

/// The key prefix of one client, `P{c}:`, from which all its keys are built
/// (and which the allocation script is handed to build a list's keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClientKeys(String);

impl ClientKeys {
    /// The prefix itself.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// The idempotency record of `jti` as earlier versions wrote it.
    pub(super) fn legacy_record(&self, jti: &Jti) -> String {
        format!("{}j:{}", self.0, jti)
    }

    /// The state of the client's record table.
    pub(super) fn records(&self) -> String {
        format!("{}{RECORDS}", self.0)
    }

    /// Shard `n` of the client's record table.
    pub(super) fn record_shard(&self, n: u64) -> String {
        format!("{}{RECORDS}:{n}", self.0)
    }

    /// The pointer to the client's current list of `format`.
    pub(super) fn current(&self, format: ListFormat) -> String {
        format!("{}cur:{}", self.0, format.name())
    }

    /// The metadata hash of `list`.
    pub(super) fn meta(&self, list: &ListId) -> String {
        format!("{}{LIST}{}", self.0, list)
    }

    /// The client's entry space of `format`.
    pub(super) fn space(&self, format: ListFormat) -> SpaceKeys {
        SpaceKeys(format!("{}{SPACE}{}:", self.0, format.name()))
    }

    /// The client's event outbox.
    pub(super) fn outbox(&self) -> OutboxKeys {
        let [stream, due, attempts, latest, dead, next] =
            OUTBOX_PARTS.map(|p| format!("{}{p}", self.0));
        OutboxKeys {
            stream,
            due,
            attempts,
            latest,
            dead,
            next,
        }
    }
}

/// The keys of a client's event outbox (see `events.lua` for their
/// contents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OutboxKeys {
    /// The journal (stream) of the events neither delivered nor dead.
    pub stream: String,
    /// Stream id → due time of the taken events (zset).
    pub due: String,
    /// Stream id → attempts (hash).
    pub attempts: String,
    /// Entry → stream id of its latest event (hash).
    pub latest: String,
    /// Event id → dead letter (hash).
    pub dead: String,
    /// Stream id → the later events it holds back (hash).
    pub next: String,
}

/// The keys of one entry space (a client's entries of one format), all
/// under its prefix `P{c}:e:<format>:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SpaceKeys(String);

impl SpaceKeys {
    /// The prefix the scripts derive the space's keys from.
    pub(super) fn prefix(&self) -> &str {
        &self.0
    }

    /// The space's state (next seq, latest created time).
    pub(super) fn state(&self) -> String {
        format!("{}{}", self.0, SPACE_PARTS[0])
    }

    /// Every key of the space, the seven status zsets included.
    pub(super) fn all(&self) -> Vec<String> {
        let (zsets, plain) = SPACE_PARTS.split_last().unwrap_or((&"z", &[]));
        plain
            .iter()
            .map(|part| format!("{}{part}", self.0))
            .chain((1..=7).map(|mask| format!("{}{zsets}{mask}", self.0)))
            .collect()
    }
}

/// Chunk `k` of the packed entries of the list whose metadata key is
/// `meta`: `…:b`, `…:b1`, `…:b2`, … (the first keeps the name a list of one
/// string had before chunking).
pub(super) fn chunk(meta: &str, k: usize) -> String {
    if k == 0 {
        format!("{meta}{BYTES}")
    } else {
        format!("{meta}{BYTES}{k}")
    }
}

/// The change times of the list whose metadata key is `meta`.
pub(super) fn times(meta: &str) -> String {
    format!("{meta}{TIMES}")
}

/// The change times earlier versions kept for the list whose metadata key
/// is `meta`.
pub(super) fn legacy_times(meta: &str) -> String {
    format!("{meta}{LEGACY_TIMES}")
}

/// The Redis keys of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKeys {
    /// The packed entries, chunk by chunk (strings).
    pub chunks: Vec<String>,
    /// Change times by bucket (hash).
    pub times: String,
    /// Change times by index, as earlier versions wrote them (hash; read
    /// only).
    pub legacy_times: String,
    /// Metadata, counter and version (hash).
    pub meta: String,
    /// The list id → owner entry (string, outside the client's slot).
    pub owner: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_layout() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let c = ClientId::parse("acme").unwrap();
        let list = ListId::parse("0123456789AB").unwrap();
        let jti = Jti::parse("00000000-0000-4000-8000-000000000000").unwrap();
        let ck = names.client(&c);
        assert_eq!(ck.as_str(), "p:{acme}:");
        assert_eq!(ck.legacy_record(&jti), format!("p:{{acme}}:j:{jti}"));
        assert_eq!(ck.records(), "p:{acme}:r");
        assert_eq!(ck.record_shard(7), "p:{acme}:r:7");
        assert_eq!(ck.current(ListFormat::Token), "p:{acme}:cur:token");
        let space = ck.space(ListFormat::Bitstring);
        assert_eq!(space.prefix(), "p:{acme}:e:bitstring:");
        assert_eq!(space.state(), "p:{acme}:e:bitstring:s");
        assert_eq!(
            space.all(),
            [
                "s", "g", "l", "rg", "rb", "rf", "x", "z1", "z2", "z3", "z4", "z5", "z6", "z7"
            ]
            .map(|p| format!("p:{{acme}}:e:bitstring:{p}"))
        );
        assert_eq!(
            ck.outbox(),
            OutboxKeys {
                stream: "p:{acme}:ev".to_owned(),
                due: "p:{acme}:evq".to_owned(),
                attempts: "p:{acme}:eva".to_owned(),
                latest: "p:{acme}:evl".to_owned(),
                dead: "p:{acme}:evx".to_owned(),
                next: "p:{acme}:evn".to_owned(),
            }
        );
        assert_eq!(names.changes(), "p:changes");
        assert_eq!(
            names.list(&c, &list, 2),
            ListKeys {
                chunks: vec![
                    "p:{acme}:l:0123456789AB:b".to_owned(),
                    "p:{acme}:l:0123456789AB:b1".to_owned(),
                ],
                times: "p:{acme}:l:0123456789AB:c".to_owned(),
                legacy_times: "p:{acme}:l:0123456789AB:t".to_owned(),
                meta: "p:{acme}:l:0123456789AB".to_owned(),
                owner: "p:list:0123456789AB".to_owned(),
            }
        );
        for bad in ["a{b", "a}", "a b", "a\t"] {
            assert!(
                matches!(KeyNames::new(bad.to_owned()), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }

    /// The scripts build keys themselves: with the same parts as
    /// [`ClientKeys::meta`], [`chunk`] and [`ClientKeys::record_shard`].
    #[test]
    fn the_scripts_build_keys_the_same_way() {
        let lua = include_str!("allocate.lua");
        assert!(
            lua.contains(&format!("client_prefix .. '{LIST}' .. ")),
            "{LIST}"
        );
        let prelude = include_str!("records.lua");
        assert!(
            prelude.contains(&format!("meta .. '{BYTES}' .. ")),
            "{BYTES}"
        );
        assert!(
            prelude.contains(&format!("prefix .. '{RECORDS}:' .. ")),
            "{RECORDS}"
        );
        assert!(
            prelude.contains(&format!("prefix .. '{RECORDS}'")),
            "{RECORDS}"
        );
        // Every part of an entry space, as `space .. '<part>'`, in the
        // space prelude or the scripts.
        let lua = [
            include_str!("space.lua"),
            include_str!("allocate.lua"),
            include_str!("list.lua"),
        ]
        .concat();
        for part in SPACE_PARTS {
            assert!(lua.contains(&format!("space .. '{part}'")), "{part}");
        }
        // The keys the recording scripts write (the journal and the latest
        // event per entry), built from the client prefix as `outbox()`
        // builds them.
        let events = include_str!("events.lua");
        for part in ["ev", "evl", "evn"] {
            assert!(OUTBOX_PARTS.contains(&part));
            assert!(events.contains(&format!("prefix .. '{part}'")), "{part}");
        }
    }
}
