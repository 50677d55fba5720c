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
//! - [`scripts`]: the Lua scripts (`allocate.lua`, `set_status.lua`, and the
//!   prelude both start with, `records.lua`: the idempotency record table
//!   and the chunk checks, next to this file) and their named arguments;
//! - [`replies`]: the scripts' answers and the metadata fields, decoded into
//!   typed values;
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
//! # Atomicity
//!
//! Each multi-key step is one Lua script, so it is atomic across replicas.
//! The scripts derive some keys from the client's key prefix (a new list's
//! keys, the record shard a jti falls in); they are in the same slot as the
//! declared keys. No `KEYS` or `SCAN` is ever used.
//!
//! # Memory
//!
//! Idempotency records are the bulk of what Redis holds at a high request
//! rate (every request of the last idempotency window has one), so they are
//! binary and kept in small hashes in Redis's compact encoding, ~50 B each,
//! rather than one key each (~200 B); see `records.lua`. A list's bytes are
//! cut so their allocations fit jemalloc's size classes, and its change
//! times are packed 6 bytes per change into buckets (see [`layout`]).
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
mod replies;
mod scripts;

use std::fmt;
use std::sync::Arc;

use ::redis::Value;

pub use self::connection::RedisSettings;
pub use self::feed::RedisChangeFeed;
pub use self::keys::ListKeys;

use self::batch::Batcher;
use self::connection::Connection;
use self::facts::{FactsCache, ListFacts};
use self::keys::KeyNames;
use self::replies::{
    AllocateBatch, AllocateReply, Found, Grant, ListState, SetStatusReply, StoredFacts,
};
use self::scripts::{AllocateArgs, AllocateItem, Scripts, SetStatusArgs};
use super::common::{self, DamagedLists};
use crate::domain::{AllocatorKey, ClientId, ListFormat, ListId};
use crate::ports::{
    AllocateOutcome, AllocateRequest, Allocation, ListMeta, ListSnapshot, SetStatusOutcome,
    StatusChange, Store, StoreError, StoreHealth, StoreSettings,
};

/// How many fresh list ids an allocation tries before giving up. A collision
/// of 48-bit random ids is astronomically rare; more than one in a row means
/// something else is wrong.
const OPEN_ATTEMPTS: usize = 8;

/// At most this many `/issue` requests go in one allocation call.
const MAX_BATCH: usize = 64;

/// Allocation requests are batched per calling thread, client and format.
type BatchKey = (std::thread::ThreadId, ClientId, ListFormat);

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
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix())
            .field("timeout", &self.conn.timeout())
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
        let keys = KeyNames::new(redis.prefix)?;
        let changes = redis.notify_changes.then(|| keys.changes());
        connection::check_timeout(redis.command_timeout)?;
        // Capacity and lease: the rules every adapter applies, checked now
        // rather than at the first allocation.
        common::check_settings(&settings)?;
        let new_list_bytes = crate::domain::packed::byte_len(settings.bits, settings.capacity)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let conn = Connection::open(&redis.url, redis.command_timeout).await?;
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
        Some(RedisChangeFeed::new(
            self.conn.client().clone(),
            channel,
            self.conn.timeout(),
        ))
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
            .map(|f| self.keys.list(&f.client, list, f.chunks())))
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
        let client = replies::owner(list, &owner)?;
        let meta = self.keys.client(&client).meta(list);
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
        let facts = ListFacts::new(list, client, stored)?;
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

    /// The allocation an allocate script's grant stands for.
    async fn allocation(&self, client: &ClientId, grant: Grant) -> Result<Allocation, StoreError> {
        let list = grant.list;
        let facts = match (self.facts.get(&list), grant.facts) {
            (Some(facts), _) => facts,
            // The script left the facts out (it thought this process knew
            // the list): look them up.
            (None, None) => self
                .list_facts(&list)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("list {list} vanished")))?,
            (None, Some(stored)) => self
                .facts
                .remember(list, ListFacts::new(&list, client.clone(), stored)?),
        };
        Ok(Allocation {
            list,
            format: facts.format,
            indexes: common::indexes(&facts.allocator, grant.first, grant.count)?,
            next: None,
        })
    }

    /// Claims a fresh list id for `client` (`SET NX` on its owner entry), so
    /// that the list, once opened, is always reachable by its id alone.
    /// `None` when the id is taken.
    async fn claim(&self, client: &ClientId) -> Result<Option<ListId>, StoreError> {
        let id = ListId::random();
        let set: Option<String> = self
            .conn
            .query(
                ::redis::cmd("SET")
                    .arg(self.keys.owner(&id))
                    .arg(client.as_str())
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
        let client_keys = self.keys.client(&client);
        let current_key = client_keys.current(format);
        let mut answers: Vec<Option<Answer>> = vec![None; reqs.len()];
        // Requests not answered yet, by position.
        let mut open: Vec<usize> = (0..reqs.len()).collect();
        // A candidate id and key for a new list are drawn only once the
        // script says one is needed (once per list, not per allocation).
        let mut candidate: Option<(ListId, AllocatorKey)> = None;
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
                    }
                })
                .collect();
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
            };
            let reply = self
                .conn
                .invoke::<Vec<Value>>(&self.scripts.allocate(&args))
                .await
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
                    AllocateReply::Allocated(grant) => {
                        let a = self.allocation(&client, grant).await;
                        if let Ok(a) = &a
                            && known != Some(a.list)
                        {
                            self.facts.set_last_list(current_key.clone(), a.list);
                        }
                        a.map(AllocateOutcome::Allocated)
                    }
                    AllocateReply::Replayed(grant) => self
                        .allocation(&client, grant)
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
                match self.claim(&client).await {
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

impl Store for RedisStore {
    // SCAFFOLD(issue 14): replaced by the adapter's implementation.
    async fn set_status_by_ref(
        &self,
        _change: &crate::ports::RefChange,
    ) -> Result<crate::ports::RefChangeOutcome, StoreError> {
        Err(StoreError::Backend("SCAFFOLD: set_status_by_ref".into()))
    }

    // SCAFFOLD(issue 14): replaced by the adapter's implementation.
    async fn claim_jti(
        &self,
        _claim: &crate::ports::JtiClaim,
    ) -> Result<crate::ports::JtiClaimOutcome, StoreError> {
        Err(StoreError::Backend("SCAFFOLD: claim_jti".into()))
    }

    // SCAFFOLD(issue 14): replaced by the adapter's implementation.
    async fn list_entries(
        &self,
        _query: &crate::ports::EntryQuery,
    ) -> Result<crate::ports::EntryPage, StoreError> {
        Err(StoreError::Backend("SCAFFOLD: list_entries".into()))
    }

    #[tracing::instrument(level = "debug", skip(self, req), fields(client = %req.client, count = req.count))]
    async fn allocate(&self, req: &AllocateRequest) -> Result<AllocateOutcome, StoreError> {
        common::check_request(req, &self.settings)?;
        let key = (std::thread::current().id(), req.client.clone(), req.format);
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
        let client_keys = self.keys.client(client);
        let keys = self.keys.list(client, list, facts.chunks());
        let args = SetStatusArgs {
            keys: &keys,
            client_keys: &client_keys,
            jti: &change.jti,
            legacy_record_key: &client_keys.legacy_record(&change.jti),
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
        };
        let raw: Vec<Value> = self.conn.invoke(&self.scripts.set_status(&args)).await?;
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

    #[tracing::instrument(level = "debug", skip(self), fields(list = %list))]
    async fn read_list(&self, list: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
        let Some(facts) = self.list_facts(list).await? else {
            return Ok(None);
        };
        let keys = self.keys.list(&facts.client, list, facts.chunks());
        // MULTI/EXEC: metadata, version and bytes from one moment.
        let (fields, chunks): (Vec<Value>, Vec<Option<Vec<u8>>>) = self
            .conn
            .pipe(
                ::redis::pipe()
                    .atomic()
                    .cmd("HMGET")
                    .arg(&keys.meta)
                    .arg(&ListState::META_FIELDS)
                    .cmd("MGET")
                    .arg(&keys.chunks),
            )
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
        let keys = self.keys.list(&facts.client, list, facts.chunks());
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

    async fn health(&self) -> Result<StoreHealth, StoreError> {
        let _: String = self.conn.query(&::redis::cmd("PING")).await?;
        Ok(StoreHealth {
            damaged: self.damaged.list(),
            warnings: self.conn.risky_settings().await,
        })
    }
}
