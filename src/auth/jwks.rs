//! Fetching and caching client JWKS documents.
//!
//! Each client has its own [`ClientKeys`]: the last good key set, its expiry,
//! and a per-client async mutex that makes refreshes single-flight (callers
//! that arrive during a fetch wait for it and reuse its outcome instead of
//! fetching again). Because the lock is per client, one client's slow JWKS
//! server never delays another client's requests.
//!
//! Time is the caller's `now` (unix seconds), the same clock the claim checks
//! use, so tests can move it freely; network timeouts are real time.
//!
//! Policy:
//! - fresh set with the `kid` → served from memory, no lock taken;
//! - unknown `kid` → at most one refresh per `refresh_cooldown_secs`;
//! - expired set → refreshed; if that fails, the last good set keeps serving
//!   for `max_stale_secs` past its expiry (retried after the cooldown);
//! - nothing cached and the fetch fails → [`AuthError::KeysUnavailable`]
//!   (next attempt after `failure_backoff_secs`).
//!
//! Outside development mode, the public demo key shipped in `examples/` is
//! dropped from every fetched set (with an error log): its private key is
//! public, so a set that holds it would let anyone sign as that client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use url::Url;

use super::AuthError;
use crate::config::{JwksSettings, KeySource};
use crate::domain::ClientId;
use crate::jwk::{self, KeySet, KeySetError};

/// Why a JWKS fetch failed (logged, never shown to callers).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, TLS or protocol failure.
    #[error("request failed: {0}")]
    Request(String),
    /// The fetch took longer than the configured timeout.
    #[error("timed out")]
    Timeout,
    /// A non-2xx answer.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The document exceeds the size limit.
    #[error("document larger than {0} bytes")]
    TooLarge(usize),
    /// The document is not a usable JWKS.
    #[error("{0}")]
    Invalid(#[from] KeySetError),
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the JWKS HTTP client: {0}")]
pub struct SetupError(String);

/// JWKS fetches since the process started, for `/metrics`. Process-wide on
/// purpose: a configuration reload builds a new [`Fetcher`], and the counts
/// must not restart with it.
static FETCHES: AtomicU64 = AtomicU64::new(0);
/// Failed JWKS fetches since the process started.
static FETCH_FAILURES: AtomicU64 = AtomicU64::new(0);

/// JWKS fetches and failed fetches since the process started.
pub fn fetch_counts() -> (u64, u64) {
    (
        FETCHES.load(Ordering::Relaxed),
        FETCH_FAILURES.load(Ordering::Relaxed),
    )
}

/// The HTTP side: one reqwest client with the configured limits.
#[derive(Debug)]
pub struct Fetcher {
    http: reqwest::Client,
    settings: JwksSettings,
    /// Keep the shipped demo key in fetched sets (development mode only).
    allow_demo_key: bool,
}

impl Fetcher {
    /// Builds the client: connect and total timeouts, no redirects (a
    /// redirect could downgrade https to http or leave the issuer's host).
    /// The shipped demo key is dropped from fetched sets unless
    /// [`Fetcher::allow_demo_key`] says otherwise.
    ///
    /// # Errors
    /// [`SetupError`] when the TLS backend cannot be initialised.
    pub fn new(settings: &JwksSettings) -> Result<Self, SetupError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("statuslist/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError(e.to_string()))?;
        Ok(Fetcher {
            http,
            settings: settings.clone(),
            allow_demo_key: false,
        })
    }

    /// Whether fetched sets may keep the shipped demo key: true only for
    /// development settings.
    #[must_use]
    pub fn allow_demo_key(mut self, allow: bool) -> Self {
        self.allow_demo_key = allow;
        self
    }

    /// The limits in force.
    pub fn settings(&self) -> &JwksSettings {
        &self.settings
    }

    /// Fetches and parses one JWKS document; returns it with its cache
    /// lifetime (whole seconds).
    ///
    /// # Errors
    /// [`FetchError`] for a network failure, timeout, non-2xx status, an
    /// oversized body or a document with no usable key.
    pub async fn fetch(&self, url: &Url) -> Result<(KeySet, Duration), FetchError> {
        let total = self.settings.timeout;
        // reqwest's timeout covers the body too; the outer one is a backstop
        // so that no path can wait longer than configured.
        FETCHES.fetch_add(1, Ordering::Relaxed);
        let result = tokio::time::timeout(total, self.fetch_inner(url))
            .await
            .map_err(|_| FetchError::Timeout)
            .and_then(|r| r);
        if result.is_err() {
            FETCH_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn fetch_inner(&self, url: &Url) -> Result<(KeySet, Duration), FetchError> {
        let map = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout
            } else {
                FetchError::Request(e.without_url().to_string())
            }
        };
        let mut resp = self
            .http
            .get(url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .send()
            .await
            .map_err(map)?;
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        let max = self.settings.max_bytes.get();
        if resp.content_length().is_some_and(|l| l > max as u64) {
            return Err(FetchError::TooLarge(max));
        }
        let ttl = self.ttl(resp.headers());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(map)? {
            if body.len() + chunk.len() > max {
                return Err(FetchError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        let mut doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| KeySetError::NotJwks)?;
        if !self.allow_demo_key {
            let removed = jwk::remove_demo_keys(&mut doc);
            if removed > 0 {
                tracing::error!(
                    host = url.host_str().unwrap_or(""),
                    removed,
                    "the fetched JWKS holds the public demo key shipped in examples/; \
                     it is ignored (only development mode accepts it)"
                );
            }
        }
        Ok((KeySet::from_value(&doc)?, ttl))
    }

    /// The cache lifetime from `Cache-Control`: `max-age` clamped to the
    /// configured bounds, the minimum for `no-cache`/`no-store`, the default
    /// otherwise.
    fn ttl(&self, headers: &HeaderMap) -> Duration {
        let s = &self.settings;
        let clamp = |v: u64| Duration::from_secs(v).clamp(s.min_ttl, s.max_ttl);
        let mut ttl = s.default_ttl;
        for value in headers.get_all(CACHE_CONTROL) {
            let Ok(text) = value.to_str() else { continue };
            for directive in text.split(',').map(str::trim) {
                let lower = directive.to_ascii_lowercase();
                if lower == "no-cache" || lower == "no-store" {
                    return s.min_ttl;
                }
                if let Some(v) = lower.strip_prefix("max-age=")
                    && let Ok(v) = v.trim_matches('"').parse::<u64>()
                {
                    ttl = clamp(v);
                }
            }
        }
        ttl
    }
}

/// A key set as cached, with its times in unix seconds.
#[derive(Debug)]
struct Cached {
    keys: Arc<KeySet>,
    expires_at: u64,
}

/// One client's keys: static (from the configuration) or fetched and cached.
#[derive(Debug)]
pub struct ClientKeys {
    client: ClientId,
    source: KeySource,
    /// The last good set; read without waiting on a fetch.
    cached: RwLock<Option<Arc<Cached>>>,
    /// Fetch attempts so far; a waiter compares it with the value it saw
    /// before queueing to learn that a fetch ran meanwhile.
    attempts: AtomicU64,
    /// `now` of the latest finished fetch attempt (0: never).
    last_attempt: AtomicU64,
    /// Held for the duration of a fetch: the single-flight gate.
    refresh: tokio::sync::Mutex<()>,
}

impl ClientKeys {
    /// Keys for `client` from `source`; nothing fetched yet.
    pub fn new(client: ClientId, source: KeySource) -> Self {
        ClientKeys {
            client,
            source,
            cached: RwLock::new(None),
            attempts: AtomicU64::new(0),
            last_attempt: AtomicU64::new(0),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Where the keys come from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// True when this cache can be carried over to a reloaded registry: same
    /// client and same remote URL (static sets are re-read on reload).
    pub fn reusable_for(&self, client: &ClientId, source: &KeySource) -> bool {
        match (&self.source, source) {
            (KeySource::Remote(a), KeySource::Remote(b)) => &self.client == client && a == b,
            _ => false,
        }
    }

    fn current(&self) -> Option<Arc<Cached>> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc;
        // the value inside is still a whole Arc.
        self.cached
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn serve(
        &self,
        c: &Cached,
        kid: &str,
        now: u64,
        max_stale: u64,
    ) -> Result<Arc<KeySet>, AuthError> {
        if now >= c.expires_at.saturating_add(max_stale) {
            return Err(AuthError::KeysUnavailable);
        }
        if c.keys.get(kid).is_some() {
            Ok(Arc::clone(&c.keys))
        } else {
            Err(AuthError::InvalidKid)
        }
    }

    /// The key set holding `kid`, fetching or refreshing it as the policy in
    /// the module documentation says.
    ///
    /// # Errors
    /// [`AuthError::InvalidKid`] when the (refreshed) set lacks `kid`;
    /// [`AuthError::KeysUnavailable`] when no usable set can be had.
    pub async fn key_set_for(
        &self,
        fetcher: &Fetcher,
        kid: &str,
        now: u64,
    ) -> Result<Arc<KeySet>, AuthError> {
        let url = match &self.source {
            KeySource::Static(set) => {
                return if set.get(kid).is_some() {
                    Ok(Arc::clone(set))
                } else {
                    Err(AuthError::InvalidKid)
                };
            }
            KeySource::Remote(url) => url,
        };
        let s = fetcher.settings();
        let seen = self.attempts.load(Ordering::Acquire);
        let last = self.last_attempt.load(Ordering::Acquire);
        match self.current() {
            Some(c) => {
                if now < c.expires_at && c.keys.get(kid).is_some() {
                    return Ok(Arc::clone(&c.keys));
                }
                if last != 0 && now < last.saturating_add(s.refresh_cooldown.as_secs()) {
                    return self.serve(&c, kid, now, s.max_stale.as_secs());
                }
            }
            None => {
                if last != 0 && now < last.saturating_add(s.failure_backoff.as_secs()) {
                    return Err(AuthError::KeysUnavailable);
                }
            }
        }

        let _flight = self.refresh.lock().await;
        if self.attempts.load(Ordering::Acquire) == seen {
            match fetcher.fetch(url).await {
                Ok((set, ttl)) => {
                    let ttl = ttl.as_secs();
                    tracing::info!(client = %self.client, keys = set.len(), skipped = set.skipped(), ttl, "JWKS fetched");
                    let fresh = Arc::new(Cached {
                        keys: Arc::new(set),
                        expires_at: now.saturating_add(ttl),
                    });
                    *self
                        .cached
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fresh);
                }
                Err(e) => {
                    tracing::warn!(client = %self.client, host = url.host_str().unwrap_or(""), error = %e, "JWKS fetch failed");
                }
            }
            // Stamped when the attempt ends, not when it starts: callers that
            // arrive during a fetch must queue for its outcome rather than
            // mistake it for a recent failure.
            self.last_attempt.store(now, Ordering::Release);
            self.attempts.fetch_add(1, Ordering::AcqRel);
        }
        // Either this call fetched, or a fetch finished while it waited: in
        // both cases the outcome is in the cache (or nothing is).
        match self.current() {
            Some(c) => self.serve(&c, kid, now, s.max_stale.as_secs()),
            None => Err(AuthError::KeysUnavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn ttl_honours_max_age_within_bounds() {
        let f = Fetcher::new(&JwksSettings::default()).unwrap();
        let ttl = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
            f.ttl(&h).as_secs()
        };
        assert_eq!(f.ttl(&HeaderMap::new()).as_secs(), 300);
        assert_eq!(ttl("public, max-age=600"), 600);
        assert_eq!(ttl("max-age=5"), 60);
        assert_eq!(ttl("max-age=99999999"), 86_400);
        assert_eq!(ttl("no-store"), 60);
        assert_eq!(ttl("max-age=abc"), 300);
    }
}
