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
//!
//! So a hot list costs a few store calls per second per replica whatever the
//! GET rate, and a change is visible everywhere within `freshness` plus one
//! store round trip, and at once in the process that made it (the change
//! handler calls [`TokenCache::invalidate`]). The confirm/rebuild step is single-flight per list:
//! concurrent GETs of a stale list wait on one rebuild rather than each doing
//! it. When the store is down, the last good token is served until its `exp`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::{KeySet, ListParams, PublishError, sign_bitstring_credential, sign_token_list};
use crate::domain::{ListFormat, ListId, ListRef, StatusList};
use crate::store::{ListSnapshot, Store, StoreError};

/// Lists at least this large are compressed and signed off the reactor.
const BLOCKING_THRESHOLD: usize = 16 * 1024;

/// Settings of the published tokens; built once from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSettings {
    /// The service's public base URL: the tokens' `iss` and the prefix of
    /// every list URI (`sub`).
    pub base_url: String,
    /// How long a signed token is valid (`exp - iat`, 24 h by default). A
    /// token is re-signed once half of this has passed.
    pub token_lifetime: Duration,
    /// How long verifiers may cache a list (`ttl`, 300 s by default; also the
    /// HTTP `max-age`).
    pub ttl: Duration,
    /// How long a version check stays good before the next GET asks the
    /// store again (250 ms by default).
    pub freshness: Duration,
}

impl Default for PublishSettings {
    fn default() -> Self {
        PublishSettings {
            base_url: "http://localhost:8080".to_owned(),
            token_lifetime: Duration::from_secs(24 * 3600),
            ttl: Duration::from_secs(300),
            freshness: Duration::from_millis(250),
        }
    }
}

/// A signed list token, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The list's format (decides the media type).
    pub format: ListFormat,
    /// The list version the token shows.
    pub version: u64,
    /// The compact JWS, as sent. `Bytes` so that every response shares the
    /// one buffer instead of copying it.
    pub body: actix_web::web::Bytes,
    /// The HTTP entity tag: the version and the signing time, so that a
    /// re-signed token (new `exp`) is never answered with 304 to a client that
    /// holds the old one.
    pub etag: String,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expires at (unix seconds).
    pub exp: u64,
    /// Indexes handed out in the list when it was read (for fill metrics).
    pub allocated: u64,
    /// The list's capacity.
    pub capacity: u64,
}

/// How a GET was served, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// From memory, no store call.
    Hit,
    /// From memory after the store confirmed the version.
    Confirmed,
    /// Newly built and signed.
    Rebuilt,
    /// From memory because the store could not be reached; still before `exp`.
    Stale,
}

/// Why no token could be served.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No list with that id and format.
    #[error("status list not found")]
    NotFound,
    /// The store failed and no valid token is cached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building or signing failed (stored data that cannot be published).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The blocking signing task did not finish.
    #[error("the signing task failed")]
    Join,
}

#[derive(Debug)]
struct Entry {
    token: Arc<Published>,
    confirmed_at: Instant,
    /// The slot's epoch when the store call behind `confirmed_at` started:
    /// a change made by this process after that call makes the entry stale.
    epoch: u64,
}

/// One list's cache line. `rebuild` makes the store check single-flight;
/// `epoch` is bumped by [`TokenCache::invalidate`] so that this process's
/// own changes show at once instead of after `freshness`.
#[derive(Debug, Default)]
struct Slot {
    current: Mutex<Option<Entry>>,
    rebuild: tokio::sync::Mutex<()>,
    epoch: AtomicU64,
}

/// The cache of signed list tokens over a [`Store`].
pub struct TokenCache<S> {
    store: Arc<S>,
    keys: Arc<KeySet>,
    settings: PublishSettings,
    slots: RwLock<HashMap<ListId, Arc<Slot>>>,
}

impl<S> std::fmt::Debug for TokenCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: Store> TokenCache<S> {
    /// A cache over `store`, signing with the signing key of `keys`.
    pub fn new(store: Arc<S>, keys: Arc<KeySet>, settings: PublishSettings) -> Self {
        TokenCache {
            store,
            keys,
            settings,
            slots: RwLock::new(HashMap::new()),
        }
    }

    /// The settings the tokens are built with.
    pub fn settings(&self) -> &PublishSettings {
        &self.settings
    }

    /// The signed token of list `id` in `format`, at `now` (unix seconds).
    ///
    /// # Errors
    /// [`CacheError::NotFound`] for an unknown list or one of the other
    /// format; [`CacheError::Store`] when the store fails and nothing valid is
    /// cached; [`CacheError::Publish`] when stored data cannot be published.
    #[tracing::instrument(level = "debug", skip(self), fields(list = %id))]
    pub async fn get(
        &self,
        format: ListFormat,
        id: ListId,
        now: u64,
    ) -> Result<(Arc<Published>, CacheOutcome), CacheError> {
        let slot = self.slot(id);
        if let Some(token) = self.fresh(&slot, now) {
            return check_format(token, format).map(|t| (t, CacheOutcome::Hit));
        }
        let _flight = slot.rebuild.lock().await;
        // Another request may have refreshed the slot while this one waited.
        if let Some(token) = self.fresh(&slot, now) {
            return check_format(token, format).map(|t| (t, CacheOutcome::Hit));
        }
        // Read before the store call: a change applied after this point bumps
        // the epoch and keeps the result below from counting as fresh.
        let epoch = slot.epoch.load(Ordering::SeqCst);
        let cached = lock(&slot.current).as_ref().map(|e| e.token.clone());
        if let Some(token) = &cached {
            // A list's format never changes: no store call needed to refuse.
            if token.format != format {
                return Err(CacheError::NotFound);
            }
        }
        let version = match self.store.list_version(&id).await {
            Ok(Some(version)) => version,
            Ok(None) => {
                self.forget(&id);
                return Err(CacheError::NotFound);
            }
            Err(err) => return stale_or(cached, now, err),
        };
        if let Some(token) = cached
            .as_ref()
            .filter(|t| t.version == version && !self.due_for_resigning(t, now))
        {
            *lock(&slot.current) = Some(Entry {
                token: token.clone(),
                confirmed_at: Instant::now(),
                epoch,
            });
            return Ok((token.clone(), CacheOutcome::Confirmed));
        }
        let snapshot = match self.store.read_list(&id).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                self.forget(&id);
                return Err(CacheError::NotFound);
            }
            Err(err) => return stale_or(cached, now, err),
        };
        if snapshot.meta.format != format {
            return Err(CacheError::NotFound);
        }
        let token = Arc::new(self.build(snapshot, now).await?);
        *lock(&slot.current) = Some(Entry {
            token: token.clone(),
            confirmed_at: Instant::now(),
            epoch,
        });
        Ok((token, CacheOutcome::Rebuilt))
    }

    /// Marks list `id` as changed by this process: the next GET asks the
    /// store for the version instead of serving from memory, so a change is
    /// visible at once to the process that made it (other processes see it
    /// within `freshness`). The cached token stays for stale serving.
    pub fn invalidate(&self, id: &ListId) {
        if let Some(slot) = read(&self.slots).get(id) {
            slot.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn slot(&self, id: ListId) -> Arc<Slot> {
        if let Some(slot) = read(&self.slots).get(&id) {
            return slot.clone();
        }
        write(&self.slots).entry(id).or_default().clone()
    }

    fn forget(&self, id: &ListId) {
        write(&self.slots).remove(id);
    }

    fn fresh(&self, slot: &Slot, now: u64) -> Option<Arc<Published>> {
        let current = lock(&slot.current);
        let entry = current.as_ref()?;
        let recent = entry.confirmed_at.elapsed() < self.settings.freshness
            && entry.epoch == slot.epoch.load(Ordering::SeqCst);
        (recent && !self.due_for_resigning(&entry.token, now)).then(|| entry.token.clone())
    }

    /// Re-sign half-way through the token's life, so that a verifier that
    /// fetched it just before always has more than half a lifetime left.
    fn due_for_resigning(&self, token: &Published, now: u64) -> bool {
        let half = self.settings.token_lifetime.as_secs() / 2;
        now >= token.iat.saturating_add(half)
    }

    async fn build(&self, snapshot: ListSnapshot, now: u64) -> Result<Published, CacheError> {
        let keys = self.keys.clone();
        let settings = self.settings.clone();
        if snapshot.bytes.len() >= BLOCKING_THRESHOLD {
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _enter = span.enter();
                sign_snapshot(&snapshot, &keys, &settings, now)
            })
            .await
            .map_err(|_| CacheError::Join)?
        } else {
            sign_snapshot(&snapshot, &keys, &settings, now)
        }
    }
}

/// Compresses and signs one list snapshot.
fn sign_snapshot(
    snapshot: &ListSnapshot,
    keys: &KeySet,
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
    let uri = ListRef {
        format: meta.format,
        id: meta.id,
    }
    .uri(&settings.base_url);
    let exp = now.saturating_add(settings.token_lifetime.as_secs().max(1));
    let params = ListParams {
        iss: settings.base_url.trim_end_matches('/'),
        uri: &uri,
        iat: now,
        exp,
        ttl: settings.ttl.as_secs(),
    };
    let key = keys.signing_key();
    let body = match meta.format {
        ListFormat::Token => sign_token_list(&list, &params, key)?,
        ListFormat::Bitstring => sign_bitstring_credential(&list, &params, key)?,
    };
    Ok(Published {
        format: meta.format,
        version: snapshot.version,
        body: actix_web::web::Bytes::from(body),
        etag: format!("\"{}-{}\"", snapshot.version, now),
        iat: now,
        exp,
        allocated: meta.allocated,
        capacity: meta.capacity,
    })
}

fn check_format(token: Arc<Published>, format: ListFormat) -> Result<Arc<Published>, CacheError> {
    if token.format == format {
        Ok(token)
    } else {
        Err(CacheError::NotFound)
    }
}

fn stale_or(
    cached: Option<Arc<Published>>,
    now: u64,
    err: StoreError,
) -> Result<(Arc<Published>, CacheOutcome), CacheError> {
    match cached {
        // Only an unreachable store: a damaged list must not be served from
        // an older copy, which could lack changes made before the damage.
        Some(token) if now < token.exp && matches!(err, StoreError::Unavailable(_)) => {
            tracing::warn!(error = %err, "store unavailable; serving the last good token");
            Ok((token, CacheOutcome::Stale))
        }
        _ => Err(CacheError::Store(err)),
    }
}

// A poisoned lock only means another thread panicked while holding it; the
// data (an Option of an Arc, a map of Arcs) is still consistent, so go on.
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
    use crate::domain::{ClientId, Status};
    use crate::publish::ServiceKey;
    use crate::store::embedded::{EmbeddedDurability, EmbeddedStore};
    use crate::store::{
        AllocateOutcome, AllocateRequest, SetStatusOutcome, StatusChange, StoreHealth,
        StoreSettings,
    };

    const NOW: u64 = 1_800_000_000;

    /// The real embedded store, counting the calls the cache makes and able
    /// to play "unreachable".
    struct Counting {
        inner: EmbeddedStore,
        versions: AtomicUsize,
        reads: AtomicUsize,
        down: AtomicBool,
        /// Held by a test to stop `list_version` after it has read the
        /// version and before it answers.
        hold: tokio::sync::Mutex<()>,
    }

    impl Counting {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("test: store down".into()))
            } else {
                Ok(())
            }
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
            self.check()?;
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.read_list(l).await
        }
        async fn list_version(&self, l: &ListId) -> Result<Option<u64>, StoreError> {
            self.check()?;
            let version = self.inner.list_version(l).await;
            self.versions.fetch_add(1, Ordering::SeqCst);
            drop(self.hold.lock().await);
            version
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

    async fn fixture(freshness: Duration) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoreSettings {
            capacity: 1024,
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
            down: AtomicBool::new(false),
            hold: tokio::sync::Mutex::new(()),
        });
        let client = ClientId::parse("c").unwrap();
        let req = AllocateRequest {
            client: client.clone(),
            format: ListFormat::Token,
            jti: "00000000-0000-4000-8000-000000000000".into(),
            digest: [1; 32],
            status_expiry: NOW + 100,
            count: 1,
            now: NOW,
            keep_until: NOW + 3600,
        };
        let AllocateOutcome::Allocated(a) = store.allocate(&req).await.unwrap() else {
            panic!("allocated");
        };
        let keys = Arc::new(KeySet::new(ServiceKey::generate()));
        let cache = TokenCache::new(
            store.clone(),
            keys,
            PublishSettings {
                base_url: "https://s.example".into(),
                token_lifetime: Duration::from_secs(3600),
                ttl: Duration::from_secs(300),
                freshness,
            },
        );
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
                jti: uuid::Uuid::new_v4().to_string(),
                digest: [status.value(); 32],
                now: NOW,
                keep_until: NOW + 3600,
            };
            let outcome = self.store.set_status(&change).await.unwrap();
            assert!(
                matches!(outcome, SetStatusOutcome::Done { .. }),
                "{outcome:?}"
            );
        }
    }

    fn status_at(token: &Published, idx: u64) -> u8 {
        let parts =
            crate::publish::jws::decode_unverified(std::str::from_utf8(&token.body).unwrap())
                .unwrap();
        let decoded = crate::publish::decode_token_list(&parts.payload, 1 << 20).unwrap();
        decoded.list.get(idx).unwrap()
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
}
