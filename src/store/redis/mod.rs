//! The Redis adapter of the [`Store`] port: production storage shared by any
//! number of service replicas.
//!
//! # Layout
//!
//! - [`connection`]: [`RedisSettings`], the connection and its per-command
//!   timeout, and which failures are [`StoreError::Unavailable`];
//! - [`keys`]: every key name (the table of keys is there);
//! - [`layout`]: how a list's bytes are cut into chunks and its change times
//!   into buckets, to fit Redis's allocator and compact encodings;
//! - [`scripts`]: the Lua scripts, next to this file, and their named
//!   arguments: `allocate.lua`, `set_status.lua`, `claim.lua` (single-use
//!   jtis), `ref_read.lua` and `ref_change.lua` (changes by ref), `list.lua`
//!   (the entry listing), the prelude they all start with, `records.lua`
//!   (the idempotency record table, the chunk checks, change times), and
//!   the one all but `claim.lua` continue with, `space.lua` (entry spaces:
//!   the issuance log, the list registry, refs, the change indexes); the
//!   scripts that make changes then continue with `events.lua` (the event
//!   outbox), which also starts the outbox's own scripts `take.lua`,
//!   `delivered.lua`, `retry.lua`, `dead_letter.lua` and `redeliver.lua`;
//! - [`replies`]: the scripts' answers, the metadata fields and the
//!   outbox's events, decoded into typed values;
//! - [`outbox`]: the [`Outbox`](crate::ports::Outbox) implementation (see
//!   "Events" below);
//! - [`facts`]: the per-process cache of lists' immutable facts;
//! - [`feed`]: the change feed (pub/sub) that tells other replicas at once
//!   which list changed;
//! - this file: [`RedisStore`] and its [`Store`] implementation, which only
//!   builds arguments, makes the call and maps the reply.
//!
//! A list's owner entry (`Plist:<id>`) is written with `SET NX` *before* the
//! allocation script may open a list under that id, so a list is always
//! resolvable by its id alone (`read_list`, `list_version` and `set_status`
//! arrive with nothing else), and the `NX` makes list ids unique across all
//! clients. Because the owner of a list never changes, its immutable facts
//! are cached after the first lookup, so the hot paths are one round trip.
//!
//! # Entry spaces
//!
//! A client's entries of one format are numbered in allocation order (their
//! seq) in an entry space (keys in [`keys`], record formats in `space.lua`):
//! each allocation appends an issuance record (seq range, created time,
//! status expiry) and, with a ref, a binding of the ref; each list knows its
//! first seq (`e`), so an entry's seq is that plus its allocation number;
//! each applied change records the entry in the change indexes (`x`, and
//! `z1`..`z7` by status mask). The listing (`list.lua`) runs
//! `domain::entries::cut` server-side over the entries that never changed
//! (issued minus changed, by binary search) and the changed ones (rank
//! ranges of a zset), so a page at any depth costs O(log) Redis work. Lists
//! opened before entry spaces have no `e`: they are never allocated from
//! again, and their entries are not listed.
//!
//! A change by ref is two calls: `ref_read.lua` reads the ref's entries as
//! runs of allocation numbers and the ref's stamp; the adapter turns them
//! into positions (the index permutation runs in Rust); `ref_change.lua`
//! applies them all unless the ref bound more entries since (then the
//! adapter reads again, a bounded number of times).
//!
//! # Events
//!
//! A write whose request carries an event seed (a client with a webhook)
//! records its events in the client's outbox inside the same script as the
//! change, after every check, so an event exists if and only if its change
//! does; without a seed the scripts run no command and touch no key they
//! did not before. The outbox (keys in [`keys`], fields in `events.lua`) is
//! a stream per client, read by every replica through one consumer group,
//! with a zset of due times (leases, retries), attempts, each entry's
//! latest event (each event points at the earlier undelivered events of
//! its entries, which hold it back, so the events of an entry are
//! delivered in order) and the dead letters. Each outbox operation is one
//! script over one client's keys.
//!
//! # Atomicity
//!
//! Each multi-key step is one Lua script, so it is atomic across replicas.
//! Every key a script may touch is declared in its KEYS (a Redis Cluster
//! routes the script by them): the scripts build key names with the same
//! parts as [`keys`], but touch only declared ones, and what the caller
//! could not foresee (a record table that split meanwhile, another current
//! list) is answered `STALE` before any write, for the caller to declare
//! and call again (see "Declared keys" in `records.lua`). No `KEYS` or
//! `SCAN` command is ever used.
//!
//! # Shards
//!
//! With `shards_per_client` above 1 a client's keys are spread over that
//! many hash tags ([`keys::KeyNames::shard`]); each request does its work
//! in one shard, with its idempotency record: an issue in its ref's shard
//! (or its jti's, without a ref), a change in its list's (the owner entry
//! names it) or its ref's. When that is not the jti's shard, `mark.lua`
//! first marks the jti with the request in the jti's shard, so the same
//! jti with another body is refused whatever shard it points to. The
//! listing and the outbox read every shard. The README's "Redis Cluster"
//! section has the whole design.
//!
//! # Memory
//!
//! Idempotency records are the bulk of what Redis holds at a high request
//! rate (every request of the last idempotency window has one), so they are
//! binary and kept in small hashes in Redis's compact encoding, ~50 B each,
//! rather than one key each (~200 B); see `records.lua`. A list's bytes are
//! cut so their allocations fit jemalloc's size classes, and its change
//! times are packed 6 bytes per change into buckets (see [`layout`]). An
//! entry space costs a 16-byte issuance record per `/issue` (appended to one
//! string), 12 bytes more per `/issue` with a ref (and each ref's text
//! once), and zset entries for the entries that changed, which are few:
//! ~25 B per entry for 1,000,000 entries of which 1 % changed.
//!
//! # Lost data fails closed
//!
//! A list whose metadata exists but whose bytes are missing or of the wrong
//! length (evicted under a `maxmemory-policy` other than `noeviction`,
//! deleted by hand, a partial restore) is never published, allocated from or
//! changed: the scripts check every chunk's length first and the adapter
//! answers [`StoreError::Damaged`]. Reading a missing string as "all zeros"
//! would publish every revoked entry as VALID. The adapter warns at connect
//! time and in [`Store::health`] when the server may evict keys.

mod batch;
mod connection;
mod facts;
mod feed;
mod keys;
mod layout;
mod outbox;
mod replies;
mod scripts;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use ::redis::Value;

pub use self::connection::RedisSettings;
pub use self::feed::RedisChangeFeed;
pub use self::keys::ListKeys;

use self::batch::Batcher;
use self::connection::Connection;
use self::facts::{FactsCache, ListFacts};
use self::keys::{ClientKeys, KeyNames, RecordTable};
use self::replies::{
    AllocateBatch, AllocateReply, ClaimReply, EntriesReply, Found, Grant, Grants, ListState,
    RefChangeReply, RefCounts, RefReadReply, Run, SetStatusReply, StoredFacts,
};
use self::scripts::{
    AllocateArgs, AllocateItem, ClaimArgs, ListEntriesArgs, RefChangeArgs, RefChangeList,
    RefReadArgs, Scripts, SetStatusArgs, record_hash,
};
use self::scripts::{MarkArgs, ReadArgs};
use super::common::{self, DamagedLists};
use crate::domain::{AllocatorKey, ClientId, IssuanceRef, Jti, ListFormat, ListId};
use crate::ports::{
    AllocateOutcome, AllocateRequest, Allocation, EntryItem, EntryPage, EntryQuery, JtiClaim,
    JtiClaimOutcome, ListMeta, ListRun, ListSnapshot, RefChange, RefChangeOutcome, RefChangeReport,
    SetStatusOutcome, StatusChange, Store, StoreError, StoreHealth, StoreSettings, UnixSeconds,
};

/// How many fresh list ids an allocation tries before giving up. A collision
/// of 48-bit random ids is astronomically rare; more than one in a row means
/// something else is wrong.
const OPEN_ATTEMPTS: usize = 8;

/// At most this many `/issue` requests go in one allocation call.
const MAX_BATCH: usize = 64;

/// How many times a change by ref reads its ref again when concurrent
/// issues keep binding entries to it between the read and the change.
const REF_ATTEMPTS: usize = 16;

/// How many times a script is called again when it answers that the keys
/// it was given are not the ones it needs (another call split the record
/// table or opened a new list in between; see `declare` in `records.lua`).
const STALE_ATTEMPTS: usize = 8;

/// Allocation requests are batched per calling thread, client, format and
/// shard.
type BatchKey = (std::thread::ThreadId, ClientId, ListFormat, u16);

/// One request's answer, as the batch hands it back.
type Answer = Result<AllocateOutcome, StoreError>;

/// The Redis [`Store`]. Cheap to share behind an `Arc`; all methods take
/// `&self` and clone the multiplexed connection handle per call.
pub struct RedisStore {
    conn: Connection,
    keys: KeyNames,
    settings: StoreSettings,
    /// Byte length of a list opened with `settings`.
    new_list_bytes: usize,
    /// Bytes per chunk of a list opened with `settings`.
    new_chunk_bytes: usize,
    scripts: Scripts,
    facts: FactsCache,
    /// Lists found damaged, for readiness and one log line each.
    damaged: DamagedLists,
    /// Where changes are announced; `None` when `notify_changes` is off.
    changes: Option<String>,
    /// Allocation requests waiting for the call in flight (see `batch`).
    batches: Batcher<BatchKey, AllocateRequest, Answer>,
    /// How many shards each client's keys are spread over (at least 1).
    shards: u16,
    /// Each client's record table as last seen (by client key prefix): which
    /// record shards a call declares.
    tables: Mutex<HashMap<String, RecordTable>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix())
            .field("timeout", &self.conn.timeout())
            .field("wait_replicas", &self.conn.wait_replicas())
            .field("shards", &self.shards)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to Redis (waiting at most the command timeout) and checks the
    /// settings.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad URL, prefix or capacity;
    /// [`StoreError::Unavailable`] when Redis does not answer in time.
    pub async fn connect(
        redis: RedisSettings,
        settings: StoreSettings,
    ) -> Result<Self, StoreError> {
        if redis.shards_per_client == 0 {
            return Err(StoreError::Invalid(
                "shards_per_client must be at least 1".to_owned(),
            ));
        }
        let keys = KeyNames::new(redis.prefix.clone())?.with_shards(redis.shards_per_client);
        let changes = redis.notify_changes.then(|| keys.changes());
        connection::check_timeout(redis.command_timeout)?;
        // Capacity and lease: the rules every adapter applies, checked now
        // rather than at the first allocation.
        common::check_settings(&settings)?;
        let new_list_bytes = crate::domain::packed::byte_len(settings.bits, settings.capacity)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = Connection::open(
            &redis.url,
            redis.command_timeout,
            redis.tls_ca_file.as_deref(),
        )
        .await?;
        conn.set_wait_replicas(redis.wait_replicas);
        let store = RedisStore {
            conn,
            keys,
            settings,
            new_list_bytes,
            new_chunk_bytes: layout::chunk_bytes(new_list_bytes),
            scripts: Scripts::new(),
            facts: FactsCache::new(),
            damaged: DamagedLists::new(),
            changes,
            batches: Batcher::new(MAX_BATCH),
            tables: Mutex::new(HashMap::new()),
            shards: redis.shards_per_client,
        };
        for warning in store.conn.risky_settings().await {
            tracing::warn!("{warning}");
        }
        Ok(store)
    }

    /// A feed of the changes applied through any replica of this
    /// deployment (this one included), on its own connection; `None` when
    /// `notify_changes` is off. Each call opens a new subscription when first
    /// polled.
    pub fn change_feed(&self) -> Option<RedisChangeFeed> {
        let channel = self.changes.clone()?;
        RedisChangeFeed::new(self.conn.seeds().to_vec(), channel, self.conn.timeout())
    }

    /// The keys of a list, for tools and tests that inspect Redis directly
    /// (e.g. `MEMORY USAGE`); `None` when there is no such list.
    ///
    /// # Errors
    /// [`StoreError`] when Redis cannot be asked.
    pub async fn list_keys(&self, list: &ListId) -> Result<Option<ListKeys>, StoreError> {
        Ok(self
            .list_facts(list)
            .await?
            .map(|f| self.keys.list_in(&f.client, f.shard, list, f.chunks())))
    }

    /// The keys of `client`'s idempotency records (the table's state and
    /// every shard it has now), for tools and tests that inspect Redis
    /// directly.
    ///
    /// # Errors
    /// [`StoreError`] when Redis cannot be asked or the state is not
    /// numbers.
    pub async fn record_keys(&self, client: &ClientId) -> Result<Vec<String>, StoreError> {
        let ck = self.keys.client(client);
        let state: Vec<Option<u64>> = self
            .conn
            .query(::redis::cmd("HMGET").arg(ck.records()).arg("L").arg("s"))
            .await?;
        let (level, split) = match state[..] {
            [level, split] => (level.unwrap_or(0), split.unwrap_or(0)),
            _ => return Err(StoreError::Corrupt("unexpected HMGET reply".to_owned())),
        };
        let shards = 1u64
            .checked_shl(u32::try_from(level).unwrap_or(u32::MAX))
            .and_then(|n| n.checked_add(split))
            .ok_or_else(|| StoreError::Corrupt("record table level out of range".to_owned()))?;
        Ok(std::iter::once(ck.records())
            .chain((0..shards).map(|n| ck.record_shard(n)))
            .collect())
    }

    /// The keys of `client`'s entry space of `format` (its issuance log,
    /// list registry, refs and change indexes), for tools and tests that
    /// inspect Redis directly (e.g. `MEMORY USAGE`).
    pub fn entry_space_keys(&self, client: &ClientId, format: ListFormat) -> Vec<String> {
        self.keys.client(client).space(format).all()
    }

    /// The list's immutable facts: from memory, or from Redis (owner entry,
    /// then metadata) on first use. `None` when there is no such list.
    async fn list_facts(&self, list: &ListId) -> Result<Option<Arc<ListFacts>>, StoreError> {
        if let Some(facts) = self.facts.get(list) {
            return Ok(Some(facts));
        }
        let owner: Option<String> = self
            .conn
            .query(::redis::cmd("GET").arg(self.keys.owner(list)))
            .await?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        let (client, shard) = keys::parse_owner(&owner)
            .ok_or_else(|| StoreError::Corrupt(format!("list {list} has a bad owner")))?;
        let meta = self.keys.shard(&client, shard).meta(list);
        let fields: Vec<Value> = self
            .conn
            .query(
                ::redis::cmd("HMGET")
                    .arg(&meta)
                    .arg(&StoredFacts::META_FIELDS),
            )
            .await?;
        let Some(stored) = StoredFacts::from_meta(list, &client, &fields)? else {
            return Ok(None);
        };
        let facts = ListFacts::new(list, client, stored)?.in_shard(shard);
        Ok(Some(self.facts.remember(*list, facts)))
    }

    /// A list's bytes from its chunks as read, each checked for its length
    /// (missing or another length is damage).
    fn whole(
        &self,
        list: &ListId,
        facts: &ListFacts,
        chunks: Vec<Option<Vec<u8>>>,
    ) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::with_capacity(facts.byte_len);
        let mut read = chunks.into_iter();
        for want in facts.chunk_lens() {
            let chunk = read.next().flatten();
            self.damaged
                .check_len(*list, chunk.as_ref().map(Vec::len), want)?;
            bytes.extend_from_slice(chunk.as_deref().unwrap_or_default());
        }
        Ok(bytes)
    }

    /// The indexes a grant stands for, and its list's format.
    async fn grant_run(
        &self,
        client: &ClientId,
        shard: u16,
        grant: Grant,
    ) -> Result<(ListFormat, ListRun), StoreError> {
        let Grant {
            list,
            first,
            count,
            facts: stored,
        } = grant;
        let facts = match (self.facts.get(&list), stored) {
            (Some(facts), _) => facts,
            // The script left the facts out (it thought this process knew
            // the list): look them up.
            (None, None) => self
                .list_facts(&list)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("list {list} vanished")))?,
            (None, Some(stored)) => self.facts.remember(
                list,
                ListFacts::new(&list, client.clone(), stored)?.in_shard(shard),
            ),
        };
        let indexes = common::indexes(&facts.allocator, first, count)?;
        Ok((facts.format, ListRun { list, indexes }))
    }

    /// The allocation an allocate script's grants stand for.
    async fn allocation(
        &self,
        client: &ClientId,
        shard: u16,
        grants: Grants,
    ) -> Result<Allocation, StoreError> {
        let (format, first) = self.grant_run(client, shard, grants.first).await?;
        let next = match grants.next {
            Some(grant) => Some(self.grant_run(client, shard, grant).await?.1),
            None => None,
        };
        Ok(Allocation {
            list: first.list,
            format,
            indexes: first.indexes,
            next,
        })
    }

    /// The lists of a change by ref, with their entries (index, seq), from
    /// the ref's runs (in allocation order, so a list's runs are adjacent).
    async fn ref_change_lists(
        &self,
        client: &ClientId,
        runs: &[Run],
    ) -> Result<Vec<RefChangeList>, StoreError> {
        let mut lists = Vec::new();
        let mut at = 0;
        while let Some(run) = runs.get(at) {
            let list = run.list;
            let same = runs[at..].iter().take_while(|r| r.list == list).count();
            let Some(facts) = self.list_facts(&list).await? else {
                return Err(self
                    .damaged
                    .report(list, "its metadata is missing".to_owned()));
            };
            let base = match facts.base {
                Some(base) if facts.client == *client => base,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "list {list} is bound to a ref but not in its entry space"
                    )));
                }
            };
            let mut entries = Vec::new();
            for r in &runs[at..at + same] {
                for n in r.first..r.first.saturating_add(r.count) {
                    let idx = facts
                        .allocator
                        .permute(n)
                        .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))?;
                    entries.push((idx, base + n));
                }
            }
            lists.push(RefChangeList::new(
                list,
                self.keys
                    .list_in(client, facts.shard, &list, facts.chunks()),
                &facts,
                &entries,
            )?);
            at += same;
        }
        Ok(lists)
    }

    /// The record table of `client_keys` as this process last saw it.
    fn record_table(&self, client_keys: &ClientKeys) -> RecordTable {
        self.tables
            .lock()
            .ok()
            .and_then(|t| t.get(client_keys.as_str()).copied())
            .unwrap_or_default()
    }

    /// Learns from a script's `STALE` answer what to declare next time:
    /// the record table's state, or the client's current list (returned).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an answer of another form.
    fn learn(&self, client_keys: &ClientKeys, detail: &str) -> Result<Option<ListId>, StoreError> {
        if let Some(table) = RecordTable::parse(detail) {
            if let Ok(mut tables) = self.tables.lock() {
                tables.insert(client_keys.as_str().to_owned(), table);
            }
            return Ok(None);
        }
        match detail.strip_prefix("current ").map(ListId::parse) {
            Some(Ok(list)) => Ok(Some(list)),
            _ => Err(StoreError::Corrupt(format!(
                "a script asked for undeclared keys: {detail}"
            ))),
        }
    }

    /// Runs the script `call` makes from the declared keys: the record keys
    /// of `client_keys` for the jtis hashed `hashes` (by the table's state
    /// as last seen), then `extra`; again, with the state the script names,
    /// while the script answers that the state moved on.
    ///
    /// # Errors
    /// As [`Connection::invoke`]; [`StoreError::Unavailable`] when the
    /// table kept changing under [`STALE_ATTEMPTS`] calls.
    async fn invoke_declared<'s, T: ::redis::FromRedisValue>(
        &'s self,
        client_keys: &ClientKeys,
        hashes: &[u32],
        extra: &[String],
        call: impl Fn(&[String]) -> ::redis::ScriptInvocation<'s>,
    ) -> Result<T, StoreError> {
        for _ in 0..STALE_ATTEMPTS {
            let mut declared = client_keys.record_keys(self.record_table(client_keys), hashes);
            declared.extend_from_slice(extra);
            match self
                .conn
                .invoke_or_stale(&call(&declared), client_keys.as_str())
                .await?
            {
                Ok(reply) => return Ok(reply),
                Err(detail) => {
                    self.learn(client_keys, &detail)?;
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "the idempotency record table kept changing during {STALE_ATTEMPTS} attempts"
        )))
    }

    /// How many chunks a list opened now has.
    fn new_chunks(&self) -> usize {
        self.new_list_bytes.div_ceil(self.new_chunk_bytes.max(1))
    }

    /// The metadata and chunk keys of `client`'s own list `list`, for a
    /// script that may allocate from it (the metadata key alone when the
    /// list has none: the script then treats it as no list).
    async fn own_list_keys(
        &self,
        client: &ClientId,
        client_keys: &ClientKeys,
        list: &ListId,
    ) -> Result<Vec<String>, StoreError> {
        Ok(match self.list_facts(list).await? {
            Some(facts) if facts.client == *client => {
                let keys = self.keys.list_in(client, facts.shard, list, facts.chunks());
                std::iter::once(keys.meta).chain(keys.chunks).collect()
            }
            _ => vec![client_keys.meta(list)],
        })
    }

    /// The shard of the client that a request's work is done in: the
    /// ref's when it has one (so all of a ref's entries are in one shard
    /// and a change by ref is one step), else the jti's.
    fn work_shard(&self, issuance_ref: Option<&IssuanceRef>, jti: &Jti) -> u16 {
        match issuance_ref {
            Some(r) => keys::shard_of(r.as_str().as_bytes(), self.shards),
            None => self.jti_shard(jti),
        }
    }

    /// The shard of the client a jti's own records are in.
    fn jti_shard(&self, jti: &Jti) -> u16 {
        keys::shard_of(&jti.uuid_bytes(), self.shards)
    }

    /// Marks `jti` with its request (`digest`) in the jti's own shard, for
    /// a request whose work is done in shard `work` (see `mark.lua`);
    /// nothing to do when that is the jti's shard. False when the jti was
    /// used for another request (the request is changed).
    async fn mark(
        &self,
        client: &ClientId,
        work: u16,
        jti: &Jti,
        digest: &[u8; 32],
        now: UnixSeconds,
        keep_until: UnixSeconds,
    ) -> Result<bool, StoreError> {
        let shard = self.jti_shard(jti);
        if shard == work {
            return Ok(true);
        }
        let client_keys = self.keys.shard(client, shard);
        let legacy_record_key = client_keys.legacy_record(jti);
        let raw: Vec<Value> = self
            .invoke_declared(&client_keys, &[record_hash(jti)], &[], |declared| {
                self.scripts.call(&MarkArgs(ClaimArgs {
                    client_keys: &client_keys,
                    jti,
                    legacy_record_key: &legacy_record_key,
                    digest,
                    now,
                    keep_until,
                    declared,
                }))
            })
            .await?;
        replies::marked(&raw)
    }

    /// Claims a fresh list id for `client` (`SET NX` on its owner entry), so
    /// that the list, once opened, is always reachable by its id alone.
    /// `None` when the id is taken.
    async fn claim(&self, client: &ClientId, shard: u16) -> Result<Option<ListId>, StoreError> {
        let id = ListId::random();
        let set: Option<String> = self
            .conn
            .query(
                ::redis::cmd("SET")
                    .arg(self.keys.owner(&id))
                    .arg(keys::owner_value(client, shard))
                    .arg("NX"),
            )
            .await?;
        Ok(set.map(|_| id))
    }

    /// Drops an owner entry that was claimed for a list that was not opened
    /// after all. Best effort: a leftover entry only names a list that does
    /// not exist, which every read treats as "no list".
    async fn release_claim(&self, list: &ListId) {
        let _ = self
            .conn
            .query::<i64>(::redis::cmd("DEL").arg(self.keys.owner(list)))
            .await;
    }
}

impl RedisStore {
    /// Allocates for a batch of requests of one (client, format), in one
    /// script call (more only to open a new list), answering each as it
    /// would have been answered alone, in order.
    async fn allocate_batch(&self, reqs: Vec<AllocateRequest>) -> Vec<Answer> {
        let Some(first) = reqs.first() else {
            return Vec::new();
        };
        let (client, format) = (first.client.clone(), first.format);
        // A batch is of one shard (its batch key says so).
        let shard = self.work_shard(first.issuance_ref.as_ref(), &first.jti);
        let client_keys = self.keys.shard(&client, shard);
        let current_key = client_keys.current(format);
        let space = client_keys.space(format);
        let mut answers: Vec<Option<Answer>> = vec![None; reqs.len()];
        // Requests not answered yet, by position.
        let mut open: Vec<usize> = (0..reqs.len()).collect();
        // A candidate id and key for a new list are drawn only once the
        // script says one is needed (once per list, not per allocation).
        let mut candidate: Option<(ListId, AllocatorKey)> = None;
        // The client's current list as a script last named it, when this
        // process thought another list was current.
        let mut current: Option<ListId> = None;
        for _ in 0..OPEN_ATTEMPTS + reqs.len() {
            if open.is_empty() {
                break;
            }
            // The list this process last allocated from for (client,
            // format): its facts are cached, so the script need not send
            // them again.
            let known = self.facts.last_list(&current_key);
            let items: Vec<AllocateItem<'_>> = open
                .iter()
                .map(|&i| {
                    let r = &reqs[i];
                    AllocateItem {
                        jti: &r.jti,
                        legacy_record_key: client_keys.legacy_record(&r.jti),
                        digest: &r.digest,
                        now: r.now,
                        keep_until: r.keep_until,
                        count: r.count,
                        status_expiry: r.status_expiry,
                        issuance_ref: r.issuance_ref.as_ref(),
                        events: r.events,
                    }
                })
                .collect();
            let hashes: Vec<u32> = open.iter().map(|&i| record_hash(&reqs[i].jti)).collect();
            // Every key the call may touch: the records, the space, the
            // outbox, the list thought current and the candidate list.
            let mut fixed = space.all();
            fixed.extend(client_keys.outbox().all());
            if let Some((id, _)) = &candidate {
                let keys = self.keys.list_in(&client, shard, id, self.new_chunks());
                fixed.push(keys.meta);
                fixed.extend(keys.chunks);
            }
            let mut raw = Err(StoreError::Unavailable(format!(
                "the client's current list or record table kept changing during \
                 {STALE_ATTEMPTS} attempts"
            )));
            for _ in 0..STALE_ATTEMPTS {
                let mut declared =
                    client_keys.record_keys(self.record_table(&client_keys), &hashes);
                declared.extend_from_slice(&fixed);
                if let Some(list) = current.or(known) {
                    match self.own_list_keys(&client, &client_keys, &list).await {
                        Ok(keys) => declared.extend(keys),
                        Err(e) => {
                            raw = Err(e);
                            break;
                        }
                    }
                }
                let args = AllocateArgs {
                    items: &items,
                    current_key: &current_key,
                    client_keys: &client_keys,
                    new_lists: &self.settings,
                    new_list_bytes: self.new_list_bytes,
                    new_chunk_bytes: self.new_chunk_bytes,
                    format,
                    client: &client,
                    claimed: candidate.is_some(),
                    candidate: candidate.clone(),
                    known_list: known,
                    space: &space,
                    declared: &declared,
                };
                match self
                    .conn
                    .invoke_or_stale::<Vec<Value>>(&self.scripts.call(&args), client_keys.as_str())
                    .await
                {
                    Ok(Ok(reply)) => {
                        raw = Ok(reply);
                        break;
                    }
                    // Nothing was written: declare what the script named.
                    Ok(Err(detail)) => match self.learn(&client_keys, &detail) {
                        Ok(Some(list)) => current = Some(list),
                        Ok(None) => {}
                        Err(e) => {
                            raw = Err(e);
                            break;
                        }
                    },
                    Err(e) => {
                        raw = Err(e);
                        break;
                    }
                }
            }
            let reply = raw
                .and_then(|raw| AllocateBatch::decode(&raw))
                .and_then(|batch| {
                    if batch.replies.len() == open.len() {
                        Ok(batch)
                    } else {
                        Err(StoreError::Corrupt(
                            "allocation answers do not match".to_owned(),
                        ))
                    }
                });
            let used = candidate.take();
            let batch = match reply {
                Ok(batch) => batch,
                Err(e) => {
                    // The claim is kept: a call that timed out may have
                    // opened the list, which must stay reachable by its id
                    // (a claim left over names no list, which reads treat
                    // as none).
                    for &i in &open {
                        answers[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            if let Some((id, _)) = &used
                && !batch.opened
            {
                // Claimed but not opened (a collision): not ours to keep.
                self.release_claim(id).await;
            }
            let mut still = Vec::new();
            let mut need_list = false;
            for (&i, reply) in open.iter().zip(batch.replies) {
                let answer = match reply {
                    AllocateReply::Allocated(grants) => {
                        let a = self.allocation(&client, shard, grants).await;
                        if let Ok(a) = &a {
                            // The list allocated from last is the current one.
                            let last = a.next.as_ref().map_or(a.list, |r| r.list);
                            if known != Some(last) {
                                self.facts.set_last_list(current_key.clone(), last);
                            }
                        }
                        a.map(AllocateOutcome::Allocated)
                    }
                    AllocateReply::Replayed(grants) => self
                        .allocation(&client, shard, grants)
                        .await
                        .map(AllocateOutcome::Replayed),
                    AllocateReply::Changed => Ok(AllocateOutcome::Changed),
                    AllocateReply::Damaged(list) => Err(self.damaged.report(
                        list,
                        "the current list's bytes are missing or of the wrong length".to_owned(),
                    )),
                    AllocateReply::Open => {
                        need_list = true;
                        still.push(i);
                        continue;
                    }
                    AllocateReply::Collision | AllocateReply::Pending => {
                        still.push(i);
                        continue;
                    }
                };
                answers[i] = Some(answer);
            }
            open = still;
            if need_list {
                match self.claim(&client, shard).await {
                    Ok(claimed) => candidate = claimed.map(|id| (id, AllocatorKey::random())),
                    Err(e) => {
                        for &i in &open {
                            answers[i] = Some(Err(e.clone()));
                        }
                        open.clear();
                    }
                }
            }
        }
        if let Some((id, _)) = &candidate {
            // Claimed for a call that was never made (attempts ran out).
            self.release_claim(id).await;
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(StoreError::Backend(
                        "could not find a free id for a new list".to_owned(),
                    ))
                })
            })
            .collect()
    }
}

/// `text` with the glob characters of a SCAN pattern escaped, so that a
/// key prefix holding them matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store for RedisStore {
    #[tracing::instrument(level = "debug", skip(self, req), fields(client = %req.client, count = req.count))]
    async fn allocate(&self, req: &AllocateRequest) -> Result<AllocateOutcome, StoreError> {
        common::check_request(req, &self.settings)?;
        let shard = self.work_shard(req.issuance_ref.as_ref(), &req.jti);
        let marked = self
            .mark(
                &req.client,
                shard,
                &req.jti,
                &req.digest,
                req.now,
                req.keep_until,
            )
            .await?;
        if !marked {
            return Ok(AllocateOutcome::Changed);
        }
        let key = (
            std::thread::current().id(),
            req.client.clone(),
            req.format,
            shard,
        );
        self.batches
            .run(
                key,
                req.clone(),
                |batch| self.allocate_batch(batch),
                || {
                    Err(StoreError::Backend(
                        "an allocation batch gave no answer".to_owned(),
                    ))
                },
            )
            .await
    }

    #[tracing::instrument(level = "debug", skip(self, change), fields(client = %change.client, list = %change.list))]
    async fn set_status(&self, change: &StatusChange) -> Result<SetStatusOutcome, StoreError> {
        common::check_change(change)?;
        let (client, list, idx) = (&change.client, &change.list, change.idx);
        let Some(facts) = self.list_facts(list).await? else {
            return Ok(SetStatusOutcome::ListNotFound);
        };
        if facts.client != *client {
            return Ok(SetStatusOutcome::NotYourList);
        }
        let Ok(n) = facts.allocator.invert(idx) else {
            // Outside the list's capacity: never handed out.
            return Ok(SetStatusOutcome::NeverIssued);
        };
        if !self
            .mark(
                client,
                facts.shard,
                &change.jti,
                &change.digest,
                change.now,
                change.keep_until,
            )
            .await?
        {
            return Ok(SetStatusOutcome::Changed);
        }
        let client_keys = self.keys.shard(client, facts.shard);
        let keys = self.keys.list_in(client, facts.shard, list, facts.chunks());
        let legacy_record_key = client_keys.legacy_record(&change.jti);
        let space = client_keys.space(facts.format);
        let mut extra = space.all();
        extra.extend(client_keys.outbox().all());
        let raw: Vec<Value> = self
            .invoke_declared(
                &client_keys,
                &[record_hash(&change.jti)],
                &extra,
                |declared| {
                    self.scripts.call(&SetStatusArgs {
                        keys: &keys,
                        client_keys: &client_keys,
                        jti: &change.jti,
                        legacy_record_key: &legacy_record_key,
                        client,
                        n,
                        idx,
                        format: facts.format,
                        bits: facts.bits,
                        capacity: facts.capacity,
                        target: change.status,
                        byte_len: facts.byte_len,
                        chunk_bytes: facts.chunk_bytes,
                        digest: &change.digest,
                        now: change.now,
                        keep_until: change.keep_until,
                        list,
                        channel: self.changes.as_deref(),
                        // The entry's seq: its list's first seq and its number there.
                        seq: facts.base.map(|base| base + n),
                        space: &space,
                        events: change.events,
                        declared,
                    })
                },
            )
            .await?;
        Ok(match SetStatusReply::decode(list, &raw)? {
            SetStatusReply::Done => SetStatusOutcome::Done { at: change.now },
            SetStatusReply::Already { at } | SetStatusReply::ReplayedAlready { at } => {
                SetStatusOutcome::Already { at }
            }
            SetStatusReply::ReplayedDone { at } => SetStatusOutcome::Done { at },
            SetStatusReply::Changed => SetStatusOutcome::Changed,
            SetStatusReply::NotAllowed { current } => SetStatusOutcome::NotAllowed { current },
            SetStatusReply::NeverIssued => SetStatusOutcome::NeverIssued,
            SetStatusReply::TooWide => SetStatusOutcome::Unsupported { bits: facts.bits },
            SetStatusReply::NotYours => SetStatusOutcome::NotYourList,
            SetStatusReply::NotFound => SetStatusOutcome::ListNotFound,
            SetStatusReply::Damaged => {
                return Err(self.damaged.report(
                    *list,
                    "the list's bytes are missing or of the wrong length".to_owned(),
                ));
            }
        })
    }

    #[tracing::instrument(level = "debug", skip(self, change), fields(client = %change.client))]
    async fn set_status_by_ref(&self, change: &RefChange) -> Result<RefChangeOutcome, StoreError> {
        common::check_ref_change(change)?;
        // All of a ref's entries are in its shard.
        let shard = keys::shard_of(change.issuance_ref.as_str().as_bytes(), self.shards);
        if !self
            .mark(
                &change.client,
                shard,
                &change.jti,
                &change.digest,
                change.now,
                change.keep_until,
            )
            .await?
        {
            return Ok(RefChangeOutcome::Changed);
        }
        let client_keys = self.keys.shard(&change.client, shard);
        let space = client_keys.space(change.format);
        let legacy_record_key = client_keys.legacy_record(&change.jti);
        let hashes = [record_hash(&change.jti)];
        let read_extra = space.all();
        let mut change_extra = space.all();
        change_extra.extend(client_keys.outbox().all());
        for _ in 0..REF_ATTEMPTS {
            let raw: Vec<Value> = self
                .invoke_declared(&client_keys, &hashes, &read_extra, |declared| {
                    self.scripts.call(&RefReadArgs {
                        client_keys: &client_keys,
                        space: &space,
                        issuance_ref: &change.issuance_ref,
                        jti: &change.jti,
                        legacy_record_key: &legacy_record_key,
                        digest: &change.digest,
                        now: change.now,
                        declared,
                    })
                })
                .await?;
            let (stamp, runs) = match RefReadReply::decode(&raw)? {
                RefReadReply::Changed => return Ok(RefChangeOutcome::Changed),
                RefReadReply::NotFound => return Ok(RefChangeOutcome::NotFound),
                RefReadReply::Replayed { runs, at, counts } => {
                    return Ok(RefChangeOutcome::Done(ref_report(at, counts, &runs)));
                }
                RefReadReply::Runs { stamp, runs } => (stamp, runs),
            };
            let lists = self.ref_change_lists(&change.client, &runs).await?;
            let raw: Vec<Value> = self
                .invoke_declared(&client_keys, &hashes, &change_extra, |declared| {
                    self.scripts.call(&RefChangeArgs {
                        client_keys: &client_keys,
                        space: &space,
                        issuance_ref: &change.issuance_ref,
                        jti: &change.jti,
                        legacy_record_key: &legacy_record_key,
                        digest: &change.digest,
                        now: change.now,
                        keep_until: change.keep_until,
                        stamp,
                        target: change.status,
                        channel: self.changes.as_deref(),
                        lists: &lists,
                        format: change.format,
                        events: change.events,
                        declared,
                    })
                })
                .await?;
            return Ok(match RefChangeReply::decode(&raw)? {
                RefChangeReply::Done(counts) => {
                    RefChangeOutcome::Done(ref_report(change.now, counts, &runs))
                }
                // A duplicate of this request was applied in between.
                RefChangeReply::Replayed { at, counts } => {
                    RefChangeOutcome::Done(ref_report(at, counts, &runs))
                }
                RefChangeReply::Changed => RefChangeOutcome::Changed,
                RefChangeReply::Damaged(list) => {
                    return Err(self.damaged.report(
                        list,
                        "the list's bytes are missing or of the wrong length".to_owned(),
                    ));
                }
                RefChangeReply::Stale => {
                    tracing::debug!(
                        issuance_ref = %change.issuance_ref,
                        "the ref bound more entries while its change was prepared: reading it again"
                    );
                    continue;
                }
            });
        }
        Err(StoreError::Unavailable(format!(
            "the ref kept binding new entries during {REF_ATTEMPTS} attempts to change it"
        )))
    }

    #[tracing::instrument(level = "debug", skip(self, claim), fields(client = %claim.client))]
    async fn claim_jti(&self, claim: &JtiClaim) -> Result<JtiClaimOutcome, StoreError> {
        common::check_claim(claim)?;
        let client_keys = self.keys.shard(&claim.client, self.jti_shard(&claim.jti));
        let legacy_record_key = client_keys.legacy_record(&claim.jti);
        let raw: Vec<Value> = self
            .invoke_declared(&client_keys, &[record_hash(&claim.jti)], &[], |declared| {
                self.scripts.call(&ClaimArgs {
                    client_keys: &client_keys,
                    jti: &claim.jti,
                    legacy_record_key: &legacy_record_key,
                    digest: &claim.digest,
                    now: claim.now,
                    keep_until: claim.keep_until,
                    declared,
                })
            })
            .await?;
        Ok(match ClaimReply::decode(&raw)? {
            ClaimReply::Fresh => JtiClaimOutcome::Fresh,
            ClaimReply::Used => JtiClaimOutcome::Used,
        })
    }

    #[tracing::instrument(level = "debug", skip(self, query), fields(client = %query.client))]
    async fn list_entries(&self, query: &EntryQuery) -> Result<EntryPage, StoreError> {
        // A list filter: the list's place in the space (its base), when it
        // is one of the space's lists at all.
        let (list, shards) = match &query.list {
            None => (None, 0..self.shards),
            Some(list) => match self.list_facts(list).await? {
                Some(f) if f.client == query.client && f.format == query.format => match f.base {
                    Some(base) => (Some((*list, base)), f.shard..f.shard + 1),
                    None => return Ok(EntryPage::default()),
                },
                _ => return Ok(EntryPage::default()),
            },
        };
        // A ref's entries are all in its shard; otherwise every shard is
        // read, in turn: the page is cut from their entries one shard after
        // the other (each in the order asked for).
        let shards = match (&list, &query.issuance_ref) {
            (None, Some(r)) => {
                let n = keys::shard_of(r.as_str().as_bytes(), self.shards);
                n..n + 1
            }
            _ => shards,
        };
        let (mut skip, mut want) = (query.offset, query.limit);
        let mut total = 0u64;
        let mut found = Vec::new();
        for shard in shards {
            let space = self.keys.shard(&query.client, shard).space(query.format);
            let args = ListEntriesArgs {
                space: &space,
                mask: query.statuses.mask(),
                issuance_ref: query.issuance_ref.as_ref(),
                list,
                since: query.updated_since,
                until: query.updated_until,
                order: query.order,
                offset: skip,
                limit: want,
                declared: &space.all(),
            };
            let raw: Vec<Value> = self.conn.invoke(&self.scripts.call(&args)).await?;
            let mut reply = EntriesReply::decode(&raw)?;
            total = total.saturating_add(reply.total);
            skip = skip.saturating_sub(reply.total);
            reply
                .items
                .truncate(usize::try_from(want).unwrap_or(usize::MAX));
            want = want.saturating_sub(u32::try_from(reply.items.len()).unwrap_or(u32::MAX));
            found.extend(reply.items);
        }
        let mut items = Vec::with_capacity(found.len());
        for e in found {
            let facts = self
                .list_facts(&e.list)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("listed list {} vanished", e.list)))?;
            let idx = facts
                .allocator
                .permute(e.n)
                .map_err(|err| StoreError::Corrupt(format!("list {}: {err}", e.list)))?;
            items.push(EntryItem {
                list: e.list,
                idx,
                issuance_ref: e.issuance_ref,
                status: e.status,
                created_at: e.created_at,
                updated_at: e.updated_at,
                status_expiry: e.status_expiry,
            });
        }
        Ok(EntryPage { total, items })
    }

    #[tracing::instrument(level = "debug", skip(self), fields(list = %list))]
    async fn read_list(&self, list: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
        let Some(facts) = self.list_facts(list).await? else {
            return Ok(None);
        };
        let keys = self
            .keys
            .list_in(&facts.client, facts.shard, list, facts.chunks());
        // One script: metadata, version and bytes from one moment (see
        // `read.lua` for why not MULTI/EXEC).
        let (fields, chunks): (Vec<Value>, Vec<Option<Vec<u8>>>) = self
            .conn
            .invoke(&self.scripts.call(&ReadArgs {
                keys: &keys,
                fields: &ListState::META_FIELDS,
            }))
            .await?;
        let Found::Present(fields) = ListState::from_meta(list, &fields)? else {
            return Ok(None);
        };
        // Every chunk is created at full length when the list is opened and
        // only ever written in place. Missing or another length means it was
        // lost (evicted, deleted, a partial restore): reading it as zeros
        // would publish revoked entries as VALID, so refuse.
        let bytes = self.whole(list, &facts, chunks)?;
        self.damaged.clear(list);
        let state = fields.decode()?;
        Ok(Some(ListSnapshot {
            meta: ListMeta {
                id: *list,
                client: facts.client.clone(),
                format: facts.format,
                bits: facts.bits,
                capacity: facts.capacity,
                allocated: state.allocated,
                created_at: state.created_at,
                retire_after: state.retire_after,
            },
            version: state.version,
            bytes,
        }))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(list = %list))]
    async fn list_version(&self, list: &ListId) -> Result<Option<u64>, StoreError> {
        let Some(facts) = self.list_facts(list).await? else {
            return Ok(None);
        };
        let keys = self
            .keys
            .list_in(&facts.client, facts.shard, list, facts.chunks());
        // The version and the chunks' lengths in one round trip: a list
        // whose bytes were lost must not keep being served from a cache that
        // only asks for the version.
        let mut pipe = ::redis::pipe();
        pipe.cmd("HGET").arg(&keys.meta).arg("v");
        for chunk in &keys.chunks {
            pipe.cmd("STRLEN").arg(chunk);
        }
        let reply: Vec<Value> = self.conn.pipe(&pipe).await?;
        let Some((v, lens)) = reply.split_first() else {
            return Err(StoreError::Corrupt("unexpected pipeline reply".to_owned()));
        };
        let Found::Present(v) = replies::version(v) else {
            return Ok(None);
        };
        // STRLEN answers 0 for a missing key (a chunk is never 0 bytes long).
        for (len, want) in lens.iter().zip(facts.chunk_lens()) {
            let len = match len {
                Value::Int(l) => usize::try_from(*l).ok().filter(|l| *l > 0),
                _ => None,
            };
            self.damaged.check_len(*list, len, want)?;
        }
        replies::decode_version(list, v).map(Some)
    }

    /// SCANs the owner entries (`Plist:<id>`, one per list, see `keys`;
    /// every master of a cluster)
    /// and keeps the lists of `format`, reading each list's facts (cached
    /// after the first time, as every GET of a list does) a few at a time.
    #[tracing::instrument(level = "debug", skip(self))]
    async fn list_ids(&self, format: ListFormat) -> Result<Vec<ListId>, StoreError> {
        use futures::StreamExt;
        let pattern = format!("{}*", glob_escape(&self.keys.owner_prefix()));
        let owner_prefix = self.keys.owner_prefix();
        let mut ids: Vec<ListId> = self
            .conn
            .scan(&pattern)
            .await?
            .iter()
            .filter_map(|key| {
                key.strip_prefix(owner_prefix.as_str())
                    .and_then(|id| ListId::parse(id).ok())
            })
            .collect();
        // SCAN may return a key twice.
        ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        let facts: Vec<Result<Option<Arc<ListFacts>>, StoreError>> =
            futures::stream::iter(ids.iter().copied())
                .map(|id| async move { self.list_facts(&id).await })
                .buffered(32)
                .collect()
                .await;
        let mut of_format = Vec::new();
        for (id, facts) in ids.iter().zip(facts) {
            if facts?.is_some_and(|f| f.format == format) {
                of_format.push(*id);
            }
        }
        Ok(of_format)
    }

    async fn health(&self) -> Result<StoreHealth, StoreError> {
        let _: String = self.conn.query(&::redis::cmd("PING")).await?;
        Ok(StoreHealth {
            damaged: self.damaged.list(),
            warnings: self.conn.risky_settings().await,
        })
    }
}

/// The report of a change by ref: what it did, and every list of the ref
/// in allocation order.
fn ref_report(at: UnixSeconds, counts: RefCounts, runs: &[Run]) -> RefChangeReport {
    let mut lists: Vec<ListId> = Vec::new();
    for run in runs {
        if !lists.contains(&run.list) {
            lists.push(run.list);
        }
    }
    RefChangeReport {
        at,
        changed: counts.changed,
        skipped: counts.skipped,
        already: counts.already,
        lists,
    }
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    /// A prefix holding glob characters matches only itself in the SCAN
    /// of `list_ids`: `a*` must not also list another deployment's `ab…`.
    #[test]
    fn scan_patterns_escape_the_glob_characters() {
        assert_eq!(glob_escape("statuslist:list:"), "statuslist:list:");
        assert_eq!(glob_escape("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
    }
}
