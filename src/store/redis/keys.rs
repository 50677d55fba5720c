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
//! The scripts build key names from the client prefix with the same parts
//! (`P{c}:l:<id>` and its chunks with [`LIST`] and [`BYTES`], a record shard
//! with [`RECORDS`], an entry space's keys from [`SpaceKeys::prefix`] with
//! [`SPACE_PARTS`], the outbox's with [`OUTBOX_PARTS`]; a unit test holds
//! them to these), but touch only the names the adapter declared in KEYS:
//! every key a call may touch is built here and passed (see `declare` in
//! `records.lua`).
//!
//! With `shards_per_client` above 1, shard `n` of a client has the prefix
//! `P{c/n}:` or `P{c/n.j}:` ([`shard_tag`], which places the shards in
//! different slot ranges; shard 0 keeps `P{c}:`) and all the keys above
//! under it, and `Plist:<id>` holds `c/n` ([`owner_value`]).
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
    /// `shards_per_client`: how many hash tags each client is spread over
    /// (at least 1; it places the tags, see [`shard_tag`]).
    shards: u16,
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
        Ok(KeyNames { prefix, shards: 1 })
    }

    /// The same names for clients spread over `shards` hash tags (at
    /// least 1).
    pub(super) fn with_shards(self, shards: u16) -> Self {
        KeyNames {
            shards: shards.max(1),
            ..self
        }
    }

    /// The prefix every key starts with.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of `client` (all in its hash-tag slot): its shard 0.
    pub(super) fn client(&self, client: &ClientId) -> ClientKeys {
        self.shard(client, 0)
    }

    /// The keys of shard `n` of `client`: `P{c}:` for shard 0 (the layout
    /// of a client that is not sharded), `P{<tag>}:` for the others, each
    /// its own hash tag ([`shard_tag`]). Client ids hold no `/`, so no
    /// client's tag is another's shard.
    pub(super) fn shard(&self, client: &ClientId, n: u16) -> ClientKeys {
        ClientKeys(format!(
            "{}{{{}}}:",
            self.prefix,
            shard_tag(client, n, self.shards)
        ))
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

    /// All keys of one list of shard 0 of `client`, whose bytes are
    /// `chunks` chunks.
    #[cfg(test)]
    pub(super) fn list(&self, client: &ClientId, list: &ListId, chunks: usize) -> ListKeys {
        self.list_in(client, 0, list, chunks)
    }

    /// All keys of one list of shard `shard` of `client`, whose bytes are
    /// `chunks` chunks.
    pub(super) fn list_in(
        &self,
        client: &ClientId,
        shard: u16,
        list: &ListId,
        chunks: usize,
    ) -> ListKeys {
        let meta = self.shard(client, shard).meta(list);
        ListKeys {
            chunks: (0..chunks).map(|k| chunk(&meta, k)).collect(),
            times: times(&meta),
            legacy_times: legacy_times(&meta),
            meta,
            owner: self.owner(list),
        }
    }
}

/// The hash tag of shard `n` of `client` spread over `shards` tags:
/// `c` for shard 0, and for the others `c/n` or, when that one's slot is
/// not where shard `n` belongs, `c/n.j` with the smallest `j` whose slot
/// is.
///
/// Where a shard belongs: cut the 16,384 slots into `shards` equal ranges;
/// shard 0 falls in range `r` (by its tag's slot), shard `n` in range
/// `(r + n) mod shards`. So a client's shards sit in as many different
/// ranges, and with the equal ranges `redis-cli --cluster create` hands out
/// (and `shards_per_client` a multiple of the masters) every master gets its
/// share of every client, where random slots would leave some master
/// without one (3 random tags miss one of 3 masters 7 times in 9). A pure
/// function of the client, `n` and `shards`: every replica and version
/// finds the same keys. `n` beyond `shards` (never asked by the adapter)
/// gets `c/n`.
pub(super) fn shard_tag(client: &ClientId, n: u16, shards: u16) -> String {
    if n == 0 {
        return client.as_str().to_owned();
    }
    let plain = format!("{client}/{n}");
    if n >= shards {
        return plain;
    }
    let shards = u32::from(shards);
    let range = |tag: &str| u32::from(slot(tag)) * shards / SLOTS;
    let want = (range(client.as_str()) + u32::from(n)) % shards;
    if range(&plain) == want {
        return plain;
    }
    // About `shards` tries on average; the bound only stops a loop that
    // cannot happen (CRC16 reaches every range).
    (1..=64 * shards)
        .map(|j| format!("{plain}.{j}"))
        .find(|tag| range(tag) == want)
        .unwrap_or(plain)
}

/// How many hash slots a Redis Cluster has.
const SLOTS: u32 = 16_384;

/// The owner entry's value for a list of shard `shard` of `client`: the
/// client id, then `/` and the shard when it is not 0 (so entries written
/// before shards read as shard 0).
pub(super) fn owner_value(client: &ClientId, shard: u16) -> String {
    if shard == 0 {
        client.as_str().to_owned()
    } else {
        format!("{client}/{shard}")
    }
}

/// The client and shard an owner entry names ([`owner_value`]); `None`
/// when it is not one.
pub(super) fn parse_owner(value: &str) -> Option<(ClientId, u16)> {
    let (client, shard) = match value.split_once('/') {
        Some((client, shard)) => (client, shard.parse().ok().filter(|n| *n > 0)?),
        None => (value, 0),
    };
    Some((ClientId::parse(client).ok()?, shard))
}

/// The shard (of `shards`) that `key` falls in: the first 8 bytes of its
/// SHA-256 mod `shards`. The same key always falls in the same shard, in
/// every process and version, which is what lets a replay find its
/// record.
pub(super) fn shard_of(key: &[u8], shards: u16) -> u16 {
    use sha2::{Digest, Sha256};
    if shards <= 1 {
        return 0;
    }
    let d = Sha256::digest(key);
    let h = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    u16::try_from(h % u64::from(shards)).unwrap_or(0)
}

/// Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag (the
/// text in its first `{…}`, when not empty) or of the whole key, mod
/// 16384.
pub(super) fn slot(key: &str) -> u16 {
    let tag = key
        .find('{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.find('}').filter(|c| *c > 0).map(|c| &rest[..c])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for b in tag.bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// How many splits of a record table ahead a call declares the shards of
/// (see [`RecordTable::reshaped`]): a call that would split more often
/// leaves the rest to later calls.
const SPLITS_AHEAD: usize = 4;

/// The state of a client's record table as `records.lua` keeps it (`L` and
/// `s` of `P{c}:r`; both 0 when absent): which shard each jti's record is
/// in. The adapter keeps what it last saw per client to declare the right
/// shards, and learns the new state from a `STALE records` answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RecordTable {
    /// The level `L`: 2^L shards before the split pointer's round.
    pub level: u32,
    /// The split pointer `s`, below 2^L.
    pub split: u64,
}

impl RecordTable {
    /// The shard of a jti whose hash ([`super::scripts::record_hash`]) is
    /// `h`: `rec_shard` of `records.lua`.
    pub(super) fn shard(self, h: u32) -> u64 {
        let h = u64::from(h);
        let modulo = |level: u32| 1u64.checked_shl(level).map_or(h, |m| h % m);
        let n = modulo(self.level);
        if n < self.split {
            modulo(self.level.saturating_add(1))
        } else {
            n
        }
    }

    /// 2^level, saturated.
    fn width(level: u32) -> u64 {
        1u64.checked_shl(level).unwrap_or(u64::MAX)
    }

    /// The shards the next [`SPLITS_AHEAD`] splits and the undoing of the
    /// last split touch (`rec_split` and `rec_merge` of `records.lua`), so a
    /// call may grow or shrink the table between declared shards.
    pub(super) fn reshaped(self) -> Vec<u64> {
        let mut shards = Vec::with_capacity(2 * SPLITS_AHEAD + 2);
        let (mut level, mut split) = (self.level, self.split);
        for _ in 0..SPLITS_AHEAD {
            shards.push(split);
            shards.push(split.saturating_add(Self::width(level)));
            split += 1;
            if split >= Self::width(level) {
                level = level.saturating_add(1);
                split = 0;
            }
        }
        if self.level > 0 || self.split > 0 {
            let (prev_level, prev_split) = if self.split == 0 {
                let l = self.level - 1;
                (l, Self::width(l) - 1)
            } else {
                (self.level, self.split - 1)
            };
            shards.push(prev_split);
            shards.push(prev_split.saturating_add(Self::width(prev_level)));
        }
        shards
    }

    /// The state a `STALE records <level> <split>` answer names.
    pub(super) fn parse(detail: &str) -> Option<Self> {
        let mut words = detail.strip_prefix("records ")?.split(' ');
        let level = words.next()?.parse().ok()?;
        let split = words.next()?.parse().ok()?;
        Some(RecordTable { level, split })
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

    /// Every record key a call with the jtis whose hashes are `hashes` may
    /// touch when the table is `table`: its state, their shards, and the
    /// shards of the next splits and of undoing the last one.
    pub(super) fn record_keys(&self, table: RecordTable, hashes: &[u32]) -> Vec<String> {
        let mut shards: Vec<u64> = hashes.iter().map(|h| table.shard(*h)).collect();
        shards.extend(table.reshaped());
        shards.sort_unstable();
        shards.dedup();
        std::iter::once(self.records())
            .chain(shards.into_iter().map(|n| self.record_shard(n)))
            .collect()
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

impl OutboxKeys {
    /// Every key of the outbox.
    pub(super) fn all(&self) -> Vec<String> {
        vec![
            self.stream.clone(),
            self.due.clone(),
            self.attempts.clone(),
            self.latest.clone(),
            self.dead.clone(),
            self.next.clone(),
        ]
    }
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

    #[test]
    fn the_slot_function_is_redis_clusters() {
        // `CLUSTER KEYSLOT` answers, and the CRC16 check value.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("123456789"), 0x31C3);
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
    }

    /// Every key a script call of a client may be handed (and so every key
    /// it touches: debug builds refuse any other, see `rcall`) is in the
    /// client's slot; only the owner entry is elsewhere, and no script
    /// touches it.
    #[test]
    fn every_key_of_a_client_is_in_its_slot() {
        let names = KeyNames::new("statuslist:".to_owned()).unwrap();
        let list = ListId::parse("0123456789AB").unwrap();
        let jti = Jti::parse("00000000-0000-4000-8000-000000000000").unwrap();
        for client in ["acme", "a:b", "x.y-z_1"] {
            let c = ClientId::parse(client).unwrap();
            let ck = names.client(&c);
            let want = slot(&format!("{{{client}}}"));
            let mut keys = vec![ck.legacy_record(&jti), ck.current(ListFormat::Token)];
            for table in [
                RecordTable::default(),
                RecordTable { level: 3, split: 5 },
                RecordTable { level: 9, split: 0 },
            ] {
                keys.extend(ck.record_keys(table, &[0, 7, u32::MAX]));
            }
            for format in [ListFormat::Token, ListFormat::Bitstring] {
                keys.extend(ck.space(format).all());
            }
            keys.extend(ck.outbox().all());
            let lk = names.list(&c, &list, 3);
            keys.extend(lk.chunks.clone());
            keys.extend([lk.meta.clone(), lk.times.clone(), lk.legacy_times.clone()]);
            for key in &keys {
                assert_eq!(slot(key), want, "{key}");
            }
            assert_ne!(slot(&lk.owner), want, "the owner entry has no tag");
        }
    }

    /// The shard of a jti and the shards a split or merge touches, as
    /// `rec_shard`, `rec_split` and `rec_merge` of `records.lua` compute
    /// them.
    #[test]
    fn record_shards_follow_linear_hashing() {
        let t = |level, split| RecordTable { level, split };
        assert_eq!(t(0, 0).shard(12345), 0);
        // Level 1, shard 0 split already: 0 or 2; shard 1 not yet.
        assert_eq!(t(1, 1).shard(5), 1);
        assert_eq!(t(1, 1).shard(4), 0);
        assert_eq!(t(1, 1).shard(6), 2);
        assert_eq!(t(2, 3).shard(u32::MAX), 3);
        assert_eq!(t(2, 3).shard(u32::MAX - 1), 6);
        // Four splits ahead (source, target), through a new level.
        assert_eq!(t(0, 0).reshaped(), [0, 1, 0, 2, 1, 3, 0, 4]);
        // ...and the undoing of the last split.
        assert_eq!(t(1, 1).reshaped(), [1, 3, 0, 4, 1, 5, 2, 6, 0, 2]);
        assert_eq!(t(2, 0).reshaped(), [0, 4, 1, 5, 2, 6, 3, 7, 1, 3]);
        let ck = KeyNames::new("p:".to_owned())
            .unwrap()
            .client(&ClientId::parse("acme").unwrap());
        assert_eq!(
            ck.record_keys(t(0, 0), &[9, 9]),
            [
                "p:{acme}:r",
                "p:{acme}:r:0",
                "p:{acme}:r:1",
                "p:{acme}:r:2",
                "p:{acme}:r:3",
                "p:{acme}:r:4"
            ]
        );
        assert_eq!(RecordTable::parse("records 3 5"), Some(t(3, 5)));
        for bad in ["records 3", "records x 1", "current 0123456789AB", ""] {
            assert_eq!(RecordTable::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn shards_have_their_own_tags() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let c = ClientId::parse("acme").unwrap();
        assert_eq!(names.shard(&c, 0), names.client(&c));
        assert_eq!(names.shard(&c, 2).as_str(), "p:{acme/2}:");
        let list = ListId::parse("0123456789AB").unwrap();
        assert_eq!(names.list_in(&c, 0, &list, 1), names.list(&c, &list, 1));
        assert_eq!(
            names.list_in(&c, 3, &list, 1).meta,
            "p:{acme/3}:l:0123456789AB"
        );
        // Every key of a shard is in its slot, and the shards of a client
        // spread over slots.
        let slots: std::collections::HashSet<u16> =
            (0..16).map(|n| slot(names.shard(&c, n).as_str())).collect();
        assert!(slots.len() > 12, "{slots:?}");
        for n in 0..4 {
            let ck = names.shard(&c, n);
            let want = slot(ck.as_str());
            for key in ck
                .space(ListFormat::Token)
                .all()
                .into_iter()
                .chain(ck.outbox().all())
                .chain(ck.record_keys(RecordTable::default(), &[1, 2]))
                .chain([ck.current(ListFormat::Token), ck.meta(&list)])
            {
                assert_eq!(slot(&key), want, "{key}");
            }
        }
        // The owner entry names the shard; entries of earlier versions are
        // shard 0.
        assert_eq!(owner_value(&c, 0), "acme");
        assert_eq!(owner_value(&c, 5), "acme/5");
        assert_eq!(parse_owner("acme"), Some((c.clone(), 0)));
        assert_eq!(parse_owner("acme/5"), Some((c.clone(), 5)));
        for bad in ["acme/0", "acme/x", "acme/", "/1", "a b"] {
            assert_eq!(parse_owner(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_clients_shards_fall_in_different_slot_ranges() {
        for shards in [2u16, 3, 4, 16] {
            for name in ["acme", "issuer", "faults-t", "load", "c1", "gov.example"] {
                let c = ClientId::parse(name).unwrap();
                let ranges: std::collections::HashSet<u32> = (0..shards)
                    .map(|n| {
                        let tag = shard_tag(&c, n, shards);
                        assert!(tag.starts_with(name), "{tag}");
                        // The same tag every time.
                        assert_eq!(tag, shard_tag(&c, n, shards));
                        u32::from(slot(&tag)) * u32::from(shards) / SLOTS
                    })
                    .collect();
                assert_eq!(ranges.len(), usize::from(shards), "{name} over {shards}");
            }
        }
        // Shard 0 is the unsharded layout; a tag that lands right is kept.
        let c = ClientId::parse("acme").unwrap();
        assert_eq!(shard_tag(&c, 0, 3), "acme");
        assert_eq!(shard_tag(&c, 1, 1), "acme/1");
        let names = KeyNames::new("p:".to_owned()).unwrap().with_shards(3);
        assert_eq!(
            names.shard(&c, 2).as_str(),
            format!("p:{{{}}}:", shard_tag(&c, 2, 3))
        );
    }

    #[test]
    fn a_key_always_falls_in_the_same_shard() {
        assert_eq!(shard_of(b"anything", 1), 0);
        assert_eq!(shard_of(b"anything", 0), 0);
        let a = shard_of(b"order-1", 3);
        assert!(a < 3);
        assert_eq!(shard_of(b"order-1", 3), a);
        // SHA-256("abc") starts ba7816bf8f01cfea: fixed for every version.
        assert_eq!(u64::from(shard_of(b"abc", 1000)), 0xba7816bf8f01cfea % 1000);
        // Keys spread over every shard.
        let hit: std::collections::HashSet<u16> = (0..100)
            .map(|i| shard_of(format!("jti-{i}").as_bytes(), 3))
            .collect();
        assert_eq!(hit.len(), 3);
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
