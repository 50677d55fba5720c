//! The Redis adapter of the [`Store`] port: production storage shared by any
//! number of service replicas.
//!
//! # Layout
//!
//! Every key starts with a configurable prefix (`statuslist:` by default).
//! Everything that belongs to a client carries the client's hash tag, so all
//! of a client's keys live in one Redis Cluster slot and every script touches
//! one slot only:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `P{c}:cur:<format>` | string | the client's current list of that format |
//! | `P{c}:j:<jti>` | string, TTL = until the record's expiry | digest and the recorded answer: an allocation (list, first n, count) or a change outcome, and the expiry |
//! | `P{c}:l:<id>` | hash | owner, format, bits, capacity, counter `n`, allocator key, created, retire-after, version `v` |
//! | `P{c}:l:<id>:b` | string | the packed entries, in the list's own bit order |
//! | `P{c}:l:<id>:t` | hash | entry index → unix time of its last change |
//! | `Plist:<id>` | string | the owning client of a list id |
//!
//! The last key is the one that needs no client: `read_list`, `list_version`
//! and `set_status` arrive with a list id only. It is written with `SET NX`
//! *before* the allocation script may open a list under that id, so a list
//! is always resolvable, and the `NX` makes list ids unique across all
//! clients. Because the owner of a list never changes, the adapter caches a
//! list's immutable facts (owner, format, width, capacity, allocator) in
//! memory after the first lookup, so the hot paths are one round trip.
//!
//! # Atomicity
//!
//! Each multi-key step is one Lua script (`redis::Script`: `EVALSHA`, and on
//! `NOSCRIPT` a `SCRIPT LOAD` and a retry), so it is atomic across replicas.
//! The scripts derive the list keys from the client's key prefix; they are in
//! the same slot as the declared keys, which Redis Cluster accepts. No
//! `KEYS` or `SCAN` is ever used.
//!
//! # Failures
//!
//! The connection is a [`ConnectionManager`] (one multiplexed connection that
//! reconnects by itself). Every command runs under a timeout (500 ms by
//! default); a timeout or a connection failure is
//! [`StoreError::Unavailable`], never a hang. A script that timed out on the
//! client may still have run on the server: the idempotency record written by
//! that same script is what makes a retry safe then (it gets the same
//! answer).
//!
//! # Lost data fails closed
//!
//! A list whose metadata exists but whose bytes are missing or of the wrong
//! length (evicted under a `maxmemory-policy` other than `noeviction`,
//! deleted by hand, a partial restore) is never published, allocated from or
//! changed: the scripts check the string's length first and the adapter
//! answers [`StoreError::Damaged`]. Reading a missing string as "all zeros"
//! would publish every revoked entry as VALID. The adapter warns at connect
//! time and in [`Store::health`] when the server may evict keys.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};

use super::common::{self, DamagedLists};
use crate::domain::{Allocator, AllocatorKey, Bits, ClientId, ListFormat, ListId, Status};
use crate::ports::{
    AllocateOutcome, AllocateRequest, Allocation, ListMeta, ListSnapshot, SetStatusOutcome,
    StatusChange, Store, StoreError, StoreHealth, StoreSettings,
};

/// How many fresh list ids an allocation tries before giving up. A collision
/// of 48-bit random ids is astronomically rare; more than one in a row means
/// something else is wrong.
const OPEN_ATTEMPTS: usize = 8;

/// How to reach Redis and how to name keys there.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://`, `rediss://` or `redis+unix://` URL. May hold a password,
    /// so `Debug` hides it.
    pub url: String,
    /// Prepended to every key (default `statuslist:`); lets several
    /// deployments or tests share one Redis. No braces or whitespace.
    pub prefix: String,
    /// Upper bound for every command, connecting included (default 500 ms).
    pub command_timeout: Duration,
}

impl RedisSettings {
    /// Settings for `url` with the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisSettings {
            url: url.into(),
            prefix: "statuslist:".to_owned(),
            command_timeout: Duration::from_millis(500),
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The one redaction rule: user-info password and `pass` query.
        f.debug_struct("RedisSettings")
            .field("url", &crate::config::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// The Redis keys of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKeys {
    /// The packed entries (string).
    pub bytes: String,
    /// Entry index → time of its last change (hash).
    pub times: String,
    /// Metadata, counter and version (hash).
    pub meta: String,
    /// The list id → owner entry (string, outside the client's slot).
    pub owner: String,
}

/// The immutable facts of a list, cached per process after the first lookup.
#[derive(Debug)]
struct ListInfo {
    client: ClientId,
    format: ListFormat,
    bits: Bits,
    capacity: u64,
    /// The length its bytes string must have (from `bits` and `capacity`).
    byte_len: usize,
    allocator: Allocator,
}

/// The Lua scripts, hashed once.
struct Scripts {
    allocate: Script,
    set_status: Script,
}

/// The Redis [`Store`]. Cheap to share behind an `Arc`; all methods take
/// `&self` and clone the multiplexed connection handle per call.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    settings: StoreSettings,
    /// Byte length of a list opened with `settings`.
    new_list_bytes: usize,
    scripts: Scripts,
    /// List id → immutable list facts. A std `RwLock` is right here: the
    /// critical sections are a hash lookup or insert and never await.
    lists: RwLock<HashMap<ListId, Arc<ListInfo>>>,
    /// Current-list key → the list this process last allocated from there
    /// (always one whose facts are in `lists`).
    last: RwLock<HashMap<String, ListId>>,
    /// Lists found damaged, for readiness and one log line each.
    damaged: DamagedLists,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
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
        if redis
            .prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace())
        {
            return Err(StoreError::Invalid(
                "the Redis key prefix may not hold braces or whitespace".to_owned(),
            ));
        }
        if redis.command_timeout.is_zero() {
            return Err(StoreError::Invalid(
                "the Redis command timeout must be above zero".to_owned(),
            ));
        }
        // Capacity and lease: the rules every adapter applies, checked now
        // rather than at the first allocation.
        common::check_settings(&settings)?;
        let new_list_bytes = crate::domain::packed::byte_len(settings.bits, settings.capacity)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;

        let client = ::redis::Client::open(redis.url.as_str())
            .map_err(|e| StoreError::Invalid(format!("bad Redis URL ({:?})", e.kind())))?;
        let t = redis.command_timeout;
        // The manager's own timeouts bound each attempt; our timeout around
        // every call bounds the whole, reconnection back-off included. A
        // short back-off lets the store recover soon after Redis returns.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(t))
            .set_connection_timeout(Some(t))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(t, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| timed_out(t))?
            .map_err(map_err)?;
        let store = RedisStore {
            conn,
            prefix: redis.prefix,
            timeout: t,
            settings,
            new_list_bytes,
            scripts: Scripts {
                allocate: Script::new(include_str!("redis/allocate.lua")),
                set_status: Script::new(include_str!("redis/set_status.lua")),
            },
            lists: RwLock::new(HashMap::new()),
            last: RwLock::new(HashMap::new()),
            damaged: DamagedLists::new(),
        };
        for warning in store.risky_settings().await {
            tracing::warn!("{warning}");
        }
        Ok(store)
    }

    /// What in the server's configuration puts acknowledged data at risk:
    /// today, a `maxmemory-policy` that may evict keys. An evicted list
    /// string would be refused (fail closed) rather than published as all
    /// VALID, but its revocations would be lost. A server that does not let
    /// us read its configuration (managed Redis often renames `CONFIG`) is
    /// given the benefit of the doubt.
    async fn risky_settings(&self) -> Vec<String> {
        let mut conn = self.conn.clone();
        let reply: Result<Vec<String>, StoreError> = self
            .run(
                ::redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(&mut conn),
            )
            .await;
        match reply.as_deref() {
            Ok([_, policy]) if policy != "noeviction" => vec![format!(
                "Redis maxmemory-policy is '{policy}', not 'noeviction': under memory pressure \
                 Redis may evict status lists and idempotency records, losing revocations \
                 (evicted lists are refused, never published as valid); set \
                 `maxmemory-policy noeviction`"
            )],
            _ => Vec::new(),
        }
    }

    /// The keys of a list, for tools and tests that inspect Redis directly
    /// (e.g. `MEMORY USAGE`).
    pub fn list_keys(&self, client: &ClientId, list: &ListId) -> ListKeys {
        let meta = self.meta_key(&self.client_prefix(client), list);
        ListKeys {
            bytes: format!("{meta}:b"),
            times: format!("{meta}:t"),
            meta,
            owner: self.owner_key(list),
        }
    }

    fn client_prefix(&self, client: &ClientId) -> String {
        format!("{}{{{}}}:", self.prefix, client)
    }

    fn meta_key(&self, client_prefix: &str, list: &ListId) -> String {
        format!("{client_prefix}l:{list}")
    }

    fn owner_key(&self, list: &ListId) -> String {
        format!("{}list:{}", self.prefix, list)
    }

    /// Runs one Redis call under the command timeout.
    async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| timed_out(self.timeout))?
            .map_err(map_err)
    }

    fn cached(&self, list: &ListId) -> Option<Arc<ListInfo>> {
        // A poisoned lock only means another thread panicked while holding
        // it; the map itself is always consistent (single inserts).
        let map = self.lists.read().unwrap_or_else(|e| e.into_inner());
        map.get(list).cloned()
    }

    fn last_list(&self, cur_key: &str) -> Option<ListId> {
        let map = self.last.read().unwrap_or_else(|e| e.into_inner());
        map.get(cur_key).copied()
    }

    fn set_last_list(&self, cur_key: String, list: ListId) {
        let mut map = self.last.write().unwrap_or_else(|e| e.into_inner());
        map.insert(cur_key, list);
    }

    fn remember(&self, list: ListId, info: ListInfo) -> Arc<ListInfo> {
        let mut map = self.lists.write().unwrap_or_else(|e| e.into_inner());
        // Bounded like `common::AllocatorCache`: a process that reads many
        // lists forgets them all at once rather than growing; facts missing
        // from memory are looked up in Redis again.
        if map.len() >= common::CACHE_LIMIT && !map.contains_key(&list) {
            map.clear();
        }
        map.entry(list).or_insert_with(|| Arc::new(info)).clone()
    }

    /// The list's immutable facts: from memory, or from Redis (owner entry,
    /// then metadata) on first use. `None` when there is no such list.
    async fn list_info(&self, list: &ListId) -> Result<Option<Arc<ListInfo>>, StoreError> {
        if let Some(info) = self.cached(list) {
            return Ok(Some(info));
        }
        let mut conn = self.conn.clone();
        let owner: Option<String> = self
            .run(
                ::redis::cmd("GET")
                    .arg(self.owner_key(list))
                    .query_async(&mut conn),
            )
            .await?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        let client = ClientId::parse(&owner)
            .map_err(|_| StoreError::Corrupt(format!("list {list} has a bad owner")))?;
        let meta_key = self.meta_key(&self.client_prefix(&client), list);
        let fields: Vec<Value> = self
            .run(
                ::redis::cmd("HMGET")
                    .arg(&meta_key)
                    .arg(&["owner", "fmt", "bits", "cap", "key"])
                    .query_async(&mut conn),
            )
            .await?;
        let [owner_f, fmt, bits, cap, key] = fields.as_slice() else {
            return Err(StoreError::Corrupt("unexpected HMGET reply".to_owned()));
        };
        if matches!(owner_f, Value::Nil) {
            // An owner entry whose list was never opened (a claim left by a
            // lost race or a crash): no list.
            return Ok(None);
        }
        if text(owner_f).as_deref() != Some(client.as_str()) {
            return Err(StoreError::Corrupt(format!(
                "list {list} disagrees about its owner"
            )));
        }
        let info = list_info_from(list, client, fmt, bits, cap, key)?;
        Ok(Some(self.remember(*list, info)))
    }

    /// Builds the answer of an allocation script reply
    /// `{tag, list, first, count, key, cap, fmt, bits, opened}`.
    async fn allocation_from(
        &self,
        client: &ClientId,
        reply: &[Value],
    ) -> Result<Allocation, StoreError> {
        let [_, list, first, count, key, cap, fmt, bits, _opened] = reply else {
            return Err(StoreError::Corrupt(
                "unexpected allocation reply".to_owned(),
            ));
        };
        let list = text(list)
            .and_then(|s| ListId::parse(&s).ok())
            .ok_or_else(|| StoreError::Corrupt("bad list id in a record".to_owned()))?;
        let info = match self.cached(&list) {
            Some(info) => info,
            // The script left the facts out (it thought this process knew the
            // list): look them up.
            None if matches!(key, Value::Nil) => self
                .list_info(&list)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("list {list} vanished")))?,
            None => {
                let info = list_info_from(&list, client.clone(), fmt, bits, cap, key)?;
                self.remember(list, info)
            }
        };
        let first = int(first).ok_or_else(|| corrupt_field(&list, "first"))?;
        let count = int(count).ok_or_else(|| corrupt_field(&list, "count"))?;
        let indexes = (first..first.saturating_add(count))
            .map(|n| {
                info.allocator
                    .permute(n)
                    .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Allocation {
            list,
            format: info.format,
            indexes,
        })
    }

    /// Drops an owner entry that was claimed for a list that was not opened
    /// after all. Best effort: a leftover entry only names a list that does
    /// not exist, which every read treats as "no list".
    async fn release_claim(&self, list: &ListId) {
        let mut conn = self.conn.clone();
        let _ = self
            .run(
                ::redis::cmd("DEL")
                    .arg(self.owner_key(list))
                    .query_async::<i64>(&mut conn),
            )
            .await;
    }
}

impl Store for RedisStore {
    #[tracing::instrument(skip(self, req), fields(client = %req.client, count = req.count))]
    async fn allocate(&self, req: &AllocateRequest) -> Result<AllocateOutcome, StoreError> {
        common::check_request(req, &self.settings)?;
        let cp = self.client_prefix(&req.client);
        let idem_key = format!("{cp}j:{}", req.jti);
        let cur_key = format!("{cp}cur:{}", req.format.name());
        let ttl = req.keep_until.saturating_sub(req.now).max(1);
        let mut conn = self.conn.clone();
        // The list this process last allocated from for (client, format):
        // its facts are cached, so the script need not send them again.
        let known = self.last_list(&cur_key);

        // A candidate id and key for a new list are drawn only once the
        // script says one is needed (once per list, not per allocation).
        let mut candidate: Option<(ListId, AllocatorKey)> = None;
        let mut claimed = false;
        for _ in 0..OPEN_ATTEMPTS {
            let reply: Vec<Value> = self
                .run(
                    self.scripts
                        .allocate
                        .key(&idem_key)
                        .key(&cur_key)
                        .arg(&req.digest[..])
                        .arg(req.now)
                        .arg(ttl)
                        .arg(req.keep_until)
                        .arg(req.count)
                        .arg(self.settings.capacity)
                        .arg(self.settings.bits.get())
                        .arg(req.format.name())
                        .arg(req.status_expiry)
                        .arg(&cp)
                        .arg(candidate.as_ref().map_or("", |(id, _)| id.as_str()))
                        .arg(
                            candidate
                                .as_ref()
                                .map_or(&[][..], |(_, k)| &k.as_bytes()[..]),
                        )
                        .arg(if claimed { "1" } else { "0" })
                        .arg(req.client.as_str())
                        .arg(self.new_list_bytes)
                        .arg(known.as_ref().map_or("", |l| l.as_str()))
                        .invoke_async(&mut conn),
                )
                .await?;
            let tag = reply.first().and_then(text).unwrap_or_default();
            let opened = reply.get(8).and_then(int) == Some(1);
            if let Some((id, _)) = &candidate
                && claimed
                && !opened
                && tag != "open"
                && tag != "collision"
            {
                self.release_claim(id).await;
            }
            match tag.as_str() {
                "allocated" => {
                    let a = self.allocation_from(&req.client, &reply).await?;
                    if known != Some(a.list) {
                        self.set_last_list(cur_key, a.list);
                    }
                    return Ok(AllocateOutcome::Allocated(a));
                }
                "replayed" => {
                    return Ok(AllocateOutcome::Replayed(
                        self.allocation_from(&req.client, &reply).await?,
                    ));
                }
                "changed" => return Ok(AllocateOutcome::Changed),
                "damaged" => {
                    let list = reply
                        .get(1)
                        .and_then(text)
                        .and_then(|s| ListId::parse(&s).ok())
                        .ok_or_else(|| {
                            StoreError::Corrupt("bad list id in a damaged reply".to_owned())
                        })?;
                    return Err(self.damaged.report(
                        list,
                        "the current list's bytes are missing or of the wrong length".to_owned(),
                    ));
                }
                "open" => {
                    // Claim a fresh id globally first, so that the list, once
                    // opened, is always reachable by its id alone.
                    let id = ListId::random();
                    let set: Option<String> = self
                        .run(
                            ::redis::cmd("SET")
                                .arg(self.owner_key(&id))
                                .arg(req.client.as_str())
                                .arg("NX")
                                .query_async(&mut conn),
                        )
                        .await?;
                    claimed = set.is_some();
                    candidate = claimed.then(|| (id, AllocatorKey::random()));
                }
                "collision" => {
                    candidate = None;
                    claimed = false;
                }
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "unexpected allocation reply {other:?}"
                    )));
                }
            }
        }
        Err(StoreError::Backend(
            "could not find a free id for a new list".to_owned(),
        ))
    }

    #[tracing::instrument(skip(self, change), fields(client = %change.client, list = %change.list))]
    async fn set_status(&self, change: &StatusChange) -> Result<SetStatusOutcome, StoreError> {
        common::check_change(change)?;
        let (client, list, idx, status) = (&change.client, &change.list, change.idx, change.status);
        let Some(info) = self.list_info(list).await? else {
            return Ok(SetStatusOutcome::ListNotFound);
        };
        if info.client != *client {
            return Ok(SetStatusOutcome::NotYourList);
        }
        let Ok(n) = info.allocator.invert(idx) else {
            // Outside the list's capacity: never handed out.
            return Ok(SetStatusOutcome::NeverIssued);
        };
        let width = info.bits.get();
        let (byte, shift) = info.format.layout().byte_and_shift(info.bits, idx);
        // BITFIELD numbers bits from the most significant bit of byte 0 and
        // reads a field big-endian, so the entry whose value sits `shift`
        // bits above the low end of its byte starts here, in either order.
        let offset = byte * 8 + u64::from(8 - shift - width);
        let rules: String = (0u8..4)
            .map(|v| common::rule_char(v, status, info.bits))
            .collect();
        let cp = self.client_prefix(client);
        let meta = self.meta_key(&cp, list);
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = self
            .run(
                self.scripts
                    .set_status
                    .key(&meta)
                    .key(format!("{meta}:b"))
                    .key(format!("{meta}:t"))
                    .key(format!("{cp}j:{}", change.jti))
                    .arg(client.as_str())
                    .arg(n)
                    .arg(format!("u{width}"))
                    .arg(offset)
                    .arg(status.value())
                    .arg(change.now)
                    .arg(idx)
                    .arg(rules)
                    .arg(&change.digest[..])
                    .arg(change.keep_until)
                    .arg(change.keep_until.saturating_sub(change.now).max(1))
                    .arg(info.byte_len)
                    .invoke_async(&mut conn),
            )
            .await?;
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
            "done" => SetStatusOutcome::Done { at: change.now },
            "already" => {
                current()?;
                SetStatusOutcome::Already {
                    at: reply.get(2).and_then(int),
                }
            }
            "replayed" => {
                let at = reply.get(2).and_then(int);
                match reply.get(1).and_then(text).as_deref() {
                    Some("d") => SetStatusOutcome::Done {
                        at: at.ok_or_else(|| corrupt_field(list, "recorded change time"))?,
                    },
                    Some("a") => SetStatusOutcome::Already { at },
                    _ => return Err(StoreError::Corrupt("bad change record".to_owned())),
                }
            }
            "changed" => SetStatusOutcome::Changed,
            "notallowed" => SetStatusOutcome::NotAllowed {
                current: current()?,
            },
            "never" => SetStatusOutcome::NeverIssued,
            "toowide" => SetStatusOutcome::Unsupported { bits: info.bits },
            "notyours" => SetStatusOutcome::NotYourList,
            "notfound" => SetStatusOutcome::ListNotFound,
            "damaged" => {
                return Err(self.damaged.report(
                    *list,
                    "the list's bytes are missing or of the wrong length".to_owned(),
                ));
            }
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unexpected status reply {other:?}"
                )));
            }
        })
    }

    #[tracing::instrument(skip(self), fields(list = %list))]
    async fn read_list(&self, list: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
        let Some(info) = self.list_info(list).await? else {
            return Ok(None);
        };
        let meta = self.meta_key(&self.client_prefix(&info.client), list);
        let mut conn = self.conn.clone();
        // MULTI/EXEC: metadata, version and bytes from one moment.
        let (fields, bytes): (Vec<Value>, Option<Vec<u8>>) = self
            .run(
                ::redis::pipe()
                    .atomic()
                    .cmd("HMGET")
                    .arg(&meta)
                    .arg(&["owner", "n", "created", "retire", "v"])
                    .cmd("GET")
                    .arg(format!("{meta}:b"))
                    .query_async(&mut conn),
            )
            .await?;
        let [owner, n, created, retire, v] = fields.as_slice() else {
            return Err(StoreError::Corrupt("unexpected HMGET reply".to_owned()));
        };
        if matches!(owner, Value::Nil) {
            return Ok(None);
        }
        // The string is created at full length when the list is opened and
        // only ever written in place. Missing or another length means it was
        // lost (evicted, deleted, a partial restore): reading it as zeros
        // would publish revoked entries as VALID, so refuse.
        self.damaged
            .check_len(*list, bytes.as_ref().map(Vec::len), info.byte_len)?;
        let bytes = bytes.unwrap_or_default();
        self.damaged.clear(list);
        Ok(Some(ListSnapshot {
            meta: ListMeta {
                id: *list,
                client: info.client.clone(),
                format: info.format,
                bits: info.bits,
                capacity: info.capacity,
                allocated: int(n).ok_or_else(|| corrupt_field(list, "n"))?,
                created_at: int(created).ok_or_else(|| corrupt_field(list, "created"))?,
                retire_after: int(retire).ok_or_else(|| corrupt_field(list, "retire"))?,
            },
            version: int(v).ok_or_else(|| corrupt_field(list, "v"))?,
            bytes,
        }))
    }

    #[tracing::instrument(skip(self), fields(list = %list))]
    async fn list_version(&self, list: &ListId) -> Result<Option<u64>, StoreError> {
        let Some(info) = self.list_info(list).await? else {
            return Ok(None);
        };
        let meta = self.meta_key(&self.client_prefix(&info.client), list);
        let mut conn = self.conn.clone();
        // The version and the bytes' length in one round trip: a list whose
        // bytes were lost must not keep being served from a cache that only
        // asks for the version.
        let (v, len): (Value, usize) = self
            .run(
                ::redis::pipe()
                    .cmd("HGET")
                    .arg(&meta)
                    .arg("v")
                    .cmd("STRLEN")
                    .arg(format!("{meta}:b"))
                    .query_async(&mut conn),
            )
            .await?;
        if matches!(v, Value::Nil) {
            return Ok(None);
        }
        // STRLEN answers 0 for a missing key (a list is never 0 bytes long).
        self.damaged
            .check_len(*list, (len > 0).then_some(len), info.byte_len)?;
        int(&v).map(Some).ok_or_else(|| corrupt_field(list, "v"))
    }

    async fn health(&self) -> Result<StoreHealth, StoreError> {
        let mut conn = self.conn.clone();
        let _: String = self
            .run(::redis::cmd("PING").query_async(&mut conn))
            .await?;
        Ok(StoreHealth {
            damaged: self.damaged.list(),
            warnings: self.risky_settings().await,
        })
    }
}

/// Builds the cached facts of a list from its metadata fields.
fn list_info_from(
    list: &ListId,
    client: ClientId,
    fmt: &Value,
    bits: &Value,
    cap: &Value,
    key: &Value,
) -> Result<ListInfo, StoreError> {
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
    let allocator = Allocator::new(&AllocatorKey::from_bytes(key), capacity)
        .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))?;
    let byte_len = crate::domain::packed::byte_len(bits, capacity)
        .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))?;
    Ok(ListInfo {
        client,
        format,
        bits,
        capacity,
        byte_len,
        allocator,
    })
}

fn corrupt_field(list: &ListId, field: &str) -> StoreError {
    StoreError::Corrupt(format!("list {list}: bad or missing field {field}"))
}

fn timed_out(t: Duration) -> StoreError {
    StoreError::Unavailable(format!("Redis did not answer within {} ms", t.as_millis()))
}

/// Connection-level failures (and the server's "not now" answers) are
/// retryable unavailability; everything else is a backend error.
fn map_err(e: RedisError) -> StoreError {
    let retryable = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                )
        );
    if retryable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
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

    #[test]
    fn debug_hides_the_redis_password() {
        let s = RedisSettings::new("redis://user:s3cret@redis.example:6380/0");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis.example:6380"), "{shown}");
        let s = RedisSettings::new("s3cret nonsense");
        assert!(!format!("{s:?}").contains("s3cret"));
        let s = RedisSettings::new("redis+unix:///run/redis.sock?db=1&pass=s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
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
}
