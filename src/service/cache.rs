//! The signed-token cache: one signed list token per (list, version), kept in
//! memory and served without touching the store while it is known fresh.
//!
//! Why: a status list is read by every verifier of every credential in it,
//! while it changes only on a revocation. Signing and compressing on every GET
//! would cost a store read, a zlib pass and an ECDSA signature per request.
//! Instead:
//!
//! - a GET serves the cached token if its version was confirmed in the store
//!   within the last `freshness` (250 ms by default) and it is not due for
//!   re-signing: no store call at all;
//! - otherwise it asks the store for the list's version (one cheap call) and
//!   serves the cached token if the version is unchanged;
//! - only when the version changed (or the token is half-way to its `exp`)
//!   does it read the list, compress, sign and replace the cached token.
//!   Each token keeps its list's compressed segments
//!   ([`crate::domain::CompressedList`]): the rebuild compares the new bytes
//!   with them segment by segment and compresses only those that differ.
//!
//! So a hot list costs a few store calls per second per replica whatever the
//! GET rate, and a change is visible at once in the process that made it
//! (`Service::change` calls [`TokenCache::invalidate`] after every
//! acknowledged change), at once in the other replicas when the store has a
//! change feed (`Service::follow_changes` calls [`TokenCache::invalidate`]
//! for each list it reports), and within `freshness` plus one store round
//! trip everywhere in any case (the safety net for a missed notice).
//!
//! **Single flight, shared failures.** The confirm/rebuild step runs once per
//! list at a time: concurrent GETs wait for it and take its result, whatever
//! it was, instead of repeating it. A failed store check is remembered for
//! `freshness` like a successful one, so while the store stalls or is down a
//! list costs one timed-out store call per `freshness`, and every GET answers
//! within about one store timeout, from the last good token (`Stale`) until
//! that token's `exp`.
//!
//! **Own changes are never hidden.** [`TokenCache::invalidate`] bumps the
//! list's epoch. A token may be served, fresh or stale, only while the store
//! check that last confirmed it started after the latest bump; otherwise the
//! store must confirm it again, and if the store cannot be reached the GET
//! fails ([`CacheError::Store`], 503) rather than show a list without a change
//! this process has acknowledged.
//!
//! **Bounded.** At most [`PublishSettings::max_lists`] tokens and
//! [`PublishSettings::max_bytes`] bytes of token bodies (both content codings)
//! and their segments are held, the least
//! recently used evicted first. A GET only reads a shared map and stamps its
//! list with the cache clock (an atomic), so hits never contend on a write
//! lock; eviction scans the map only when a new token takes the cache over a
//! limit. A list the store does not know (or cannot be reached for, with
//! nothing cached) leaves no entry behind, so GETs of random ids cannot grow
//! the cache.
//!
//! **Signing through a port.** The cache holds the signer as
//! `Arc<dyn ListSigner>` and calls it only on a rebuild: a hit is a map read,
//! an atomic stamp and an `Arc` clone, with no dynamic call.
//!
//! **Key rotation.** Each token remembers the signer's key generation
//! ([`ListSigner::key_generation`]) it was signed under. A token from an
//! older generation is due for re-signing like one half-way to its `exp`:
//! the next GET of its list re-signs it, once (single flight per list), with
//! the key in force. The cache learns the generation from the signer at every
//! store check, and at once from [`TokenCache::signer_changed`], which the
//! reload calls after a rotation; a hit compares with that copy, an atomic,
//! so it still makes no dynamic call. Lists are re-signed as they are read,
//! not all at once, so a rotation causes no burst of signing. While the
//! store is unreachable an old-key token may still be served stale: its key
//! stays published until the token has expired.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::{Bits, CompressedList, ListFormat, ListId, ListRef, StatusList};
use crate::ports::{ListSigner, ListSnapshot, ListToSign, SignError, Store, StoreError};

/// Lists at least this large are compressed and signed off the reactor.
const BLOCKING_THRESHOLD: usize = 16 * 1024;

/// Settings of the published tokens and of the cache that holds them; built
/// once from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSettings {
    /// The service's public base URL: the tokens' `iss` and the prefix of
    /// every list URI (`sub`).
    pub base_url: String,
    /// How long a signed token is valid (`exp - iat`, 24 h by default). A
    /// token is re-signed once half of this has passed.
    pub token_lifetime: Duration,
    /// How long verifiers may cache a list (`ttl`, 300 s by default; also the
    /// HTTP `max-age`, capped by the token's remaining lifetime).
    pub ttl: Duration,
    /// How long a version check, or a failed one, stays good before the next
    /// GET asks the store again (250 ms by default).
    pub freshness: Duration,
    /// At most this many signed tokens are kept (10,000 by default; at least
    /// 1).
    pub max_lists: usize,
    /// At most this many bytes of token bodies (identity and gzip) and their
    /// kept segments ([`Published::held_bytes`]) are kept (256 MiB by default; at least 1).
    /// A single token larger than this is still kept, alone.
    pub max_bytes: usize,
    /// How long a token is served before its list is compressed again at
    /// zlib level 9 and the smaller token re-signed in the background (1 s
    /// by default; see [`crate::domain::segmented`]): a change is published
    /// at once with the fast encoding, and lists that keep changing are not
    /// recompressed after every change.
    pub optimize_after: Duration,
}

impl Default for PublishSettings {
    fn default() -> Self {
        PublishSettings {
            base_url: "http://localhost:8080".to_owned(),
            token_lifetime: Duration::from_secs(24 * 3600),
            ttl: Duration::from_secs(300),
            freshness: Duration::from_millis(250),
            max_lists: 10_000,
            max_bytes: 256 * 1024 * 1024,
            optimize_after: Duration::from_secs(1),
        }
    }
}

/// A signed list token, ready to send in both content codings.
///
/// Built once per (list, version, signing time) and shared by every response
/// through `Arc`: a GET copies none of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The list's format (decides the media type).
    pub format: ListFormat,
    /// The list version the token shows.
    pub version: u64,
    /// The compact JWS, as sent without a content coding. `Bytes` so that
    /// every response shares the one buffer instead of copying it.
    pub body: bytes::Bytes,
    /// `body` as GZIP (RFC 1952), built with the token, for clients that
    /// accept `Content-Encoding: gzip` (the draft says a JWT status list
    /// SHOULD be sent so). Decodes to exactly `body`.
    pub gzip: bytes::Bytes,
    /// The HTTP entity tag of `body`: `W/"<version>-<iat>"` (with
    /// `-k<key generation>` once a key was replaced), so that a re-signed
    /// token (new `exp`, or new key) is never answered with 304 to a client
    /// that holds the old one. Weak (RFC 9110 §8.8.1): the token re-signed
    /// with its list compressed smaller in the background (same version,
    /// same `iat` and `exp`, other bytes) is the same document to a
    /// verifier, so a client holding either is answered 304. A valid header
    /// value (ASCII), as `Bytes` so that responses share it.
    pub etag: bytes::Bytes,
    /// The entity tag of `gzip`: `W/"<version>-<iat>-gz"`, its own, so that
    /// a cache never takes one content coding for the other (RFC 9110
    /// §8.8.3).
    pub gzip_etag: bytes::Bytes,
    /// The same list as a CWT (`application/statuslist+cwt`), signed with
    /// the JWT, for Token Status Lists only (`None` for W3C lists). Not
    /// gzipped: it is binary CBOR around bytes that are already zlib, so
    /// gzip would gain nothing (draft §8.2 asks gzip for the JWT form only).
    pub cwt: Option<bytes::Bytes>,
    /// The entity tag of `cwt`: `W/"<version>-<iat>-cwt"`, distinct from
    /// the JWT's in either coding.
    pub cwt_etag: bytes::Bytes,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expires at (unix seconds).
    pub exp: u64,
    /// The signer's key generation when the token was signed (read before
    /// signing, so never above the key's own): a lower one than the
    /// signer's now means it was signed by a replaced key.
    pub key_generation: u64,
    /// Indexes handed out in the list when it was read (for fill metrics).
    pub allocated: u64,
    /// The list's capacity.
    pub capacity: u64,
    /// Bits per entry.
    pub bits: Bits,
    /// The list's bytes compressed in segments, as the token shows them. Not
    /// sent: kept so that the next version is re-published by compressing
    /// only the segments whose bytes changed.
    pub compressed: Arc<CompressedList>,
}

impl Published {
    /// The bytes the cache counts for this token against
    /// [`PublishSettings::max_bytes`]: every body (JWT identity and gzip,
    /// CWT) and the kept segments.
    pub fn held_bytes(&self) -> usize {
        self.body
            .len()
            .saturating_add(self.gzip.len())
            .saturating_add(self.cwt.as_ref().map_or(0, bytes::Bytes::len))
            .saturating_add(self.compressed.heap_bytes())
    }
}

/// The GZIP level of the `Content-Encoding: gzip` bodies. A token is base64
/// text of data that is already compressed, so matching long strings finds
/// little and the saving (about 29 %) comes from entropy coding the
/// 64-letter alphabet. That needs dynamic Huffman codes: zlib-rs's level 1
/// uses fixed codes and saves only 1-3 %, while levels 2 to 6 give the same
/// size and level 2 takes about half the time of level 6
/// (`benches/gzip.rs`), on every rebuild.
const GZIP_LEVEL: u32 = 2;

/// `body` as GZIP (RFC 1952), the `Content-Encoding: gzip` form of a token.
/// Deterministic: no file name, modification time 0.
pub fn gzip(body: &[u8]) -> bytes::Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 * 3 + 64),
        flate2::Compression::new(GZIP_LEVEL),
    );
    // Writing into a Vec cannot fail; the encoder only reports I/O errors of
    // its sink.
    let _ = std::io::Write::write_all(&mut enc, body);
    bytes::Bytes::from(enc.finish().unwrap_or_default())
}

/// The entity tags of the identity, the gzip and the CWT representation of
/// the token of `version` signed at `iat` under key generation `key` (the
/// same for its optimized re-signing). The generation is in the tags once a
/// key was replaced (`W/"<version>-<iat>-k<key>"`), so that a token
/// re-signed by a new key in the second of the old one's `iat` is not
/// answered with 304 to a client holding the old one.
fn etags(version: u64, iat: u64, key: u64) -> [bytes::Bytes; 3] {
    let tag = if key == 0 {
        format!("W/\"{version}-{iat}")
    } else {
        format!("W/\"{version}-{iat}-k{key}")
    };
    [
        bytes::Bytes::from(format!("{tag}\"")),
        bytes::Bytes::from(format!("{tag}-gz\"")),
        bytes::Bytes::from(format!("{tag}-cwt\"")),
    ]
}

/// How a GET was served, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// From memory, no store call by this request.
    Hit,
    /// From memory after the store confirmed the version.
    Confirmed,
    /// Newly built and signed.
    Rebuilt,
    /// From memory because the store could not be reached; still before `exp`.
    Stale,
}

impl CacheOutcome {
    /// The `outcome` label of `statuslist_token_cache_total`.
    pub fn label(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Confirmed => "confirmed",
            CacheOutcome::Rebuilt => "rebuilt",
            CacheOutcome::Stale => "stale",
        }
    }
}

/// Why no token could be served.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No list with that id and format.
    #[error("status list not found")]
    NotFound,
    /// The store failed and no token may be served: none is cached, it is
    /// past its `exp`, or this process changed the list since the store last
    /// confirmed it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed (stored data that cannot be published).
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The blocking signing task did not finish.
    #[error("the signing task failed")]
    Join,
}

/// How much the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheUsage {
    /// Signed tokens held (never above [`PublishSettings::max_lists`]).
    pub lists: usize,
    /// Bytes of their bodies, both codings (above [`PublishSettings::max_bytes`] only when
    /// one token alone is larger).
    pub bytes: usize,
}

/// The answer of one store check.
#[derive(Debug)]
enum Checked {
    /// The store confirmed the slot's token (possibly after a rebuild).
    Confirmed,
    /// The store has no such list.
    NotFound,
    /// The store could not answer.
    Failed(StoreError),
}

#[derive(Debug)]
struct Check {
    /// When the check finished: it counts for `freshness` from then.
    at: Instant,
    /// The slot's epoch when the check started: after a later
    /// [`TokenCache::invalidate`] it no longer counts.
    epoch: u64,
    result: Checked,
}

#[derive(Debug, Default)]
struct State {
    /// The last good token, kept for stale serving even after failed checks.
    token: Option<Arc<Published>>,
    /// The slot's epoch when the store check that last confirmed `token`
    /// started: the token may be served only while it equals the epoch.
    token_epoch: u64,
    /// The latest finished store check.
    last: Option<Check>,
    /// How many store checks have finished: a GET that saw a lower count
    /// before waiting for the flight takes `last` as its answer.
    checks: u64,
}

impl State {
    /// The store confirmed `token` by a check that started at `epoch`.
    fn confirm(&mut self, token: Arc<Published>, epoch: u64) {
        self.token = Some(token);
        self.token_epoch = epoch;
        self.record(epoch, Checked::Confirmed);
    }

    fn record(&mut self, epoch: u64, result: Checked) {
        self.last = Some(Check {
            at: Instant::now(),
            epoch,
            result,
        });
        self.checks = self.checks.wrapping_add(1);
    }
}

/// One list's cache line.
#[derive(Debug, Default)]
struct Slot {
    /// Token and last check; locked briefly, never across an await, and
    /// after the map lock when both are taken.
    state: Mutex<State>,
    /// Held across the store check, so that it is single-flight.
    rebuild: tokio::sync::Mutex<()>,
    /// Bumped by [`TokenCache::invalidate`] so that this process's own
    /// changes show at once instead of after `freshness`.
    epoch: AtomicU64,
    /// The cache clock when the list was last used (for LRU eviction).
    last_used: AtomicU64,
    /// Set while the slot's token is being optimized in the background, so
    /// that a list is recompressed by one task at a time.
    optimizing: std::sync::atomic::AtomicBool,
}

/// A slot in the map, with the size it is accounted for.
#[derive(Debug)]
struct Held {
    slot: Arc<Slot>,
    /// The size of its token ([`Published::size`]); `None` while its first check runs (such
    /// a slot counts towards no limit and is never evicted).
    bytes: Option<usize>,
}

/// The map of slots and the totals of the limits; changed only under the
/// write lock.
#[derive(Debug, Default)]
struct Slots {
    map: HashMap<ListId, Held>,
    lists: usize,
    bytes: usize,
}

impl Slots {
    /// Removes `id`'s slot, taking its token off the totals; true when a
    /// token was counted.
    fn take(&mut self, id: &ListId) -> bool {
        match self.map.remove(id) {
            Some(Held {
                bytes: Some(size), ..
            }) => {
                self.lists = self.lists.saturating_sub(1);
                self.bytes = self.bytes.saturating_sub(size);
                true
            }
            _ => false,
        }
    }
}

/// What memory says about a GET without asking the store.
enum Memory {
    /// The answer.
    Answer(Result<(Arc<Published>, CacheOutcome), CacheError>),
    /// Ask the store; `checks` is the slot's check count seen now.
    Ask { checks: u64 },
}

/// What one store check found.
enum Step {
    Confirmed(Arc<Published>),
    Rebuilt(Arc<Published>),
    NotFound,
    Failed(StoreError),
    Unpublishable(CacheError),
}

/// The cache of signed list tokens over a [`Store`], signed by a
/// [`ListSigner`].
pub struct TokenCache<S> {
    store: Arc<S>,
    /// Called only on a rebuild, never on a hit.
    signer: Arc<dyn ListSigner>,
    settings: PublishSettings,
    slots: RwLock<Slots>,
    /// The LRU clock: advanced by every store check, read by every GET, so
    /// that a hit only stores a number into its own slot.
    clock: AtomicU64,
    /// The signer's key generation as last learnt (it only grows): tokens
    /// signed under a lower one are re-signed.
    key_generation: AtomicU64,
}

impl<S> std::fmt::Debug for TokenCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: Store> TokenCache<S> {
    /// A cache over `store`, signing with `signer`.
    pub fn new(store: Arc<S>, signer: Arc<dyn ListSigner>, settings: PublishSettings) -> Self {
        TokenCache {
            store,
            settings,
            slots: RwLock::new(Slots::default()),
            clock: AtomicU64::new(0),
            key_generation: AtomicU64::new(signer.key_generation()),
            signer,
        }
    }

    /// Tells the cache that the signer's key changed (a rotation): every
    /// token signed by the previous key is re-signed on its list's next GET
    /// instead of at its next store check.
    pub fn signer_changed(&self) {
        self.learn_key_generation();
    }

    /// Takes the signer's key generation into the cache's copy.
    fn learn_key_generation(&self) {
        self.key_generation
            .fetch_max(self.signer.key_generation(), Ordering::AcqRel);
    }

    /// The settings the tokens are built with.
    pub fn settings(&self) -> &PublishSettings {
        &self.settings
    }

    /// How many tokens and bytes the cache holds now.
    pub fn usage(&self) -> CacheUsage {
        let slots = read(&self.slots);
        CacheUsage {
            lists: slots.lists,
            bytes: slots.bytes,
        }
    }

    /// The signed token of list `id` in `format`, at `now` (unix seconds).
    ///
    /// # Errors
    /// [`CacheError::NotFound`] for an unknown list or one of the other
    /// format; [`CacheError::Store`] when the store fails and no token may be
    /// served (see the module docs); [`CacheError::Sign`] when stored data
    /// cannot be published.
    pub async fn get(
        &self,
        format: ListFormat,
        id: ListId,
        now: u64,
    ) -> Result<(Arc<Published>, CacheOutcome), CacheError> {
        let slot = self.slot(id);
        let seen = match self.remembered(&slot, format, now, None) {
            Memory::Answer(answer) => return self.served(&slot, id, answer, now),
            Memory::Ask { checks } => checks,
        };
        let _flight = slot.rebuild.lock().await;
        // A check that finished while this request waited answers it too:
        // repeating it would queue one store timeout per waiter.
        if let Memory::Answer(answer) = self.remembered(&slot, format, now, Some(seen)) {
            return self.served(&slot, id, answer, now);
        }
        let answer = self.check(&slot, format, id, now).await;
        self.served(&slot, id, answer, now)
    }

    /// Passes `answer` on, first starting the background optimization of the
    /// token it serves when that is due (see
    /// [`PublishSettings::optimize_after`]): lists nobody reads are never
    /// recompressed.
    fn served(
        &self,
        slot: &Arc<Slot>,
        id: ListId,
        answer: Result<(Arc<Published>, CacheOutcome), CacheError>,
        now: u64,
    ) -> Result<(Arc<Published>, CacheOutcome), CacheError> {
        if let Ok((token, _)) = &answer
            && !token.compressed.is_optimized()
            && now
                >= token
                    .iat
                    .saturating_add(self.settings.optimize_after.as_secs())
            && !slot.optimizing.swap(true, Ordering::AcqRel)
        {
            let (slot, token) = (slot.clone(), token.clone());
            let (signer, settings) = (self.signer.clone(), self.settings.clone());
            tokio::task::spawn_blocking(move || {
                match optimized_token(id, &token, &*signer, &settings) {
                    Ok(Some(better)) => {
                        let mut state = lock(&slot.state);
                        // Only over the token it was made from: a newer
                        // version may have replaced it meanwhile.
                        if state.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, &token)) {
                            state.token = Some(Arc::new(better));
                        }
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(list = %id, error = %err, "optimizing a list failed; it stays as published")
                    }
                }
                slot.optimizing.store(false, Ordering::Release);
            });
        }
        answer
    }

    /// Marks list `id` as changed by this process; call it after every
    /// acknowledged change outcome (also "already had that status", which
    /// another replica may just have made). The next GET asks the store, and
    /// no token confirmed before this call is served again, not even as
    /// stale, until the store confirms a version again.
    ///
    /// Also called for a change another replica made, when the store's
    /// change feed reports it (`Service::follow_changes`): the same rule,
    /// since the token is then known to be out of date.
    pub fn invalidate(&self, id: &ListId) {
        if let Some(held) = read(&self.slots).map.get(id) {
            held.slot.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// [`TokenCache::invalidate`] for every held list: after a gap in the
    /// change feed, when changes may have gone unreported. Each list costs
    /// one version check on its next GET.
    pub fn invalidate_all(&self) {
        for held in read(&self.slots).map.values() {
            held.slot.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The slot of `id`, created empty when missing, stamped as used.
    fn slot(&self, id: ListId) -> Arc<Slot> {
        let found = read(&self.slots).map.get(&id).map(|h| h.slot.clone());
        let slot = match found {
            Some(slot) => slot,
            None => write(&self.slots)
                .map
                .entry(id)
                .or_insert_with(|| Held {
                    slot: Arc::default(),
                    bytes: None,
                })
                .slot
                .clone(),
        };
        // Compare before storing: a hot slot is then read-mostly and its
        // cache line is not bounced between cores on every hit.
        let now = self.clock.load(Ordering::Relaxed);
        if slot.last_used.load(Ordering::Relaxed) < now {
            slot.last_used.store(now, Ordering::Relaxed);
        }
        slot
    }

    /// Answers from the slot when its last check still counts: within
    /// `freshness` of it, or (`waited`: the check count seen before waiting
    /// for the flight) when it finished while this request waited. A check
    /// counts only if no [`TokenCache::invalidate`] came after its start.
    fn remembered(&self, slot: &Slot, format: ListFormat, now: u64, waited: Option<u64>) -> Memory {
        let state = lock(&slot.state);
        // A list's format never changes: no store call needed to refuse.
        if state.token.as_ref().is_some_and(|t| t.format != format) {
            return Memory::Answer(Err(CacheError::NotFound));
        }
        let epoch = slot.epoch.load(Ordering::SeqCst);
        if let Some(last) = state.last.as_ref().filter(|c| c.epoch == epoch) {
            let shared = waited.is_some_and(|seen| seen != state.checks);
            if shared || last.at.elapsed() < self.settings.freshness {
                match &last.result {
                    Checked::Confirmed => {
                        if let Some(token) = state
                            .token
                            .as_ref()
                            .filter(|t| !self.due_for_resigning(t, now))
                        {
                            return Memory::Answer(Ok((token.clone(), CacheOutcome::Hit)));
                        }
                    }
                    Checked::NotFound => return Memory::Answer(Err(CacheError::NotFound)),
                    Checked::Failed(err) => {
                        return Memory::Answer(stale_or(&state, epoch, now, err.clone()));
                    }
                }
            }
        }
        Memory::Ask {
            checks: state.checks,
        }
    }

    /// The store check, run by one request per slot at a time; records its
    /// result for the requests waiting behind it. The span (and the list id
    /// its events carry) is made here, on the slow path, rather than on
    /// every GET: a hit creates no span.
    #[tracing::instrument(level = "debug", skip_all, fields(list = %id))]
    async fn check(
        &self,
        slot: &Arc<Slot>,
        format: ListFormat,
        id: ListId,
        now: u64,
    ) -> Result<(Arc<Published>, CacheOutcome), CacheError> {
        slot.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        // Read before the store call: a change applied after this point bumps
        // the epoch and keeps the result below from counting for later GETs.
        let epoch = slot.epoch.load(Ordering::SeqCst);
        let cached = lock(&slot.state).token.clone();
        match self.ask_store(&id, cached, now).await {
            Step::Confirmed(token) => {
                lock(&slot.state).confirm(token.clone(), epoch);
                Ok((token, CacheOutcome::Confirmed))
            }
            Step::Rebuilt(token) => {
                let mut slots = write(&self.slots);
                lock(&slot.state).confirm(token.clone(), epoch);
                self.account(&mut slots, id, slot, token.held_bytes());
                drop(slots);
                check_format(token, format).map(|t| (t, CacheOutcome::Rebuilt))
            }
            Step::NotFound => {
                {
                    let mut state = lock(&slot.state);
                    state.token = None;
                    state.record(epoch, Checked::NotFound);
                }
                self.remove(id, slot, true);
                Err(CacheError::NotFound)
            }
            Step::Failed(err) => {
                tracing::warn!(error = %err, "store check failed; serving the last good token if allowed");
                let (answer, empty) = {
                    let mut state = lock(&slot.state);
                    state.record(epoch, Checked::Failed(err.clone()));
                    let current = slot.epoch.load(Ordering::SeqCst);
                    (stale_or(&state, current, now, err), state.token.is_none())
                };
                if empty {
                    self.remove(id, slot, false);
                }
                answer
            }
            Step::Unpublishable(err) => {
                self.remove(id, slot, false);
                Err(err)
            }
        }
    }

    /// Confirms `cached` with one version call, or reads, compresses and
    /// signs the list.
    async fn ask_store(&self, id: &ListId, cached: Option<Arc<Published>>, now: u64) -> Step {
        // The segments of the token held, whatever its version: a rebuild
        // compresses again only the segments that differ from them.
        let previous = cached.as_ref().map(|t| t.compressed.clone());
        // Every check looks at the signer's key too: a rotation that nobody
        // reported (`signer_changed`) still shows within `freshness`.
        self.learn_key_generation();
        let version = match self.store.list_version(id).await {
            Ok(Some(version)) => version,
            Ok(None) => return Step::NotFound,
            Err(err) => return Step::Failed(err),
        };
        if let Some(token) =
            cached.filter(|t| t.version == version && !self.due_for_resigning(t, now))
        {
            return Step::Confirmed(token);
        }
        let snapshot = match self.store.read_list(id).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return Step::NotFound,
            Err(err) => return Step::Failed(err),
        };
        match self.build(snapshot, previous, now).await {
            Ok(token) => Step::Rebuilt(Arc::new(token)),
            Err(err) => Step::Unpublishable(err),
        }
    }

    /// Counts `slot`'s new token of `size` bytes against the limits, if the
    /// slot is still the map's slot for `id` (an evicted one is served to the
    /// requests that hold it, then dropped), and evicts when over a limit.
    fn account(&self, slots: &mut Slots, id: ListId, slot: &Arc<Slot>, size: usize) {
        let Slots { map, lists, bytes } = slots;
        let Some(held) = map.get_mut(&id).filter(|h| Arc::ptr_eq(&h.slot, slot)) else {
            return;
        };
        match held.bytes.replace(size) {
            Some(old) => *bytes = bytes.saturating_sub(old),
            None => *lists += 1,
        }
        *bytes = bytes.saturating_add(size);
        if *lists > self.settings.max_lists || *bytes > self.settings.max_bytes {
            self.evict(slots, id);
        }
    }

    /// Evicts the least recently used tokens other than `keep`'s until both
    /// totals are 1/16 below their limits, so that a full cache scans the
    /// map once per many insertions rather than on each.
    fn evict(&self, slots: &mut Slots, keep: ListId) {
        let target_lists = self.settings.max_lists - self.settings.max_lists / 16;
        let target_bytes = self.settings.max_bytes - self.settings.max_bytes / 16;
        let mut candidates: Vec<(u64, ListId)> = slots
            .map
            .iter()
            .filter(|(id, h)| h.bytes.is_some() && **id != keep)
            .map(|(id, h)| (h.slot.last_used.load(Ordering::Relaxed), *id))
            .collect();
        candidates.sort_unstable();
        let mut evicted = 0usize;
        for (_, id) in candidates {
            if slots.lists <= target_lists && slots.bytes <= target_bytes {
                break;
            }
            if slots.take(&id) {
                evicted += 1;
            }
        }
        tracing::debug!(
            evicted,
            lists = slots.lists,
            bytes = slots.bytes,
            "token cache over its limit"
        );
    }

    /// Removes `slot` from the map if it is still the slot of `id` and
    /// (unless `always`) holds no token: lists that the store does not
    /// confirm leave nothing behind.
    fn remove(&self, id: ListId, slot: &Arc<Slot>, always: bool) {
        let mut slots = write(&self.slots);
        let ours = slots
            .map
            .get(&id)
            .is_some_and(|h| Arc::ptr_eq(&h.slot, slot) && (always || h.bytes.is_none()));
        if ours {
            slots.take(&id);
        }
    }

    /// Re-sign half-way through the token's life, so that a verifier that
    /// fetched it just before always has more than half a lifetime left;
    /// and at once when a replaced key signed it.
    fn due_for_resigning(&self, token: &Published, now: u64) -> bool {
        let half = self.settings.token_lifetime.as_secs() / 2;
        now >= token.iat.saturating_add(half)
            || token.key_generation < self.key_generation.load(Ordering::Acquire)
    }

    async fn build(
        &self,
        snapshot: ListSnapshot,
        previous: Option<Arc<CompressedList>>,
        now: u64,
    ) -> Result<Published, CacheError> {
        if snapshot.bytes.len() >= BLOCKING_THRESHOLD {
            let signer = self.signer.clone();
            let settings = self.settings.clone();
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _enter = span.enter();
                sign_snapshot(&snapshot, previous.as_deref(), &*signer, &settings, now)
            })
            .await
            .map_err(|_| CacheError::Join)?
        } else {
            sign_snapshot(
                &snapshot,
                previous.as_deref(),
                &*self.signer,
                &self.settings,
                now,
            )
        }
    }
}

/// Compresses and signs one list snapshot, compressing only the segments
/// that differ from `previous` (the last token's).
fn sign_snapshot(
    snapshot: &ListSnapshot,
    previous: Option<&CompressedList>,
    signer: &dyn ListSigner,
    settings: &PublishSettings,
    now: u64,
) -> Result<Published, CacheError> {
    let meta = &snapshot.meta;
    let list = StatusList::from_bytes(
        meta.format.layout(),
        meta.bits,
        meta.capacity,
        snapshot.bytes.clone(),
    )
    .map_err(|e| StoreError::Corrupt(format!("list {}: {e}", meta.id)))?;
    let compressed = match previous {
        Some(previous) => {
            let (compressed, stats) = previous.update(list.as_bytes());
            tracing::debug!(
                reused = stats.reused,
                compressed = stats.compressed,
                "list segments compressed"
            );
            compressed
        }
        None => CompressedList::new(list.as_bytes()),
    };
    let exp = now.saturating_add(settings.token_lifetime.as_secs().max(1));
    let signed = Signed {
        id: meta.id,
        format: meta.format,
        version: snapshot.version,
        allocated: meta.allocated,
        iat: now,
        exp,
    };
    sign(&signed, &list, compressed, signer, settings)
}

/// What a token says besides its list, kept when it is re-signed with the
/// list optimized.
struct Signed {
    id: ListId,
    format: ListFormat,
    version: u64,
    allocated: u64,
    iat: u64,
    exp: u64,
}

/// Signs `list`, compressed as `compressed`, into a token.
fn sign(
    signed: &Signed,
    list: &StatusList,
    compressed: CompressedList,
    signer: &dyn ListSigner,
    settings: &PublishSettings,
) -> Result<Published, CacheError> {
    let format = signed.format;
    let uri = ListRef {
        format,
        id: signed.id,
    }
    .uri(&settings.base_url);
    let key_generation = signer.key_generation();
    let aggregation_uri = format.aggregation_uri(&settings.base_url);
    let to_sign = ListToSign {
        format,
        list,
        compressed: &compressed,
        iss: settings.base_url.trim_end_matches('/'),
        uri: &uri,
        iat: signed.iat,
        exp: signed.exp,
        ttl: settings.ttl.as_secs(),
        aggregation_uri: aggregation_uri.as_deref(),
    };
    let body = signer.sign(&to_sign)?;
    // The CWT is signed with the JWT, eagerly: one more ECDSA signature per
    // rebuild buys one code path for caching, byte accounting, stale
    // serving and background optimization, and a first CWT GET that costs
    // what any hit costs (see README, "CWT").
    let cwt = match format {
        ListFormat::Token => Some(bytes::Bytes::from(signer.sign_cwt(&to_sign)?)),
        ListFormat::Bitstring => None,
    };
    // Compressed here, in the same (blocking, for large lists) step as the
    // signature: once per token, never per GET.
    let gzip = gzip(body.as_bytes());
    let [etag, gzip_etag, cwt_etag] = etags(signed.version, signed.iat, key_generation);
    Ok(Published {
        format,
        version: signed.version,
        body: bytes::Bytes::from(body),
        gzip,
        etag,
        gzip_etag,
        cwt,
        cwt_etag,
        iat: signed.iat,
        exp: signed.exp,
        key_generation,
        allocated: signed.allocated,
        capacity: list.len(),
        bits: list.bits(),
        compressed: Arc::new(compressed),
    })
}

/// `token` with its list's segments optimized (see
/// [`CompressedList::optimized`]) and signed again with the same times;
/// `None` when they already are.
fn optimized_token(
    id: ListId,
    token: &Published,
    signer: &dyn ListSigner,
    settings: &PublishSettings,
) -> Result<Option<Published>, CacheError> {
    let Some((compressed, stats)) = token.compressed.optimized() else {
        return Ok(None);
    };
    if stats.smaller == 0 {
        // The same bytes: the same token, now known to be as small as it
        // gets (so no GET starts this again).
        return Ok(Some(Published {
            compressed: Arc::new(compressed),
            ..token.clone()
        }));
    }
    let list = StatusList::from_bytes(
        token.format.layout(),
        token.bits,
        token.capacity,
        compressed.raw(),
    )
    .map_err(|e| StoreError::Corrupt(format!("list {id}: {e}")))?;
    let signed = Signed {
        id,
        format: token.format,
        version: token.version,
        allocated: token.allocated,
        iat: token.iat,
        exp: token.exp,
    };
    let better = sign(&signed, &list, compressed, signer, settings)?;
    tracing::debug!(
        list = %id,
        optimized = stats.compressed,
        kept = stats.reused,
        before = token.body.len(),
        after = better.body.len(),
        "list optimized"
    );
    Ok(Some(better))
}

fn check_format(token: Arc<Published>, format: ListFormat) -> Result<Arc<Published>, CacheError> {
    if token.format == format {
        Ok(token)
    } else {
        Err(CacheError::NotFound)
    }
}

/// The last good token while the store fails, if it may still be served:
/// before its `exp`, confirmed by a check that started after the latest
/// [`TokenCache::invalidate`] (`epoch`), and only for a failure to reach or
/// use the store, never for one reporting damaged data (fail closed).
fn stale_or(
    state: &State,
    epoch: u64,
    now: u64,
    err: StoreError,
) -> Result<(Arc<Published>, CacheOutcome), CacheError> {
    let reachability = matches!(err, StoreError::Unavailable(_) | StoreError::Backend(_));
    match &state.token {
        Some(token) if reachability && state.token_epoch == epoch && now < token.exp => {
            Ok((token.clone(), CacheOutcome::Stale))
        }
        _ => Err(CacheError::Store(err)),
    }
}

// A poisoned lock only means another thread panicked while holding it; the
// data (tokens, a map of Arcs, saturating totals) is still usable, so go on.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::domain::{ClientId, Jti, Status};
    use crate::ports::{
        AllocateOutcome, AllocateRequest, SetStatusOutcome, StatusChange, StoreHealth,
        StoreSettings,
    };
    use crate::store::embedded::{EmbeddedDurability, EmbeddedStore};

    const NOW: u64 = 1_800_000_000;

    /// How long a stalled store takes to fail, like a paused Redis behind
    /// the adapter's command timeout.
    const STALL: Duration = Duration::from_millis(300);

    /// A signer that writes the list's entries as digits after `iat.exp.`:
    /// the cache's rules do not depend on ES256 (the `KeySet` signer is
    /// tested in `crate::publish` and end to end in `tests/api`), and the
    /// tests can still read back what a token shows.
    #[derive(Debug)]
    struct DigitSigner;

    impl ListSigner for DigitSigner {
        fn sign(&self, l: &ListToSign<'_>) -> Result<String, SignError> {
            let mut body = format!("{}.{}.", l.iat, l.exp);
            for idx in 0..l.list.len() {
                let value = l.list.get(idx).map_err(SignError::new)?;
                body.push(char::from(b'0' + value));
            }
            Ok(body)
        }

        /// The same digits after `cwt.`, so that tests can tell which
        /// envelope they got and still read the list.
        fn sign_cwt(&self, l: &ListToSign<'_>) -> Result<Vec<u8>, SignError> {
            Ok(format!("cwt.{}", self.sign(l)?).into_bytes())
        }

        fn has_key(&self) -> bool {
            true
        }
    }

    /// The real embedded store, counting the calls the cache makes and able
    /// to play "unreachable" and "stalled".
    struct Counting {
        inner: EmbeddedStore,
        versions: AtomicUsize,
        reads: AtomicUsize,
        /// Calls that failed (down or stalled).
        failures: AtomicUsize,
        down: AtomicBool,
        /// Every read call waits [`STALL`], then fails as timed out.
        stall: AtomicBool,
        /// Held by a test to stop `list_version` after it has read the
        /// version and before it answers.
        hold: tokio::sync::Mutex<()>,
    }

    impl Counting {
        async fn check(&self) -> Result<(), StoreError> {
            if self.stall.load(Ordering::SeqCst) {
                self.failures.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(STALL).await;
                return Err(StoreError::Unavailable("test: timed out".into()));
            }
            if self.down.load(Ordering::SeqCst) {
                self.failures.fetch_add(1, Ordering::SeqCst);
                return Err(StoreError::Unavailable("test: store down".into()));
            }
            Ok(())
        }
    }

    impl Store for Counting {
        async fn allocate(&self, req: &AllocateRequest) -> Result<AllocateOutcome, StoreError> {
            self.inner.allocate(req).await
        }
        async fn set_status(&self, c: &StatusChange) -> Result<SetStatusOutcome, StoreError> {
            self.inner.set_status(c).await
        }
        async fn read_list(&self, l: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
            self.check().await?;
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.read_list(l).await
        }
        async fn list_version(&self, l: &ListId) -> Result<Option<u64>, StoreError> {
            self.check().await?;
            let version = self.inner.list_version(l).await;
            self.versions.fetch_add(1, Ordering::SeqCst);
            drop(self.hold.lock().await);
            version
        }
        async fn set_status_by_ref(
            &self,
            c: &crate::ports::RefChange,
        ) -> Result<crate::ports::RefChangeOutcome, StoreError> {
            self.inner.set_status_by_ref(c).await
        }
        async fn claim_jti(
            &self,
            c: &crate::ports::JtiClaim,
        ) -> Result<crate::ports::JtiClaimOutcome, StoreError> {
            self.inner.claim_jti(c).await
        }
        async fn list_entries(
            &self,
            q: &crate::ports::EntryQuery,
        ) -> Result<crate::ports::EntryPage, StoreError> {
            self.inner.list_entries(q).await
        }
        async fn list_ids(&self, format: ListFormat) -> Result<Vec<ListId>, StoreError> {
            self.inner.list_ids(format).await
        }
        async fn health(&self) -> Result<StoreHealth, StoreError> {
            self.inner.health().await
        }
    }

    struct Fixture {
        store: Arc<Counting>,
        cache: TokenCache<Counting>,
        client: ClientId,
        list: ListId,
        idx: u64,
        _dir: tempfile::TempDir,
    }

    /// Background optimization is off (a day away) unless a test sets it.
    const NO_OPTIMIZING: Duration = Duration::from_secs(86_400);

    async fn fixture(freshness: Duration) -> Fixture {
        fixture_with(PublishSettings {
            base_url: "https://s.example".into(),
            token_lifetime: Duration::from_secs(3600),
            ttl: Duration::from_secs(300),
            freshness,
            optimize_after: NO_OPTIMIZING,
            ..PublishSettings::default()
        })
        .await
    }

    async fn fixture_with(publish: PublishSettings) -> Fixture {
        fixture_sized(publish, 1024).await
    }

    async fn fixture_sized(publish: PublishSettings, capacity: u64) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoreSettings {
            capacity,
            ..StoreSettings::default()
        };
        let inner = EmbeddedStore::open_with(
            dir.path().join("s.redb"),
            settings,
            EmbeddedDurability::None,
        )
        .unwrap();
        let store = Arc::new(Counting {
            inner,
            versions: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            stall: AtomicBool::new(false),
            hold: tokio::sync::Mutex::new(()),
        });
        let client = ClientId::parse("c").unwrap();
        let req = AllocateRequest {
            client: client.clone(),
            format: ListFormat::Token,
            jti: Jti::parse("00000000-0000-4000-8000-000000000000").unwrap(),
            digest: [1; 32],
            status_expiry: NOW + 100,
            count: 1,
            issuance_ref: None,
            now: NOW,
            keep_until: NOW + 3600,
            events: None,
        };
        let AllocateOutcome::Allocated(a) = store.allocate(&req).await.unwrap() else {
            panic!("allocated");
        };
        let cache = TokenCache::new(store.clone(), Arc::new(DigitSigner), publish);
        Fixture {
            store,
            cache,
            client,
            list: a.list,
            idx: a.indexes[0],
            _dir: dir,
        }
    }

    impl Fixture {
        /// Sets the fixture's entry to `status` straight in the store (a
        /// fresh jti each time), as this process or another replica would.
        async fn set(&self, status: Status) {
            let change = StatusChange {
                client: self.client.clone(),
                list: self.list,
                idx: self.idx,
                status,
                jti: Jti::from_uuid_bytes(uuid::Uuid::new_v4().into_bytes()),
                digest: [status.value(); 32],
                now: NOW,
                keep_until: NOW + 3600,
                events: None,
            };
            let outcome = self.store.set_status(&change).await.unwrap();
            assert!(
                matches!(outcome, SetStatusOutcome::Done { .. }),
                "{outcome:?}"
            );
        }

        /// A new list, owned by a new client `client`.
        async fn another_list(&self, client: &str) -> ListId {
            let req = AllocateRequest {
                client: ClientId::parse(client).unwrap(),
                format: ListFormat::Token,
                jti: Jti::parse("00000000-0000-4000-8000-000000000001").unwrap(),
                digest: [2; 32],
                status_expiry: NOW + 100,
                count: 1,
                issuance_ref: None,
                now: NOW,
                keep_until: NOW + 3600,
                events: None,
            };
            let AllocateOutcome::Allocated(a) = self.store.allocate(&req).await.unwrap() else {
                panic!("allocated");
            };
            assert_ne!(a.list, self.list);
            a.list
        }

        /// Slots in the map, with or without a token.
        fn slots(&self) -> usize {
            read(&self.cache.slots).map.len()
        }
    }

    fn status_at(token: &Published, idx: u64) -> u8 {
        let digits = token.body.rsplit(|b| *b == b'.').next().unwrap();
        digits[usize::try_from(idx).unwrap()] - b'0'
    }

    #[tokio::test]
    async fn fresh_tokens_cost_no_store_call_and_changes_show_after_freshness() {
        let f = fixture(Duration::from_secs(3600)).await;
        let (t1, o1) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o1, CacheOutcome::Rebuilt);
        for _ in 0..100 {
            let (t, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
            assert_eq!(o, CacheOutcome::Hit);
            assert!(Arc::ptr_eq(&t, &t1));
        }
        assert_eq!(f.store.versions.load(Ordering::SeqCst), 1);
        assert_eq!(f.store.reads.load(Ordering::SeqCst), 1);
        assert_eq!(status_at(&t1, f.idx), 0);

        // A change through this process is visible at once.
        f.set(Status::Invalid).await;
        f.cache.invalidate(&f.list);
        let (t2, o2) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o2, CacheOutcome::Rebuilt);
        assert_eq!(status_at(&t2, f.idx), 1);
        assert_ne!(t1.etag, t2.etag);
        assert_eq!(t2.version, t1.version + 1);
    }

    /// Each token carries its gzip body, built with it, which decodes to
    /// exactly the token, with a tag of its own; both bodies are accounted.
    #[tokio::test]
    async fn a_token_carries_its_gzip_body_and_both_are_accounted() {
        use std::io::Read;
        let f = fixture(Duration::from_secs(3600)).await;
        let (t, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&t.gzip[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, t.body);
        assert_eq!(&t.etag[..], format!("W/\"{}-{NOW}\"", t.version).as_bytes());
        assert_eq!(
            &t.gzip_etag[..],
            format!("W/\"{}-{NOW}-gz\"", t.version).as_bytes()
        );
        // The CWT is signed with the JWT, once, with a tag of its own.
        let cwt = t.cwt.clone().expect("a token list has its CWT");
        assert_eq!(
            cwt,
            format!("cwt.{}", std::str::from_utf8(&t.body).unwrap())
        );
        assert_eq!(
            &t.cwt_etag[..],
            format!("W/\"{}-{NOW}-cwt\"", t.version).as_bytes()
        );
        assert_eq!(
            t.held_bytes(),
            t.body.len() + t.gzip.len() + cwt.len() + t.compressed.heap_bytes()
        );
        assert_eq!(f.cache.usage().bytes, t.held_bytes());
        // A hit shares the buffers: no copy per GET.
        let (hit, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(hit.gzip.as_ptr(), t.gzip.as_ptr());
        assert_eq!(hit.cwt.as_ref().map(|c| c.as_ptr()), Some(cwt.as_ptr()));
    }

    /// A GET that read the version just before a local change and finishes
    /// just after it must not make the old token count as fresh.
    #[tokio::test]
    async fn a_get_racing_with_a_local_change_does_not_hide_it() {
        let f = Arc::new(fixture(Duration::from_secs(3600)).await);
        f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        f.cache.invalidate(&f.list);
        let held = f.store.hold.lock().await;
        let before = f.store.versions.load(Ordering::SeqCst);
        let racing = {
            let f = f.clone();
            tokio::spawn(async move { f.cache.get(ListFormat::Token, f.list, NOW).await })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while f.store.versions.load(Ordering::SeqCst) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "an invalidated entry must not be served as fresh"
            );
            tokio::task::yield_now().await;
        }
        // The racing GET has read the old version and waits: change now.
        f.set(Status::Invalid).await;
        f.cache.invalidate(&f.list);
        drop(held);
        let (t, o) = racing.await.unwrap().unwrap();
        assert_eq!((o, status_at(&t, f.idx)), (CacheOutcome::Confirmed, 0));
        let (t, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!((o, status_at(&t, f.idx)), (CacheOutcome::Rebuilt, 1));
    }

    #[tokio::test]
    async fn stale_versions_are_confirmed_with_one_cheap_call() {
        let f = fixture(Duration::ZERO).await;
        f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        let (_, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Confirmed);
        assert_eq!(f.store.reads.load(Ordering::SeqCst), 1, "no re-read");
        assert_eq!(f.store.versions.load(Ordering::SeqCst), 2);
        // A change made elsewhere (no invalidate) is picked up by the check.
        f.set(Status::Suspended).await;
        let (t, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Rebuilt);
        assert_eq!(status_at(&t, f.idx), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_gets_of_a_stale_list_rebuild_once() {
        let f = Arc::new(fixture(Duration::from_secs(3600)).await);
        let gets = (0..32).map(|_| {
            let f = f.clone();
            tokio::spawn(async move { f.cache.get(ListFormat::Token, f.list, NOW).await })
        });
        let results = futures::future::join_all(gets).await;
        let tokens: Vec<_> = results.into_iter().map(|r| r.unwrap().unwrap().0).collect();
        assert!(tokens.iter().all(|t| Arc::ptr_eq(t, &tokens[0])));
        assert_eq!(f.store.reads.load(Ordering::SeqCst), 1, "one rebuild");
    }

    #[tokio::test]
    async fn store_down_serves_the_last_good_token_until_exp() {
        let f = fixture(Duration::ZERO).await;
        let (t, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        f.store.down.store(true, Ordering::SeqCst);
        let (s, o) = f
            .cache
            .get(ListFormat::Token, f.list, NOW + 10)
            .await
            .unwrap();
        assert_eq!(o, CacheOutcome::Stale);
        assert!(Arc::ptr_eq(&s, &t));
        let past_exp = f.cache.get(ListFormat::Token, f.list, t.exp).await;
        assert!(matches!(
            past_exp,
            Err(CacheError::Store(StoreError::Unavailable(_)))
        ));
        f.store.down.store(false, Ordering::SeqCst);
        let (_, o) = f
            .cache
            .get(ListFormat::Token, f.list, NOW + 20)
            .await
            .unwrap();
        assert_eq!(o, CacheOutcome::Confirmed, "recovers without restart");
    }

    #[tokio::test]
    async fn other_format_and_unknown_lists_are_not_found() {
        let f = fixture(Duration::from_secs(3600)).await;
        assert!(matches!(
            f.cache.get(ListFormat::Bitstring, f.list, NOW).await,
            Err(CacheError::NotFound)
        ));
        f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert!(matches!(
            f.cache.get(ListFormat::Bitstring, f.list, NOW).await,
            Err(CacheError::NotFound)
        ));
        let unknown = ListId::parse("000000000000").unwrap();
        assert!(matches!(
            f.cache.get(ListFormat::Token, unknown, NOW).await,
            Err(CacheError::NotFound)
        ));
    }

    #[tokio::test]
    async fn tokens_are_re_signed_half_way_to_exp() {
        let f = fixture(Duration::from_secs(3600)).await;
        let (t1, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        let (t2, o) = f
            .cache
            .get(ListFormat::Token, f.list, NOW + 1799)
            .await
            .unwrap();
        assert_eq!(o, CacheOutcome::Hit);
        assert!(Arc::ptr_eq(&t1, &t2));
        let (t3, o) = f
            .cache
            .get(ListFormat::Token, f.list, NOW + 1800)
            .await
            .unwrap();
        assert_eq!(o, CacheOutcome::Rebuilt);
        assert_eq!(t3.iat, NOW + 1800);
        assert_eq!(t3.exp, NOW + 1800 + 3600);
        assert_eq!(t3.version, t1.version);
        assert_ne!(
            t3.etag, t1.etag,
            "a re-signed token never matches an old ETag"
        );
    }

    /// A signer whose key generation a test sets, and which writes it in
    /// front of what [`DigitSigner`] writes: a token shows which key signed
    /// it.
    #[derive(Debug, Default)]
    struct Rotating(std::sync::atomic::AtomicU64);

    impl ListSigner for Rotating {
        fn sign(&self, l: &ListToSign<'_>) -> Result<String, SignError> {
            Ok(format!(
                "k{}.{}",
                self.key_generation(),
                DigitSigner.sign(l)?
            ))
        }

        fn sign_cwt(&self, l: &ListToSign<'_>) -> Result<Vec<u8>, SignError> {
            Ok(format!("k{}.{}", self.key_generation(), DigitSigner.sign(l)?).into_bytes())
        }

        fn has_key(&self) -> bool {
            true
        }

        fn key_generation(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn signed_by(token: &Published) -> &[u8] {
        token.body.split(|b| *b == b'.').next().unwrap()
    }

    #[tokio::test]
    async fn after_a_rotation_the_next_get_re_signs_with_the_new_key_once() {
        let f = fixture(Duration::from_secs(3600)).await;
        let signer = Arc::new(Rotating::default());
        let cache = TokenCache::new(f.store.clone(), signer.clone(), f.cache.settings().clone());
        let (t1, _) = cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(signed_by(&t1), b"k0");
        assert_eq!(
            &t1.etag[..],
            format!("W/\"{}-{NOW}\"", t1.version).as_bytes()
        );

        signer.0.store(1, Ordering::SeqCst);
        // Unreported, the rotation waits for the next store check (an hour
        // of freshness here)...
        let (t2, o) = cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Hit);
        assert!(Arc::ptr_eq(&t1, &t2));
        // ...reported, it shows on the very next GET: same version, same
        // second, new key, and a tag of its own.
        cache.signer_changed();
        let (t3, o) = cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Rebuilt);
        assert_eq!(signed_by(&t3), b"k1");
        let cwt = t3.cwt.as_deref().unwrap();
        assert!(cwt.starts_with(b"k1."), "the CWT is re-signed too");
        assert_eq!((t3.version, t3.iat), (t1.version, t1.iat));
        assert_ne!(t3.etag, t1.etag);
        assert_ne!(t3.gzip_etag, t1.gzip_etag);
        assert_ne!(t3.cwt_etag, t1.cwt_etag);
        assert_eq!(f.store.reads.load(Ordering::SeqCst), 2);
        // Once: later GETs are hits again.
        let (t4, o) = cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Hit);
        assert!(Arc::ptr_eq(&t3, &t4));
        assert_eq!(f.store.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unreported_rotation_shows_at_the_next_store_check() {
        let f = fixture(Duration::ZERO).await;
        let signer = Arc::new(Rotating::default());
        let cache = TokenCache::new(f.store.clone(), signer.clone(), f.cache.settings().clone());
        let (t1, _) = cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        let (_, o) = cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Confirmed, "the version is unchanged");
        signer.0.store(1, Ordering::SeqCst);
        let (t2, o) = cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Rebuilt);
        assert_eq!((signed_by(&t1), signed_by(&t2)), (&b"k0"[..], &b"k1"[..]));
    }

    /// A paused store: every GET of a held list answers from memory within
    /// about one store timeout, because the waiters behind the one failing
    /// version check take its result instead of each repeating it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_gets_with_a_stalled_store_share_one_failed_check() {
        let f = Arc::new(fixture(Duration::from_millis(500)).await);
        let (cached, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        // Past `freshness`: the next GET must ask the store.
        tokio::time::sleep(Duration::from_millis(600)).await;
        f.store.stall.store(true, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let gets = (0..40).map(|_| {
            let f = f.clone();
            tokio::spawn(async move {
                let got = f.cache.get(ListFormat::Token, f.list, NOW + 10).await;
                (got, started.elapsed())
            })
        });
        let results = futures::future::join_all(gets).await;
        let mut slowest = Duration::ZERO;
        for r in results {
            let (got, took) = r.unwrap();
            let (token, outcome) = got.unwrap();
            assert_eq!(outcome, CacheOutcome::Stale);
            assert!(Arc::ptr_eq(&token, &cached));
            slowest = slowest.max(took);
        }
        assert_eq!(
            f.store.failures.load(Ordering::SeqCst),
            1,
            "one failed version check for all 40 GETs"
        );
        // Liveness, not speed: one stall is 0.3 s, one per waiter 12 s.
        assert!(
            slowest < STALL + Duration::from_secs(3),
            "the slowest GET took {slowest:?}"
        );
    }

    /// Even with nothing remembered (`freshness` 0), the GETs that queued
    /// behind a failing check take its result. One thread: the waiters
    /// spawned below all reach the flight lock at the `yield_now`, while the
    /// leader sleeps in its stalled store call.
    #[tokio::test]
    async fn waiters_take_the_result_of_the_check_they_queued_behind() {
        let f = Arc::new(fixture(Duration::ZERO).await);
        f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        f.store.stall.store(true, Ordering::SeqCst);
        let leader = {
            let f = f.clone();
            tokio::spawn(async move { f.cache.get(ListFormat::Token, f.list, NOW).await })
        };
        // The leader is inside its (stalled) store call: queue behind it.
        while f.store.failures.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let f = f.clone();
                tokio::spawn(async move { f.cache.get(ListFormat::Token, f.list, NOW).await })
            })
            .collect();
        tokio::task::yield_now().await;
        let waiters = futures::future::join_all(waiters).await;
        assert_eq!(leader.await.unwrap().unwrap().1, CacheOutcome::Stale);
        for w in waiters {
            assert_eq!(w.unwrap().unwrap().1, CacheOutcome::Stale);
        }
        assert_eq!(f.store.failures.load(Ordering::SeqCst), 1, "one store call");
    }

    /// A failed check counts for `freshness` like a good one: no store call
    /// for that list until then, the last good token served as stale.
    #[tokio::test]
    async fn a_failed_check_is_remembered_for_freshness() {
        let freshness = Duration::from_millis(300);
        let f = fixture(freshness).await;
        let (cached, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        tokio::time::sleep(freshness + Duration::from_millis(50)).await;
        f.store.down.store(true, Ordering::SeqCst);
        for _ in 0..10 {
            let (t, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
            assert_eq!(o, CacheOutcome::Stale);
            assert!(Arc::ptr_eq(&t, &cached));
        }
        assert_eq!(f.store.failures.load(Ordering::SeqCst), 1);
        tokio::time::sleep(freshness + Duration::from_millis(50)).await;
        let (_, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Stale);
        assert_eq!(
            f.store.failures.load(Ordering::SeqCst),
            2,
            "asks again after freshness"
        );
    }

    /// After `invalidate` (a change, or an "already" outcome, acknowledged by
    /// this process) a token confirmed before it is never served again until
    /// the store confirms a version: with the store down that is an error,
    /// not the old token as stale.
    #[tokio::test]
    async fn after_invalidate_a_down_store_is_an_error_not_the_old_token() {
        // freshness 0: a failure is not remembered, so the store's return is
        // seen at once.
        let f = fixture(Duration::ZERO).await;
        f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        f.set(Status::Invalid).await;
        f.cache.invalidate(&f.list);
        f.store.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            let got = f.cache.get(ListFormat::Token, f.list, NOW + 1).await;
            assert!(
                matches!(got, Err(CacheError::Store(StoreError::Unavailable(_)))),
                "the token without the change must not be served: {got:?}"
            );
        }
        f.store.down.store(false, Ordering::SeqCst);
        let (t, o) = f
            .cache
            .get(ListFormat::Token, f.list, NOW + 1)
            .await
            .unwrap();
        assert_eq!((o, status_at(&t, f.idx)), (CacheOutcome::Rebuilt, 1));

        // "Already had that status": no new version, the same rule.
        f.cache.invalidate(&f.list);
        f.store.down.store(true, Ordering::SeqCst);
        let got = f.cache.get(ListFormat::Token, f.list, NOW + 2).await;
        assert!(matches!(got, Err(CacheError::Store(_))), "{got:?}");
        f.store.down.store(false, Ordering::SeqCst);
        let (_, o) = f
            .cache
            .get(ListFormat::Token, f.list, NOW + 2)
            .await
            .unwrap();
        assert_eq!(o, CacheOutcome::Confirmed, "re-confirmed by the store");

        // A failure remembered before an invalidate does not answer after it.
        let f = fixture(Duration::ZERO).await;
        f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        f.store.down.store(true, Ordering::SeqCst);
        let (_, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Stale);
        f.cache.invalidate(&f.list);
        let got = f.cache.get(ListFormat::Token, f.list, NOW).await;
        assert!(matches!(got, Err(CacheError::Store(_))), "{got:?}");
    }

    /// Damaged data reported by the store is not papered over with the last
    /// good token.
    #[tokio::test]
    async fn a_corrupt_list_is_not_served_stale() {
        let f = fixture(Duration::ZERO).await;
        let (t, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        let state = State {
            token: Some(t),
            ..State::default()
        };
        assert!(stale_or(&state, 0, NOW, StoreError::Unavailable("x".into())).is_ok());
        assert!(stale_or(&state, 0, NOW, StoreError::Backend("x".into())).is_ok());
        assert!(matches!(
            stale_or(&state, 0, NOW, StoreError::Corrupt("x".into())),
            Err(CacheError::Store(StoreError::Corrupt(_)))
        ));
        assert!(stale_or(&state, 1, NOW, StoreError::Unavailable("x".into())).is_err());
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_max_lists_evicting_the_least_recently_used() {
        let f = fixture_with(PublishSettings {
            max_lists: 2,
            freshness: Duration::from_secs(3600),
            ..PublishSettings::default()
        })
        .await;
        let (a, b, c) = (
            f.list,
            f.another_list("c2").await,
            f.another_list("c3").await,
        );
        let get = |id| f.cache.get(ListFormat::Token, id, NOW);
        get(a).await.unwrap();
        get(b).await.unwrap();
        assert_eq!(get(a).await.unwrap().1, CacheOutcome::Hit);
        get(c).await.unwrap();
        assert_eq!(f.cache.usage().lists, 2);
        assert_eq!(f.slots(), 2);
        let reads = f.store.reads.load(Ordering::SeqCst);
        assert_eq!(
            get(a).await.unwrap().1,
            CacheOutcome::Hit,
            "a was used last"
        );
        assert_eq!(
            get(c).await.unwrap().1,
            CacheOutcome::Hit,
            "c is the newest"
        );
        assert_eq!(f.store.reads.load(Ordering::SeqCst), reads);
        assert_eq!(
            get(b).await.unwrap().1,
            CacheOutcome::Rebuilt,
            "b was evicted"
        );
        assert_eq!(f.cache.usage().lists, 2);
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_max_bytes() {
        let probe = fixture(Duration::from_secs(3600)).await;
        let (t, _) = probe
            .cache
            .get(ListFormat::Token, probe.list, NOW)
            .await
            .unwrap();
        let size = t.held_bytes();
        // Room for one token, not two.
        let max_bytes = size + size / 2;
        let f = fixture_with(PublishSettings {
            max_bytes,
            freshness: Duration::from_secs(3600),
            ..PublishSettings::default()
        })
        .await;
        let b = f.another_list("c2").await;
        let (a, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(f.cache.usage().bytes, a.held_bytes());
        let (b_token, _) = f.cache.get(ListFormat::Token, b, NOW).await.unwrap();
        let usage = f.cache.usage();
        assert_eq!(usage.lists, 1);
        assert_eq!(usage.bytes, b_token.held_bytes());
        assert!(usage.bytes <= max_bytes, "{usage:?}");
        let (_, o) = f.cache.get(ListFormat::Token, b, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Hit);
        let (_, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Rebuilt, "the older list was evicted");
    }

    /// GETs of ids the store does not know, or cannot be asked about, leave
    /// no entry: random ids cannot grow the cache.
    #[tokio::test]
    async fn unknown_ids_leave_no_entry_also_while_the_store_is_down() {
        let f = fixture(Duration::from_secs(3600)).await;
        f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        let unknown = |i: u32| ListId::parse(&format!("{i:012X}")).unwrap();
        for i in 0..100 {
            let got = f.cache.get(ListFormat::Token, unknown(i), NOW).await;
            assert!(matches!(got, Err(CacheError::NotFound)), "{got:?}");
        }
        assert_eq!(f.slots(), 1, "only the real list");
        f.store.down.store(true, Ordering::SeqCst);
        for i in 100..200 {
            let got = f.cache.get(ListFormat::Bitstring, unknown(i), NOW).await;
            assert!(matches!(got, Err(CacheError::Store(_))), "{got:?}");
        }
        assert_eq!(f.slots(), 1, "only the real list");
        assert_eq!(f.cache.usage().lists, 1);
        // The held list is still served.
        let (_, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Hit);
    }

    /// A rebuild after a change compresses again only the segment whose
    /// bytes changed and takes the others over from the token it replaces.
    #[tokio::test]
    async fn a_rebuild_reuses_the_unchanged_segments() {
        use crate::domain::segmented::SEGMENT_BYTES;
        // Three segments of 2-bit entries.
        let entries = (3 * SEGMENT_BYTES * 4) as u64;
        let f = fixture_sized(
            PublishSettings {
                freshness: Duration::ZERO,
                optimize_after: NO_OPTIMIZING,
                ..PublishSettings::default()
            },
            entries,
        )
        .await;
        let (t1, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(t1.compressed.segments(), 3);
        f.set(Status::Invalid).await;
        let (t2, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!((o, status_at(&t2, f.idx)), (CacheOutcome::Rebuilt, 1));
        assert_eq!(t2.compressed.shared_segments(&t1.compressed), 2);
        let snapshot = f.store.inner.read_list(&f.list).await.unwrap().unwrap();
        let from_scratch = CompressedList::new(&snapshot.bytes);
        assert_eq!(*t2.compressed, from_scratch, "the same as a full encode");
        assert_eq!(from_scratch.shared_segments(&t1.compressed), 0);
    }

    /// A token served for `optimize_after` is re-signed in the background
    /// with its list optimized: the same version, times and tags, the same
    /// statuses, no store call; a newer token is never replaced by the
    /// optimized old one.
    #[tokio::test]
    async fn a_settled_token_is_optimized_in_the_background() {
        use crate::domain::segmented::SEGMENT_BYTES;
        let entries = (2 * SEGMENT_BYTES * 4) as u64;
        let f = fixture_sized(
            PublishSettings {
                freshness: Duration::from_secs(3600),
                optimize_after: Duration::from_secs(1),
                ..PublishSettings::default()
            },
            entries,
        )
        .await;
        // A sparse list: every 97th entry revoked (fixture entry aside).
        for n in 1..(entries / 97) {
            let req = AllocateRequest {
                client: f.client.clone(),
                format: ListFormat::Token,
                jti: Jti::from_name(&format!("sparse-{n}")),
                digest: [3; 32],
                status_expiry: NOW + 100,
                count: 97,
                issuance_ref: None,
                now: NOW,
                keep_until: NOW + 3600,
                events: None,
            };
            let AllocateOutcome::Allocated(a) = f.store.allocate(&req).await.unwrap() else {
                panic!("allocated");
            };
            let change = StatusChange {
                client: f.client.clone(),
                list: a.list,
                idx: a.indexes[0],
                status: Status::Invalid,
                jti: Jti::from_name(&format!("revoke-{n}")),
                digest: [4; 32],
                now: NOW,
                keep_until: NOW + 3600,
                events: None,
            };
            f.store.set_status(&change).await.unwrap();
        }
        let (first, o) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert_eq!(o, CacheOutcome::Rebuilt);
        assert!(!first.compressed.is_optimized());
        // Not yet settled: nothing starts.
        let (same, _) = f.cache.get(ListFormat::Token, f.list, NOW).await.unwrap();
        assert!(Arc::ptr_eq(&same, &first));
        let reads = f.store.reads.load(Ordering::SeqCst);
        // Settled: this GET still gets the first token and starts the work.
        let (still, o) = f
            .cache
            .get(ListFormat::Token, f.list, NOW + 1)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(&still, &first));
        assert_eq!(o, CacheOutcome::Hit);
        let mut optimized = None;
        for _ in 0..200 {
            let (t, _) = f
                .cache
                .get(ListFormat::Token, f.list, NOW + 1)
                .await
                .unwrap();
            if !Arc::ptr_eq(&t, &first) {
                optimized = Some(t);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let optimized = optimized.expect("optimized within 2 s");
        assert!(optimized.compressed.is_optimized());
        assert!(
            optimized.compressed.compressed_len() < first.compressed.compressed_len(),
            "{} vs {}",
            optimized.compressed.compressed_len(),
            first.compressed.compressed_len()
        );
        assert_eq!(
            (optimized.version, optimized.iat, optimized.exp),
            (first.version, first.iat, first.exp)
        );
        assert_eq!(
            (&optimized.etag, &optimized.gzip_etag),
            (&first.etag, &first.gzip_etag)
        );
        assert_eq!(
            optimized.body, first.body,
            "the test signer writes statuses only"
        );
        assert_eq!(optimized.compressed.raw(), first.compressed.raw());
        assert_eq!(f.store.reads.load(Ordering::SeqCst), reads, "no store read");

        // The optimized token of an old version never replaces a newer one.
        let slot = f.cache.slot(f.list);
        let stale = optimized_token(f.list, &first, &DigitSigner, f.cache.settings())
            .unwrap()
            .unwrap();
        {
            let state = lock(&slot.state);
            assert!(!Arc::ptr_eq(state.token.as_ref().unwrap(), &first));
        }
        assert_eq!(stale.version, first.version);
    }
}
