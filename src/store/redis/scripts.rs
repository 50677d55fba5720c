//! The Lua scripts and their arguments, by name.
//!
//! Each multi-key step is one Lua script (`redis::Script`: `EVALSHA`, and on
//! `NOSCRIPT` a `SCRIPT LOAD` and a retry), so it is atomic across replicas.
//! A script's KEYS and ARGV are positional; here they are named structs
//! ([`AllocateArgs`], [`SetStatusArgs`], [`ClaimArgs`], [`RefReadArgs`],
//! [`RefChangeArgs`], [`ListEntriesArgs`], and the outbox's [`TakeArgs`],
//! [`DeliveredArgs`], [`RetryArgs`], [`DeadLetterArgs`] and
//! [`RedeliverArgs`]), each a [`ScriptArgs`] that
//! names its script and feeds them in the order the script declares them
//! (`local name = ARGV[n]` at its top); [`Scripts::call`] builds every call
//! from one. The `feed` functions are the only place positions exist on the
//! Rust side, and a unit test checks their names and order against the
//! script's declarations.
//!
//! This is also the one place the typed status-change rules
//! ([`TransitionRules`]) are encoded into the compact form the script reads.

use ::redis::{Script, ScriptInvocation, ToRedisArgs};

use super::facts::ListFacts;
use super::keys::{ClientKeys, ListKeys, OutboxKeys, SpaceKeys};
use super::layout;
use crate::domain::events::{EventId, EventKind, EventSeed};
use crate::domain::{
    AllocatorKey, Bits, ClientId, IssuanceRef, Jti, ListFormat, ListId, SortOrder, Status,
};
use crate::ports::{StoreError, StoreSettings, UnixMillis, UnixSeconds};
use crate::store::common::{EntryRule, KNOWN_VALUES, TransitionRules};

/// What every script shares (records, chunks, change times, commands cut
/// into calls): prepended to each, since a script cannot call another.
const PRELUDE: &str = include_str!("records.lua");

/// What the scripts that touch entry spaces share (their records, the
/// change indexes): prepended after [`PRELUDE`].
const SPACE_PRELUDE: &str = include_str!("space.lua");

/// The event outbox (its keys, recording an event, removing one): prepended
/// after [`SPACE_PRELUDE`] to the scripts that record events, and after
/// [`PRELUDE`] alone to the outbox's own scripts, which touch nothing else
/// (they use only its `call_chunked`).
const EVENTS_PRELUDE: &str = include_str!("events.lua");

/// The largest number handed to a script as is: Lua's numbers are doubles,
/// exact up to 2^53. Larger times and offsets mean "beyond anything
/// stored" and are clamped to this.
const LUA_EXACT: u64 = 1 << 53;

/// What every script starts with, before [`PRELUDE`]: the set of the keys
/// it declared (see "Declared keys" in `records.lua`), and `rcall`, which
/// every `redis.call` of the scripts becomes. In debug builds (the tests)
/// `rcall` refuses a key that was not declared, so a script that would
/// touch one fails its test; in release builds it is `redis.call` itself.
const HEADER: &str = "local DECLARED = {}\nfor _, k in ipairs(KEYS) do DECLARED[k] = true end\n";

/// `rcall` as release builds define it.
const RCALL: &str = "local rcall = redis.call\n";

/// `rcall` as debug builds define it: the key positions of every command
/// the scripts use (all arguments of `EXISTS`, `DEL` and `MGET`, none of
/// `PUBLISH`, the second of `XGROUP`, the streams of `XREADGROUP`, else the
/// first).
const CHECKED_RCALL: &str = r#"local function rcall(cmd, ...)
  local args = {...}
  local c = string.upper(cmd)
  local first, last = 1, 1
  if c == 'EXISTS' or c == 'DEL' or c == 'MGET' then
    last = #args
  elseif c == 'PUBLISH' then
    last = 0
  elseif c == 'XGROUP' then
    first, last = 2, 2
  elseif c == 'XREADGROUP' then
    for i = 1, #args do
      if string.upper(tostring(args[i])) == 'STREAMS' then
        first, last = i + 1, i + (#args - i) / 2
      end
    end
  end
  for i = first, last do
    if not DECLARED[args[i]] then
      error('undeclared key ' .. tostring(args[i]) .. ' in ' .. c)
    end
  end
  return redis.call(cmd, ...)
end
"#;

/// A script's whole text from its parts: the header, then the parts with
/// every `redis.call` turned into `rcall`.
fn script(parts: &[&str]) -> Script {
    let rcall = if cfg!(debug_assertions) {
        CHECKED_RCALL
    } else {
        RCALL
    };
    let body = parts.concat().replace("redis.call(", "rcall(");
    Script::new(&[HEADER, rcall, &body].concat())
}

/// The Lua scripts, hashed once.
pub(super) struct Scripts {
    allocate: Script,
    set_status: Script,
    claim: Script,
    mark: Script,
    read: Script,
    ref_read: Script,
    ref_change: Script,
    list: Script,
    take: Script,
    delivered: Script,
    retry: Script,
    dead_letter: Script,
    redeliver: Script,
}

impl Scripts {
    /// Loads (hashes) the scripts.
    pub(super) fn new() -> Self {
        let with_space = |own: &str| script(&[PRELUDE, SPACE_PRELUDE, own]);
        // The scripts that make changes may record their events.
        let recording = |own: &str| script(&[PRELUDE, SPACE_PRELUDE, EVENTS_PRELUDE, own]);
        let outbox = |own: &str| script(&[PRELUDE, EVENTS_PRELUDE, own]);
        Scripts {
            allocate: recording(include_str!("allocate.lua")),
            set_status: recording(include_str!("set_status.lua")),
            claim: script(&[PRELUDE, include_str!("claim.lua")]),
            mark: script(&[PRELUDE, include_str!("mark.lua")]),
            read: script(&[PRELUDE, include_str!("read.lua")]),
            ref_read: with_space(include_str!("ref_read.lua")),
            ref_change: recording(include_str!("ref_change.lua")),
            list: with_space(include_str!("list.lua")),
            take: outbox(include_str!("take.lua")),
            delivered: outbox(include_str!("delivered.lua")),
            retry: outbox(include_str!("retry.lua")),
            dead_letter: outbox(include_str!("dead_letter.lua")),
            redeliver: outbox(include_str!("redeliver.lua")),
        }
    }

    /// A call of the script `args` are for, with them.
    pub(super) fn call<A: ScriptArgs>(&self, args: &A) -> ScriptInvocation<'_> {
        let mut call = A::script(self).prepare_invoke();
        args.feed(&mut call);
        call
    }
}

/// A script's named arguments: which script they are for, and how they go
/// into a call of it.
pub(super) trait ScriptArgs {
    /// The script of `scripts` they are for.
    fn script(scripts: &Scripts) -> &Script;
    /// The script's KEYS and ARGV, in its order.
    fn feed(&self, s: &mut impl Sink);
}

/// Where a script's arguments go, one named key or argument at a time, in
/// the script's order. The names cost nothing in a real call; a test
/// records them.
pub(super) trait Sink {
    /// The next KEYS entry.
    fn key<T: ToRedisArgs>(&mut self, name: &'static str, value: T);
    /// The next ARGV entry.
    fn arg<T: ToRedisArgs>(&mut self, name: &'static str, value: T);
}

impl Sink for ScriptInvocation<'_> {
    fn key<T: ToRedisArgs>(&mut self, _name: &'static str, value: T) {
        ScriptInvocation::key(self, value);
    }

    fn arg<T: ToRedisArgs>(&mut self, _name: &'static str, value: T) {
        ScriptInvocation::arg(self, value);
    }
}

/// One request of an `allocate.lua` batch.
#[derive(Debug)]
pub(super) struct AllocateItem<'a> {
    /// The request's jti.
    pub jti: &'a Jti,
    /// Where earlier versions kept the jti's record.
    pub legacy_record_key: String,
    /// The request digest the record is compared with.
    pub digest: &'a [u8; 32],
    /// The request's clock.
    pub now: UnixSeconds,
    /// The record counts until then (exclusive).
    pub keep_until: UnixSeconds,
    /// How many numbers, all from one list.
    pub count: u32,
    /// The status expiry of the credentials; a list's retire-after keeps the
    /// latest.
    pub status_expiry: UnixSeconds,
    /// The ref the entries are bound to.
    pub issuance_ref: Option<&'a IssuanceRef>,
    /// The seed of its `entries.issued` event (recorded only with a ref).
    pub events: Option<EventSeed>,
}

/// The arguments of `allocate.lua`: for each item in turn, take `count`
/// numbers from the client's current list of `format` and, for what it has
/// no room for, from the candidate list, numbering them in the entry space.
#[derive(Debug)]
pub(super) struct AllocateArgs<'a> {
    /// The requests, in order.
    pub items: &'a [AllocateItem<'a>],
    /// The client's current-list pointer for `format`.
    pub current_key: &'a str,
    /// The client's key prefix; the script builds list keys from it.
    pub client_keys: &'a ClientKeys,
    /// Capacity and width of a list opened now.
    pub new_lists: &'a StoreSettings,
    /// Byte length of a list opened now (from `new_lists`).
    pub new_list_bytes: usize,
    /// Bytes per chunk of a list opened now (`layout::chunk_bytes`).
    pub new_chunk_bytes: usize,
    /// The list format.
    pub format: ListFormat,
    /// The client asking.
    pub client: &'a ClientId,
    /// A fresh id and key for a new list, once the script asked for one.
    pub candidate: Option<(ListId, AllocatorKey)>,
    /// Whether the candidate id's owner entry is claimed.
    pub claimed: bool,
    /// The list this process last allocated from here: the script leaves
    /// its facts out of the answer.
    pub known_list: Option<ListId>,
    /// The client's entry space of `format`.
    pub space: &'a SpaceKeys,
    /// Every other key the script may touch (see `declare` in
    /// `records.lua`), after the keys above.
    pub declared: &'a [String],
}

impl ScriptArgs for AllocateArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.allocate
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("current_key", self.current_key);
        for item in self.items {
            s.key("legacy_keys", &item.legacy_record_key);
        }
        for key in self.declared {
            s.key("declared_keys", key);
        }
        s.arg("new_capacity", self.new_lists.capacity);
        s.arg("new_bits", self.new_lists.bits.get());
        s.arg("format", self.format.name());
        s.arg("client_prefix", self.client_keys.as_str());
        s.arg(
            "candidate_list",
            self.candidate.as_ref().map_or("", |(id, _)| id.as_str()),
        );
        s.arg(
            "candidate_key",
            self.candidate
                .as_ref()
                .map_or(&[][..], |(_, k)| &k.as_bytes()[..]),
        );
        s.arg("claimed", if self.claimed { "1" } else { "0" });
        s.arg("client", self.client.as_str());
        s.arg("new_list_bytes", self.new_list_bytes);
        s.arg("new_chunk_bytes", self.new_chunk_bytes);
        s.arg(
            "known_list",
            self.known_list.as_ref().map_or("", |l| l.as_str()),
        );
        s.arg("space", self.space.prefix());
        for item in self.items {
            s.arg("item_field", &record_field(item.jti)[..]);
            s.arg("item_digest", &item.digest[..]);
            s.arg("item_now", item.now);
            s.arg("item_end", item.keep_until);
            s.arg("item_count", item.count);
            s.arg("item_expiry", item.status_expiry);
            s.arg("item_ref", item.issuance_ref.map_or("", |r| r.as_str()));
            // No event without a ref: nothing to send for it either.
            let seed = item.events.filter(|_| item.issuance_ref.is_some());
            s.arg(
                "item_events",
                event_arg(seed, Some(EventKind::EntriesIssued), self.format),
            );
        }
    }
}

/// The hash that chooses a jti's record shard: the first 4 bytes of its
/// record field ([`record_field`]), big-endian, as `field_hash` in
/// `records.lua` reads them.
pub(super) fn record_hash(jti: &Jti) -> u32 {
    let f = record_field(jti);
    u32::from_be_bytes([f[0], f[1], f[2], f[3]])
}

/// The field a jti's record is kept under in its client's record table
/// (`records.lua`): the first 4 bytes of the SHA-256 of the jti's 16 bytes,
/// which choose its shard, then those 16 bytes.
fn record_field(jti: &Jti) -> [u8; 20] {
    use sha2::{Digest, Sha256};
    let raw = jti.uuid_bytes();
    let mut field = [0u8; 20];
    field[..4].copy_from_slice(&Sha256::digest(raw)[..4]);
    field[4..].copy_from_slice(&raw);
    field
}

/// The arguments of `set_status.lua`: set entry `idx` (allocation number
/// `n`) of a list to `target`, by the status rules.
#[derive(Debug)]
pub(super) struct SetStatusArgs<'a> {
    /// The list's keys.
    pub keys: &'a ListKeys,
    /// The client's key prefix: its records are there.
    pub client_keys: &'a ClientKeys,
    /// The request's jti.
    pub jti: &'a Jti,
    /// Where earlier versions kept the jti's record.
    pub legacy_record_key: &'a str,
    /// The client asking (the script checks it owns the list).
    pub client: &'a ClientId,
    /// The entry's allocation number (the script checks it was handed out).
    pub n: u64,
    /// The entry's index.
    pub idx: u64,
    /// The list's format, for the entry's bit position.
    pub format: ListFormat,
    /// The list's width.
    pub bits: Bits,
    /// The list's capacity, for the entry's time bucket.
    pub capacity: u64,
    /// The status asked for.
    pub target: Status,
    /// The list's byte length (anything else is damage).
    pub byte_len: usize,
    /// Bytes per chunk of the list.
    pub chunk_bytes: usize,
    /// The request digest the record is compared with.
    pub digest: &'a [u8; 32],
    /// The request's clock.
    pub now: UnixSeconds,
    /// The record counts until then (exclusive).
    pub keep_until: UnixSeconds,
    /// The list's id: the message announcing a change to it.
    pub list: &'a ListId,
    /// Where a change is announced (`PUBLISH`); `None` announces nothing.
    pub channel: Option<&'a str>,
    /// The entry's seq in its entry space; `None` for a list opened before
    /// entry spaces (no change index records its changes).
    pub seq: Option<u64>,
    /// The entry space of the list's client and format.
    pub space: &'a SpaceKeys,
    /// The seed of the event a change made records; `None` records none.
    pub events: Option<EventSeed>,
    /// Every other key the script may touch (see `declare` in
    /// `records.lua`), after the keys above.
    pub declared: &'a [String],
}

impl ScriptArgs for SetStatusArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.set_status
    }

    fn feed(&self, s: &mut impl Sink) {
        let (chunk, offset) = layout::chunk_of_bit(
            bit_offset(self.format, self.bits, self.idx),
            self.chunk_bytes,
        );
        let slot = layout::time_slot(self.capacity, self.idx);
        s.key("meta_key", &self.keys.meta);
        s.key("times_key", &self.keys.times);
        s.key("legacy_times_key", &self.keys.legacy_times);
        s.key("legacy_record_key", self.legacy_record_key);
        for key in &self.keys.chunks {
            s.key("chunk_keys", key);
        }
        for key in self.declared {
            s.key("declared_keys", key);
        }
        s.arg("client", self.client.as_str());
        s.arg("n", self.n);
        s.arg("field_type", field_type(self.bits));
        s.arg("chunk", chunk + 1);
        s.arg("offset", offset);
        s.arg("value", self.target.value());
        s.arg("now", self.now);
        s.arg("idx", self.idx);
        s.arg(
            "rules",
            &encode_rules(&TransitionRules::new(self.target, self.bits))[..],
        );
        s.arg("digest", &self.digest[..]);
        s.arg("record_end", self.keep_until);
        s.arg("byte_len", self.byte_len);
        s.arg("chunk_bytes", self.chunk_bytes);
        s.arg("channel", self.channel.unwrap_or(""));
        s.arg("list_id", self.list.as_str());
        s.arg("record_field", &record_field(self.jti)[..]);
        s.arg("bucket", slot.bucket);
        s.arg("slot", slot.offset);
        s.arg("client_prefix", self.client_keys.as_str());
        s.arg("seq", self.seq.map_or_else(String::new, |q| q.to_string()));
        s.arg("space", self.space.prefix());
        s.arg(
            "events",
            event_arg(self.events, EventKind::for_status(self.target), self.format),
        );
    }
}

/// The arguments of `read.lua`: a list's metadata `fields` and its chunks,
/// from one moment.
#[derive(Debug)]
pub(super) struct ReadArgs<'a> {
    /// The list's keys.
    pub keys: &'a ListKeys,
    /// The metadata fields to read, in order.
    pub fields: &'a [&'a str],
}

impl ScriptArgs for ReadArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.read
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("meta_key", &self.keys.meta);
        for chunk in &self.keys.chunks {
            s.key("chunk_keys", chunk);
        }
        for field in self.fields {
            s.arg("item_field", *field);
        }
    }
}

/// The arguments of `mark.lua`: the same as [`ClaimArgs`] (the jti's
/// record shard, its request), marking the jti with its request.
#[derive(Debug)]
pub(super) struct MarkArgs<'a>(pub ClaimArgs<'a>);

impl ScriptArgs for MarkArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.mark
    }

    fn feed(&self, s: &mut impl Sink) {
        self.0.feed(s);
    }
}

/// The arguments of `claim.lua`: record a single-use jti unless a live
/// record of it exists.
#[derive(Debug)]
pub(super) struct ClaimArgs<'a> {
    /// The client's key prefix: its records are there.
    pub client_keys: &'a ClientKeys,
    /// The request's jti.
    pub jti: &'a Jti,
    /// Where earlier versions kept the jti's record.
    pub legacy_record_key: &'a str,
    /// The request digest (kept in the record).
    pub digest: &'a [u8; 32],
    /// The request's clock.
    pub now: UnixSeconds,
    /// The record counts until then (exclusive).
    pub keep_until: UnixSeconds,
    /// Every other key the script may touch (see `declare` in
    /// `records.lua`), after the keys above.
    pub declared: &'a [String],
}

impl ScriptArgs for ClaimArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.claim
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("legacy_record_key", self.legacy_record_key);
        for key in self.declared {
            s.key("declared_keys", key);
        }
        s.arg("client_prefix", self.client_keys.as_str());
        s.arg("record_field", &record_field(self.jti)[..]);
        s.arg("digest", &self.digest[..]);
        s.arg("now", self.now);
        s.arg("record_end", self.keep_until);
    }
}

/// The arguments of `ref_read.lua`: the runs of entries bound to a ref, and
/// the stamp they were read at.
#[derive(Debug)]
pub(super) struct RefReadArgs<'a> {
    /// The client's key prefix: its records are there.
    pub client_keys: &'a ClientKeys,
    /// The entry space of the client and format.
    pub space: &'a SpaceKeys,
    /// The ref.
    pub issuance_ref: &'a IssuanceRef,
    /// The request's jti (its record is looked at first).
    pub jti: &'a Jti,
    /// Where earlier versions kept the jti's record.
    pub legacy_record_key: &'a str,
    /// The request digest the record is compared with.
    pub digest: &'a [u8; 32],
    /// The request's clock.
    pub now: UnixSeconds,
    /// Every other key the script may touch (see `declare` in
    /// `records.lua`), after the keys above.
    pub declared: &'a [String],
}

impl ScriptArgs for RefReadArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.ref_read
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("legacy_record_key", self.legacy_record_key);
        for key in self.declared {
            s.key("declared_keys", key);
        }
        s.arg("client_prefix", self.client_keys.as_str());
        s.arg("space", self.space.prefix());
        s.arg("ref", self.issuance_ref.as_str());
        s.arg("record_field", &record_field(self.jti)[..]);
        s.arg("digest", &self.digest[..]);
        s.arg("now", self.now);
    }
}

/// One list of a change by ref: its keys, the facts that place its entries,
/// and its entries (index, seq).
#[derive(Debug)]
pub(super) struct RefChangeList {
    /// The list's id.
    pub list: ListId,
    /// Its keys.
    pub keys: ListKeys,
    /// Its width.
    pub bits: Bits,
    /// Its byte length (anything else is damage).
    pub byte_len: usize,
    /// Bytes per chunk.
    pub chunk_bytes: usize,
    /// The seq of its first entry (allocation number 0).
    pub base: u64,
    /// Its entries as the script reads them (see `ref_change.lua`).
    entries: Vec<u8>,
}

/// Bytes per entry of a [`RefChangeList`] (`ENTRY_SIZE` in the script).
const REF_ENTRY_BYTES: usize = 18;

impl RefChangeList {
    /// The list `list`, whose facts are `facts` and keys `keys`, and its
    /// entries (index, seq).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a position beyond what the script's
    /// fields hold (a list larger than any list the store makes), or a list
    /// outside the entry spaces (no base).
    pub(super) fn new(
        list: ListId,
        keys: ListKeys,
        facts: &ListFacts,
        entries: &[(u64, u64)],
    ) -> Result<Self, StoreError> {
        let too_large = || StoreError::Corrupt(format!("list {list}: an entry beyond its fields"));
        let base = facts
            .base
            .ok_or_else(|| StoreError::Corrupt(format!("list {list} is not in an entry space")))?;
        let mut packed = Vec::with_capacity(entries.len() * REF_ENTRY_BYTES);
        for &(idx, seq) in entries {
            let bit = bit_offset(facts.format, facts.bits, idx);
            let (chunk, offset) = layout::chunk_of_bit(bit, facts.chunk_bytes);
            let slot = layout::time_slot(facts.capacity, idx);
            let chunk = u16::try_from(chunk + 1).map_err(|_| too_large())?;
            let offset = u32::try_from(offset).map_err(|_| too_large())?;
            let bucket = u32::try_from(slot.bucket).map_err(|_| too_large())?;
            if seq >= 1 << 48 {
                return Err(too_large());
            }
            packed.extend_from_slice(&chunk.to_be_bytes());
            packed.extend_from_slice(&offset.to_be_bytes());
            packed.extend_from_slice(&bucket.to_be_bytes());
            packed.extend_from_slice(&slot.offset.to_be_bytes());
            packed.extend_from_slice(&seq.to_be_bytes()[2..]);
        }
        Ok(RefChangeList {
            list,
            keys,
            bits: facts.bits,
            byte_len: facts.byte_len,
            chunk_bytes: facts.chunk_bytes,
            base,
            entries: packed,
        })
    }
}

/// The arguments of `ref_change.lua`: set every entry of a ref's lists to
/// `target`, unless the ref moved past `stamp`.
#[derive(Debug)]
pub(super) struct RefChangeArgs<'a> {
    /// The client's key prefix: its records are there.
    pub client_keys: &'a ClientKeys,
    /// The entry space of the client and format.
    pub space: &'a SpaceKeys,
    /// The ref.
    pub issuance_ref: &'a IssuanceRef,
    /// The request's jti.
    pub jti: &'a Jti,
    /// Where earlier versions kept the jti's record.
    pub legacy_record_key: &'a str,
    /// The request digest the record is compared with.
    pub digest: &'a [u8; 32],
    /// The request's clock: the time of every change.
    pub now: UnixSeconds,
    /// The record counts until then (exclusive).
    pub keep_until: UnixSeconds,
    /// The ref's last binding when the entries were read.
    pub stamp: u64,
    /// The status asked for.
    pub target: Status,
    /// Where each changed list is announced; `None` announces nothing.
    pub channel: Option<&'a str>,
    /// The lists and their entries, in allocation order.
    pub lists: &'a [RefChangeList],
    /// The format of the lists (the space's).
    pub format: ListFormat,
    /// The seed of the events of the entries changed; `None` records none.
    pub events: Option<EventSeed>,
    /// Every other key the script may touch (see `declare` in
    /// `records.lua`), after the keys above.
    pub declared: &'a [String],
}

impl ScriptArgs for RefChangeArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.ref_change
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("legacy_record_key", self.legacy_record_key);
        for l in self.lists {
            s.key("list_keys", &l.keys.meta);
            s.key("list_keys", &l.keys.times);
            for chunk in &l.keys.chunks {
                s.key("list_keys", chunk);
            }
        }
        for key in self.declared {
            s.key("declared_keys", key);
        }
        s.arg("client_prefix", self.client_keys.as_str());
        s.arg("space", self.space.prefix());
        s.arg("ref", self.issuance_ref.as_str());
        s.arg("record_field", &record_field(self.jti)[..]);
        s.arg("digest", &self.digest[..]);
        s.arg("now", self.now);
        s.arg("record_end", self.keep_until);
        s.arg("stamp", self.stamp);
        s.arg("value", self.target.value());
        s.arg("channel", self.channel.unwrap_or(""));
        s.arg(
            "events",
            event_arg(self.events, EventKind::for_status(self.target), self.format),
        );
        for l in self.lists {
            s.arg("item_list", l.list.as_str());
            s.arg("item_field_type", field_type(l.bits));
            s.arg(
                "item_rules",
                &encode_rules(&TransitionRules::new(self.target, l.bits))[..],
            );
            s.arg("item_byte_len", l.byte_len);
            s.arg("item_chunk_bytes", l.chunk_bytes);
            s.arg("item_chunks", l.keys.chunks.len());
            s.arg("item_entries", &l.entries[..]);
            s.arg("item_base", l.base);
        }
    }
}

/// The arguments of `list.lua`: one page of an entry space's listing.
#[derive(Debug)]
pub(super) struct ListEntriesArgs<'a> {
    /// The entry space.
    pub space: &'a SpaceKeys,
    /// The statuses listed, as a mask (1 VALID, 2 INVALID, 4 SUSPENDED).
    pub mask: u8,
    /// Only entries bound to this ref.
    pub issuance_ref: Option<&'a IssuanceRef>,
    /// Only entries of this list: its id and base seq.
    pub list: Option<(ListId, u64)>,
    /// Only entries updated at or after this.
    pub since: Option<UnixSeconds>,
    /// Only entries updated at or before this.
    pub until: Option<UnixSeconds>,
    /// The direction.
    pub order: SortOrder,
    /// Matching entries before the page.
    pub offset: u64,
    /// Entries on the page at most.
    pub limit: u32,
    /// Every other key the script may touch (see `declare` in
    /// `records.lua`), after the keys above.
    pub declared: &'a [String],
}

impl ScriptArgs for ListEntriesArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.list
    }

    fn feed(&self, s: &mut impl Sink) {
        let time = |t: Option<u64>| t.map_or_else(String::new, |t| t.min(LUA_EXACT).to_string());
        s.key("state_key", self.space.state());
        for key in self.declared {
            s.key("declared_keys", key);
        }
        s.arg("space", self.space.prefix());
        s.arg("mask", self.mask);
        s.arg("ref", self.issuance_ref.map_or("", |r| r.as_str()));
        s.arg(
            "list_id",
            self.list.as_ref().map_or("", |(l, _)| l.as_str()),
        );
        s.arg(
            "list_base",
            self.list.map_or_else(String::new, |(_, b)| b.to_string()),
        );
        s.arg("since", time(self.since));
        s.arg("upto", time(self.until));
        s.arg("order", self.order.name());
        s.arg("offset", self.offset.min(LUA_EXACT));
        s.arg("limit", self.limit);
    }
}

/// The arguments of `take.lua`: lease up to `max` of one client's events.
#[derive(Debug)]
pub(super) struct TakeArgs<'a> {
    /// The client's outbox.
    pub keys: &'a OutboxKeys,
    /// Who takes them (the group's consumer).
    pub consumer: &'a str,
    /// The time of the take.
    pub now_ms: UnixMillis,
    /// How long they are held.
    pub lease_ms: u64,
    /// When an event held back is looked at again, from now.
    pub recheck_ms: u64,
    /// The most events handed out.
    pub max: usize,
}

impl ScriptArgs for TakeArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.take
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("stream", &self.keys.stream);
        s.key("due_key", &self.keys.due);
        s.key("attempts_key", &self.keys.attempts);
        s.arg("consumer", self.consumer);
        // Due times are sums of these: each is kept exact in Lua, and a
        // clamped lease only means "held beyond any horizon".
        s.arg("now", self.now_ms.min(LUA_EXACT / 4));
        s.arg("lease", self.lease_ms.min(LUA_EXACT / 4));
        s.arg("recheck", self.recheck_ms.min(LUA_EXACT / 4));
        s.arg("max", self.max);
    }
}

/// The arguments of `delivered.lua`: the event is gone.
#[derive(Debug)]
pub(super) struct DeliveredArgs<'a> {
    /// The client's outbox.
    pub keys: &'a OutboxKeys,
    /// The event's stream id (a lease's handle).
    pub handle: &'a str,
}

impl ScriptArgs for DeliveredArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.delivered
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("stream", &self.keys.stream);
        s.key("due_key", &self.keys.due);
        s.key("attempts_key", &self.keys.attempts);
        s.key("latest_key", &self.keys.latest);
        s.key("next_key", &self.keys.next);
        s.arg("sid", self.handle);
    }
}

/// The arguments of `retry.lua`: schedule a held event again.
#[derive(Debug)]
pub(super) struct RetryArgs<'a> {
    /// The client's outbox.
    pub keys: &'a OutboxKeys,
    /// The event's stream id (a lease's handle).
    pub handle: &'a str,
    /// The attempt that failed.
    pub attempt: u32,
    /// When it is due again.
    pub retry_at: UnixMillis,
}

impl ScriptArgs for RetryArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.retry
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("due_key", &self.keys.due);
        s.key("attempts_key", &self.keys.attempts);
        s.arg("sid", self.handle);
        s.arg("attempt", self.attempt);
        s.arg("retry_at", self.retry_at.min(LUA_EXACT));
    }
}

/// The arguments of `dead_letter.lua`: give a held event up.
#[derive(Debug)]
pub(super) struct DeadLetterArgs<'a> {
    /// The client's outbox.
    pub keys: &'a OutboxKeys,
    /// The event's stream id (a lease's handle).
    pub handle: &'a str,
    /// The attempt that failed.
    pub attempt: u32,
    /// When it was given up on.
    pub dead_at: UnixMillis,
    /// The last attempt's error.
    pub error: &'a str,
}

impl ScriptArgs for DeadLetterArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.dead_letter
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("stream", &self.keys.stream);
        s.key("due_key", &self.keys.due);
        s.key("attempts_key", &self.keys.attempts);
        s.key("latest_key", &self.keys.latest);
        s.key("dead_key", &self.keys.dead);
        s.key("next_key", &self.keys.next);
        s.arg("sid", self.handle);
        s.arg("attempt", self.attempt);
        // Kept as text: never computed with, and exact whatever its size.
        s.arg("dead_at", self.dead_at);
        s.arg("error_text", self.error);
    }
}

/// The arguments of `redeliver.lua`: make dead events waiting again.
#[derive(Debug)]
pub(super) struct RedeliverArgs<'a> {
    /// The client's outbox.
    pub keys: &'a OutboxKeys,
    /// The events, by id.
    pub ids: &'a [EventId],
}

impl ScriptArgs for RedeliverArgs<'_> {
    fn script(scripts: &Scripts) -> &Script {
        &scripts.redeliver
    }

    fn feed(&self, s: &mut impl Sink) {
        s.key("stream", &self.keys.stream);
        s.key("dead_key", &self.keys.dead);
        let ids: Vec<u8> = self.ids.iter().flat_map(|id| id.to_bytes()).collect();
        s.arg("ids", ids);
    }
}

/// The event argument of a script that records events (`ev_seed` in
/// `events.lua`): empty when it records none (no seed, or a status no event
/// reports), else the seed's 12 bytes (ms u48 and nonce u48: the first 12
/// bytes of every id it mints, the script appends the ordinal), the kind's
/// code and the format's name.
fn event_arg(seed: Option<EventSeed>, kind: Option<EventKind>, format: ListFormat) -> Vec<u8> {
    let (Some(seed), Some(kind)) = (seed, kind) else {
        return Vec::new();
    };
    let mut arg = Vec::with_capacity(13 + format.name().len());
    arg.extend_from_slice(&seed.id(0).to_bytes()[..12]);
    arg.push(kind.code());
    arg.extend_from_slice(format.name().as_bytes());
    arg
}

/// The BITFIELD type of an entry `bits` wide (unsigned).
fn field_type(bits: Bits) -> &'static str {
    match bits {
        Bits::One => "u1",
        Bits::Two => "u2",
        Bits::Four => "u4",
        Bits::Eight => "u8",
    }
}

/// The BITFIELD offset of entry `idx`. BITFIELD numbers bits from the most
/// significant bit of byte 0 and reads a field big-endian, so the entry
/// whose value sits `shift` bits above the low end of its byte starts here,
/// in either bit order.
fn bit_offset(format: ListFormat, bits: Bits, idx: u64) -> u64 {
    let (byte, shift) = format.layout().byte_and_shift(bits, idx);
    byte * 8 + u64::from(8 - shift - bits.get())
}

/// The script's letter for a rule.
const fn rule_letter(rule: EntryRule) -> u8 {
    match rule {
        EntryRule::Unchanged => b'U',
        EntryRule::Change => b'C',
        EntryRule::NotAllowed => b'N',
        EntryRule::TooWide => b'W',
    }
}

/// The rules as the script reads them: one letter per current value.
fn encode_rules(rules: &TransitionRules) -> [u8; KNOWN_VALUES] {
    rules.by_current().map(rule_letter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StatusList;
    use crate::store::redis::keys::KeyNames;
    use crate::store::redis::replies::StoredFacts;

    /// Records the names fed, in order.
    #[derive(Debug, Default)]
    struct Names {
        keys: Vec<String>,
        argv: Vec<String>,
    }

    impl Sink for Names {
        fn key<T: ToRedisArgs>(&mut self, name: &'static str, _value: T) {
            self.keys.push(name.to_owned());
        }

        fn arg<T: ToRedisArgs>(&mut self, name: &'static str, _value: T) {
            self.argv.push(name.to_owned());
        }
    }

    /// The position and name of a `local name = {unpack(TABLE, n)}` line.
    fn unpacked_rest(code: &str, table: &str) -> Option<(usize, String)> {
        let (name, pos) = code
            .strip_prefix("local ")?
            .split_once(&format!(" = {{unpack({table}, "))?;
        Some((pos.trim_end_matches(")}").parse().unwrap(), name.to_owned()))
    }

    /// Two keys to declare.
    fn two_declared() -> [String; 2] {
        ["p:{acme}:x".to_owned(), "p:{acme}:y".to_owned()]
    }

    /// For a script with no variable part but the declared keys (the rest
    /// of KEYS, given [`two_declared`]): `args` feed exactly the keys and
    /// arguments `lua` declares, in its order, and `argv_len` arguments in
    /// all.
    fn assert_fixed_layout(args: &impl ScriptArgs, lua: &str, argv_len: usize) {
        let mut fed = Names::default();
        args.feed(&mut fed);
        let (script, rest) = declared(lua);
        let mut keys = script.keys.clone();
        // The outbox's own scripts are handed all their keys by name.
        if let Some(rest) = rest {
            assert_eq!(rest, "declared_keys");
            keys.extend([rest.clone(), rest]);
        }
        assert_eq!(fed.keys, keys);
        assert_eq!(fed.argv, script.argv);
        assert_eq!(fed.argv.len(), argv_len);
    }

    /// The names a script declares with `local name = KEYS[n]` or
    /// `local name = ARGV[n]` (optionally in `tonumber(…)`), by position,
    /// and the name of the rest of KEYS (`local name = {unpack(KEYS, n)}`,
    /// n right after the last declared key); and that it reads no position
    /// anywhere else.
    fn declared(lua: &str) -> (Names, Option<String>) {
        let mut keys = Vec::new();
        let mut argv = Vec::new();
        let mut rest = None;
        let mut argv_rest: Option<(usize, String)> = None;
        for line in lua.lines() {
            let code = line.split("--").next().unwrap_or("").trim();
            if let Some(r) = unpacked_rest(code, "KEYS") {
                rest = Some(r);
                continue;
            }
            if let Some(r) = unpacked_rest(code, "ARGV") {
                argv_rest = Some(r);
                continue;
            }
            if !(code.contains("KEYS[") || code.contains("ARGV[")) {
                continue;
            }
            let (name, rhs) = code
                .strip_prefix("local ")
                .and_then(|d| d.split_once(" = "))
                .unwrap_or_else(|| panic!("a position read outside a declaration: {line}"));
            let rhs = rhs
                .strip_prefix("tonumber(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or(rhs);
            let (table, pos) = rhs
                .strip_suffix(']')
                .and_then(|r| r.split_once('['))
                .unwrap_or_else(|| panic!("not a declaration: {line}"));
            let pos: usize = pos.parse().unwrap_or_else(|_| panic!("{line}"));
            let list = match table {
                "KEYS" => &mut keys,
                "ARGV" => &mut argv,
                _ => panic!("not a declaration: {line}"),
            };
            list.push((pos, name.to_owned()));
        }
        let in_order = |mut v: Vec<(usize, String)>| -> Vec<String> {
            v.sort();
            for (i, (pos, name)) in v.iter().enumerate() {
                assert_eq!(
                    *pos,
                    i + 1,
                    "position {pos} ({name}) declared out of order or twice"
                );
            }
            v.into_iter().map(|(_, n)| n).collect()
        };
        let names = Names {
            keys: in_order(keys),
            argv: in_order(argv),
        };
        if let Some((pos, _)) = &rest {
            assert_eq!(
                *pos,
                names.keys.len() + 1,
                "the rest of KEYS starts after the last key"
            );
        }
        // The rest of ARGV is items: the `-- item_<name>:` comments after
        // its declaration name their values, in order.
        let mut names = names;
        if let Some((pos, _)) = &argv_rest {
            assert_eq!(
                *pos,
                names.argv.len() + 1,
                "the rest of ARGV starts after the last argument"
            );
            for line in lua.lines() {
                if let Some(name) = line.trim().strip_prefix("-- item_") {
                    let name = name.split(':').next().unwrap_or("");
                    names.argv.push(format!("item_{name}"));
                }
            }
        }
        (names, rest.map(|(_, n)| n))
    }

    /// The preludes read no position: they are functions the scripts call.
    #[test]
    fn the_preludes_read_no_argument() {
        for prelude in [PRELUDE, SPACE_PRELUDE, EVENTS_PRELUDE] {
            let (names, rest) = declared(prelude);
            assert!(names.keys.is_empty() && names.argv.is_empty() && rest.is_none());
            for line in prelude.lines() {
                let code = line.split("--").next().unwrap_or("");
                assert!(!code.contains("KEYS") && !code.contains("ARGV"), "{line}");
            }
        }
    }

    /// The declared arguments of a script with items, then one run of item
    /// values per item (`items` of them), as the script's declarations say.
    fn with_items(script: &Names, items: usize) -> Vec<String> {
        let items_at = script
            .argv
            .iter()
            .position(|n| n.starts_with("item_"))
            .unwrap();
        let (common, per_item) = script.argv.split_at(items_at);
        let mut argv = common.to_vec();
        for _ in 0..items {
            argv.extend(per_item.iter().cloned());
        }
        argv
    }

    #[test]
    fn a_record_field_is_the_jtis_hash_then_the_jti() {
        let jti = Jti::from_name("j");
        let field = record_field(&jti);
        assert_eq!(&field[4..], &jti.uuid_bytes());
        use sha2::{Digest, Sha256};
        assert_eq!(&field[..4], &Sha256::digest(jti.uuid_bytes())[..4]);
        assert_ne!(record_field(&Jti::from_name("k"))[..4], field[..4]);
    }

    #[test]
    fn allocate_args_follow_the_script() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let client = ClientId::parse("acme").unwrap();
        let ck = names.client(&client);
        let jti = Jti::from_name("j");
        let item = || AllocateItem {
            jti: &jti,
            legacy_record_key: "r".to_owned(),
            digest: &[0; 32],
            now: 1,
            keep_until: 2,
            count: 1,
            status_expiry: 3,
            issuance_ref: None,
            events: Some(EventSeed { ms: 1, nonce: 2 }),
        };
        let items = [item(), item()];
        let space = ck.space(ListFormat::Token);
        let args = AllocateArgs {
            items: &items,
            current_key: "c",
            client_keys: &ck,
            new_lists: &StoreSettings::default(),
            new_list_bytes: 1,
            new_chunk_bytes: 1,
            format: ListFormat::Token,
            client: &client,
            candidate: Some((ListId::random(), AllocatorKey::random())),
            claimed: true,
            known_list: None,
            space: &space,
            declared: &two_declared(),
        };
        let mut fed = Names::default();
        args.feed(&mut fed);
        let lua = include_str!("allocate.lua");
        let (script, rest) = declared(lua);
        let rest = rest.expect("the legacy keys are the rest of KEYS");
        let mut keys = script.keys.clone();
        keys.extend([rest.clone(), rest]);
        keys.extend(std::iter::repeat_n("declared_keys".to_owned(), 2));
        assert_eq!(fed.keys, keys);
        assert_eq!(fed.argv, with_items(&script, 2));
        let per_item = with_items(&script, 1).len() - with_items(&script, 0).len();
        assert!(lua.contains(&format!("local ITEM_ARGS = {per_item}")));
    }

    #[test]
    fn set_status_args_follow_the_script() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let client = ClientId::parse("acme").unwrap();
        let list = ListId::random();
        let keys = names.list(&client, &list, 2);
        let jti = Jti::from_name("j");
        let args = SetStatusArgs {
            keys: &keys,
            client_keys: &names.client(&client),
            jti: &jti,
            legacy_record_key: "r",
            client: &client,
            n: 0,
            idx: 0,
            format: ListFormat::Token,
            bits: Bits::Two,
            capacity: 131_072,
            target: Status::Invalid,
            byte_len: 32_768,
            chunk_bytes: 32_762,
            digest: &[0; 32],
            now: 1,
            keep_until: 2,
            list: &list,
            channel: Some("p:changes"),
            seq: Some(7),
            space: &names.client(&client).space(ListFormat::Token),
            events: Some(EventSeed { ms: 1, nonce: 2 }),
            declared: &two_declared(),
        };
        let mut fed = Names::default();
        args.feed(&mut fed);
        let (script, rest) = declared(include_str!("set_status.lua"));
        let rest = rest.expect("the chunks are the rest of KEYS");
        let mut expected = script.keys.clone();
        expected.extend([rest.clone(), rest]);
        expected.extend(std::iter::repeat_n("declared_keys".to_owned(), 2));
        assert_eq!(fed.keys, expected);
        assert_eq!(fed.argv, script.argv);
        assert_eq!(fed.argv.len(), 22);
    }

    #[test]
    fn read_args_follow_the_script() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let client = ClientId::parse("acme").unwrap();
        let keys = names.list(&client, &ListId::random(), 2);
        let args = ReadArgs {
            keys: &keys,
            fields: &["a", "b", "c"],
        };
        let mut fed = Names::default();
        args.feed(&mut fed);
        let (script, rest) = declared(include_str!("read.lua"));
        let rest = rest.expect("the chunks are the rest of KEYS");
        let mut keys = script.keys.clone();
        keys.extend([rest.clone(), rest]);
        assert_eq!(fed.keys, keys);
        assert_eq!(fed.argv, with_items(&script, 3));
    }

    #[test]
    fn claim_args_follow_the_script() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let client = ClientId::parse("acme").unwrap();
        let jti = Jti::from_name("j");
        let args = ClaimArgs {
            client_keys: &names.client(&client),
            jti: &jti,
            legacy_record_key: "r",
            digest: &[0; 32],
            now: 1,
            keep_until: 2,
            declared: &two_declared(),
        };
        assert_fixed_layout(&args, include_str!("claim.lua"), 5);
        assert_fixed_layout(&MarkArgs(args), include_str!("mark.lua"), 5);
    }

    #[test]
    fn ref_read_args_follow_the_script() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let client = ClientId::parse("acme").unwrap();
        let ck = names.client(&client);
        let jti = Jti::from_name("j");
        let r = IssuanceRef::parse("order 1").unwrap();
        let args = RefReadArgs {
            client_keys: &ck,
            space: &ck.space(ListFormat::Token),
            issuance_ref: &r,
            jti: &jti,
            legacy_record_key: "r",
            digest: &[0; 32],
            now: 1,
            declared: &two_declared(),
        };
        assert_fixed_layout(&args, include_str!("ref_read.lua"), 6);
    }

    #[test]
    fn ref_change_args_follow_the_script() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let client = ClientId::parse("acme").unwrap();
        let ck = names.client(&client);
        let jti = Jti::from_name("j");
        let r = IssuanceRef::parse("order 1").unwrap();
        let (a, b) = (ListId::random(), ListId::random());
        let facts = |bits: Bits, capacity: u64, chunk_bytes: usize| {
            let stored = StoredFacts {
                format: ListFormat::Token,
                bits,
                capacity,
                key: AllocatorKey::from_bytes([1; 32]),
                chunk_bytes: Some(chunk_bytes),
                base: Some(0),
            };
            ListFacts::new(&a, client.clone(), stored).unwrap()
        };
        let (big, small) = (facts(Bits::Two, 131_072, 32_762), facts(Bits::One, 100, 13));
        let lists = [
            RefChangeList::new(a, names.list(&client, &a, 2), &big, &[(0, 0), (131_071, 1)])
                .unwrap(),
            RefChangeList::new(b, names.list(&client, &b, 1), &small, &[(5, 2)]).unwrap(),
        ];
        assert_eq!(lists[0].entries.len(), 2 * REF_ENTRY_BYTES);
        // The last entry of the big list: chunk 2, its bit in that chunk,
        // bucket 127 at 1023, seq 1.
        let last = &lists[0].entries[REF_ENTRY_BYTES..];
        assert_eq!(&last[..2], &2u16.to_be_bytes());
        let bit = bit_offset(ListFormat::Token, Bits::Two, 131_071) - 32_762 * 8;
        assert_eq!(&last[2..6], &(bit as u32).to_be_bytes());
        assert_eq!(&last[6..10], &127u32.to_be_bytes());
        assert_eq!(&last[10..12], &1023u16.to_be_bytes());
        assert_eq!(&last[12..], &[0, 0, 0, 0, 0, 1]);
        let space = ck.space(ListFormat::Token);
        let args = RefChangeArgs {
            client_keys: &ck,
            space: &space,
            issuance_ref: &r,
            jti: &jti,
            legacy_record_key: "r",
            digest: &[0; 32],
            now: 1,
            keep_until: 2,
            stamp: 3,
            target: Status::Invalid,
            channel: None,
            lists: &lists,
            format: ListFormat::Token,
            events: None,
            declared: &two_declared(),
        };
        let mut fed = Names::default();
        args.feed(&mut fed);
        let lua = include_str!("ref_change.lua");
        let (script, rest) = declared(lua);
        let rest = rest.expect("the lists' keys are the rest of KEYS");
        let mut keys = script.keys.clone();
        // Metadata, times and 2 chunks; metadata, times and 1 chunk.
        keys.extend(std::iter::repeat_n(rest, 4 + 3));
        // Then the other keys it may touch.
        keys.extend(std::iter::repeat_n("declared_keys".to_owned(), 2));
        assert_eq!(fed.keys, keys);
        assert_eq!(fed.argv, with_items(&script, 2));
        let per_item = with_items(&script, 1).len() - with_items(&script, 0).len();
        assert!(lua.contains(&format!("local ITEM_ARGS = {per_item}")));
        assert!(lua.contains(&format!("local ENTRY_SIZE = {REF_ENTRY_BYTES}")));
        let too_far = RefChangeList::new(a, names.list(&client, &a, 1), &small, &[(5, 1 << 48)]);
        assert!(matches!(too_far, Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn list_args_follow_the_script() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let client = ClientId::parse("acme").unwrap();
        let space = names.client(&client).space(ListFormat::Token);
        let args = ListEntriesArgs {
            space: &space,
            mask: 7,
            issuance_ref: None,
            list: Some((ListId::random(), 3)),
            since: Some(u64::MAX),
            until: None,
            order: SortOrder::Desc,
            offset: u64::MAX,
            limit: 10,
            declared: &two_declared(),
        };
        assert_fixed_layout(&args, include_str!("list.lua"), 10);
    }

    #[test]
    fn outbox_args_follow_the_scripts() {
        let names = KeyNames::new("p:".to_owned()).unwrap();
        let keys = names.client(&ClientId::parse("acme").unwrap()).outbox();
        let take = TakeArgs {
            keys: &keys,
            consumer: "c",
            now_ms: 1,
            lease_ms: 2,
            recheck_ms: 3,
            max: 4,
        };
        assert_fixed_layout(&take, include_str!("take.lua"), 5);
        let delivered = DeliveredArgs {
            keys: &keys,
            handle: "1-0",
        };
        assert_fixed_layout(&delivered, include_str!("delivered.lua"), 1);
        let retry = RetryArgs {
            keys: &keys,
            handle: "1-0",
            attempt: 1,
            retry_at: 2,
        };
        assert_fixed_layout(&retry, include_str!("retry.lua"), 3);
        let dead = DeadLetterArgs {
            keys: &keys,
            handle: "1-0",
            attempt: 1,
            dead_at: 2,
            error: "HTTP 500",
        };
        assert_fixed_layout(&dead, include_str!("dead_letter.lua"), 4);
        let id = EventSeed { ms: 1, nonce: 2 }.id(3);
        let redeliver = RedeliverArgs {
            keys: &keys,
            ids: &[id, id],
        };
        assert_fixed_layout(&redeliver, include_str!("redeliver.lua"), 1);
    }

    /// The event argument carries what `ev_seed` reads: the ids the script
    /// mints (12 bytes, then the ordinal) are the seed's, and nothing is
    /// sent without a seed or for a status no event reports.
    #[test]
    fn the_event_argument_mints_the_seeds_ids() {
        let seed = EventSeed {
            ms: 1_700_000_000_123,
            nonce: 0xABCD_EF01_2345,
        };
        let arg = event_arg(
            Some(seed),
            Some(EventKind::EntrySuspended),
            ListFormat::Bitstring,
        );
        for ordinal in [0u32, 1, 299] {
            let mut id = arg[..12].to_vec();
            id.extend_from_slice(&ordinal.to_be_bytes());
            assert_eq!(id, seed.id(ordinal).to_bytes());
        }
        assert_eq!(arg[12], EventKind::EntrySuspended.code());
        assert_eq!(&arg[13..], b"bitstring");
        let lua = include_str!("events.lua");
        assert!(lua.contains("seed = string.sub(arg, 1, 12)"));
        assert!(lua.contains("kind = string.byte(arg, 13)"));
        assert!(lua.contains("format = string.sub(arg, 14)"));
        assert!(lua.contains("ev.seed .. struct.pack('>I4', ordinal)"));
        assert!(event_arg(None, Some(EventKind::EntryRevoked), ListFormat::Token).is_empty());
        assert!(event_arg(Some(seed), None, ListFormat::Token).is_empty());
    }

    /// The letters decode back to the typed rules they encode, for every
    /// target and width, and each rule has its own letter.
    #[test]
    fn rules_encode_and_decode() {
        let decode = |letter: u8| {
            [
                EntryRule::Unchanged,
                EntryRule::Change,
                EntryRule::NotAllowed,
                EntryRule::TooWide,
            ]
            .into_iter()
            .find(|r| rule_letter(*r) == letter)
        };
        for bits in Bits::ALL {
            for target in [
                Status::Valid,
                Status::Invalid,
                Status::Suspended,
                Status::ApplicationSpecific,
            ] {
                let rules = TransitionRules::new(target, bits);
                let encoded = encode_rules(&rules);
                let decoded: Vec<EntryRule> = encoded.iter().map(|l| decode(*l).unwrap()).collect();
                assert_eq!(decoded, rules.by_current(), "{target} in {bits} bits");
            }
        }
    }

    /// The BITFIELD address of an entry is where the domain's packed list
    /// puts it, in both bit orders and every width.
    #[test]
    fn bitfield_addresses_match_the_packed_list() {
        for format in [ListFormat::Token, ListFormat::Bitstring] {
            for bits in Bits::ALL {
                assert_eq!(field_type(bits), format!("u{}", bits.get()));
                let capacity = 64;
                for idx in [0, 1, 5, 63] {
                    let mut list = StatusList::new(format.layout(), bits, capacity).unwrap();
                    list.set(idx, 1).unwrap();
                    let bytes = list.as_bytes();
                    let off = bit_offset(format, bits, idx);
                    // Read the field big-endian from the MSB of byte 0, as
                    // BITFIELD does.
                    let field = (0..u64::from(bits.get())).fold(0u8, |acc, i| {
                        let bit = off + i;
                        let b = bytes[(bit / 8) as usize] >> (7 - bit % 8) & 1;
                        acc << 1 | b
                    });
                    assert_eq!(field, 1, "{format} {bits} bits, entry {idx}");
                }
            }
        }
    }
}
