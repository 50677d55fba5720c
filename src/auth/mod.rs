//! Issuer authentication: the client registry (from the configuration,
//! swappable on `SIGHUP`), client JWKS fetching and caching, and the checks of
//! a request JWT in CRS order with CRS error texts.
//!
//! The HTTP layer calls [`Authenticator::check_issue`] or
//! [`Authenticator::check_change`] with the request's Content-Type, its raw
//! body and the current unix time, or [`Authenticator::check_listing`] with
//! the `Authorization` header of a `GET /entries`, and gets typed claims
//! (which only this module can build, see [`claims`]) or an [`AuthError`]: a
//! typed cause, never an HTTP status (the HTTP layer's one table decides the
//! response).
//!
//! Check order (the first fault wins): Content-Type (a listing: an
//! `Authorization: Bearer` header instead) → decodable → header `kid`
//! present → `typ` present and `JWT` → `alg` present and in the safe set →
//! `iss` present and registered → `alg` allowed for that client → `kid` in
//! the client's JWKS → signature → `aud` (when present, it must be the
//! service's public base URL; a listing must carry it) → claims. The header
//! is read as sent, before any JWT library sees it, and keys come only from
//! the registered JWKS (`jku`, `x5u`, `jwk`, `x5c` headers are ignored).

pub mod claims;
pub mod error;
pub mod jwks;
pub mod jwt;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

pub use crate::jwk::{KeySet, KeySetError, VerifyingKey};
pub use claims::{
    ChangeClaims, ChangeRequest, Claims, IssueClaims, ListingClaims, RefChangeClaims, RevokeClaims,
};
pub use error::AuthError;
pub use jwks::{ClientKeys, FetchError, Fetcher, SetupError};

use crate::config::{ConfigError, Settings};
use crate::domain::claims::{self as checks, ChangeOp, SigAlg};
use crate::domain::{ClaimError, ClientId, Jti, ListFormat};

/// A registered client as the checks see it.
#[derive(Debug)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// Its list format.
    pub format: ListFormat,
    /// The algorithms it may use.
    pub algorithms: Vec<SigAlg>,
    /// Its keys and their cache.
    pub keys: Arc<ClientKeys>,
}

/// One immutable generation of the client registry and the settings the
/// checks need. Requests hold an `Arc` to the generation they started with,
/// so a reload never changes the rules under a request in flight.
#[derive(Debug)]
pub struct Registry {
    /// Looked up by the `iss` text through `ClientId: Borrow<str>`.
    clients: HashMap<ClientId, Arc<Client>>,
    /// The service's public base URL as list URIs and `aud` carry it.
    public_base_url: String,
    /// The idempotency window in whole seconds, the unit of the claim checks
    /// (`iat` and the record lifetimes are unix seconds).
    idempotency_window_secs: u64,
    /// The largest `count` of an `/issue` (`lists.max_batch`).
    max_batch: u32,
    fetcher: Fetcher,
}

impl Registry {
    /// Builds a registry from settings, carrying over the JWKS caches of
    /// clients whose id and `jwks_uri` are unchanged from `previous`.
    ///
    /// # Errors
    /// [`SetupError`] when the HTTP client cannot be built.
    pub fn build(settings: &Settings, previous: Option<&Registry>) -> Result<Self, SetupError> {
        let fetcher = Fetcher::new(&settings.jwks)?.allow_demo_key(settings.is_development());
        let clients = settings
            .clients
            .iter()
            .map(|c| {
                let keys = previous
                    .and_then(|p| p.clients.get(c.id.as_str()))
                    .filter(|old| old.keys.reusable_for(&c.id, &c.keys))
                    .map(|old| Arc::clone(&old.keys))
                    .unwrap_or_else(|| Arc::new(ClientKeys::new(c.id.clone(), c.keys.clone())));
                let client = Client {
                    id: c.id.clone(),
                    format: c.format,
                    algorithms: c.algorithms.clone(),
                    keys,
                };
                (c.id.clone(), Arc::new(client))
            })
            .collect();
        Ok(Registry {
            clients,
            public_base_url: settings.public_base_url.as_str().to_owned(),
            idempotency_window_secs: settings.idempotency_window.as_secs(),
            max_batch: settings.lists.max_batch.get(),
            fetcher,
        })
    }

    /// The client with this id.
    pub fn client(&self, id: &str) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when no client is registered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The checked claims of `client`'s request of kind `kind`, signed at
    /// `iat`: its record counts for the idempotency window after that.
    fn claims<K>(
        &self,
        client: &Client,
        iat: u64,
        jti: Jti,
        digest: [u8; 32],
        kind: K,
    ) -> Claims<K> {
        Claims {
            client: client.id.clone(),
            format: client.format,
            iat,
            jti,
            digest,
            keep_until: checks::record_until(iat, self.idempotency_window_secs),
            kind,
        }
    }
}

/// Why a reload was refused (the old registry stays in force).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// The entry point of request authentication: holds the current registry
/// generation and swaps it atomically on reload.
#[derive(Debug)]
pub struct Authenticator {
    current: RwLock<Arc<Registry>>,
    generation: AtomicU64,
}

/// The header checks' verdict: what the rest of the checks need.
struct Header<'h> {
    kid: Option<&'h str>,
    alg: SigAlg,
}

impl Authenticator {
    /// An authenticator over the clients of `settings`.
    ///
    /// # Errors
    /// [`SetupError`] when the HTTP client cannot be built.
    pub fn new(settings: &Settings) -> Result<Self, SetupError> {
        Ok(Authenticator {
            current: RwLock::new(Arc::new(Registry::build(settings, None)?)),
            generation: AtomicU64::new(0),
        })
    }

    /// The registry in force now. Hold the `Arc` for the whole request.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// How many times the registry was replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces the registry with one built from `settings` (JWKS caches of
    /// unchanged clients are kept).
    ///
    /// # Errors
    /// [`SetupError`]; the old registry then stays in force.
    pub fn replace(&self, settings: &Settings) -> Result<(), SetupError> {
        let new = Registry::build(settings, Some(&self.registry()))?;
        self.install(new);
        Ok(())
    }

    /// Puts `registry` (built by [`Registry::build`], e.g. over the one in
    /// force) in force: for a reload that must check everything before it
    /// changes anything.
    pub fn install(&self, registry: Registry) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(registry);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Re-reads the configuration file at `path` (with environment
    /// overrides) and swaps the registry in. On any error the old registry
    /// stays in force and the reason is logged.
    ///
    /// # Errors
    /// [`ReloadError`] saying why the new configuration was refused.
    pub fn reload_from(&self, path: &Path) -> Result<(), ReloadError> {
        let outcome = Settings::load(path)
            .map_err(ReloadError::from)
            .and_then(|s| {
                self.replace(&s)
                    .map(|()| s.clients.len())
                    .map_err(ReloadError::from)
            });
        match outcome {
            Ok(clients) => {
                tracing::info!(
                    clients,
                    generation = self.generation(),
                    "configuration reloaded"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration reload refused; keeping the previous clients");
                Err(e)
            }
        }
    }

    /// Checks an `/issue` request: the CRS claims, then the optional `ref`
    /// and `count` (1 to `lists.max_batch`). With neither, the digest is the
    /// CRS one ([`checks::issue_digest`]); with either, one that covers them
    /// ([`checks::issue_digest_v2`]).
    ///
    /// # Errors
    /// The first failed check as an [`AuthError`].
    pub async fn check_issue(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<IssueClaims, AuthError> {
        let reg = self.registry();
        let (client, raw) = authenticate(&reg, content_type, body, now).await?;
        let iat = checks::check_iat(raw.iat.as_ref(), now, reg.idempotency_window_secs)?;
        let jti = checks::check_jti(raw.jti.as_ref())?;
        let status_expiry = checks::check_status_expiry(raw.status_expiry.as_ref(), now)?;
        let issuance_ref = checks::check_ref(raw.issuance_ref.as_ref())?;
        let count = checks::check_count(raw.count.as_ref(), reg.max_batch)?;
        let entries = issuance_ref.is_some() || count.is_some();
        let count = count.unwrap_or(1);
        let digest = if entries {
            checks::issue_digest_v2(
                &client.id,
                &jti,
                status_expiry,
                count,
                issuance_ref.as_ref(),
            )
        } else {
            checks::issue_digest(&client.id, &jti, status_expiry)
        };
        let kind = claims::Issue {
            status_expiry,
            count,
            issuance_ref,
            entries,
        };
        Ok(reg.claims(client, iat, jti, digest, kind))
    }

    /// Checks a `/revoke` request.
    ///
    /// # Errors
    /// The first failed check as an [`AuthError`].
    pub async fn check_revoke(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<ChangeRequest, AuthError> {
        self.check_change(ChangeOp::Revoke, content_type, body, now)
            .await
    }

    /// Checks a status-change request (`/revoke`, `/suspend`, `/unsuspend`:
    /// same claims): by `idx` and `uri` (the CRS request, checked in the
    /// CRS order), or by `ref` instead of both.
    ///
    /// # Errors
    /// The first failed check as an [`AuthError`];
    /// [`ClaimError::RefWithIndex`] when `ref` comes with `idx` or `uri`.
    pub async fn check_change(
        &self,
        op: ChangeOp,
        content_type: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<ChangeRequest, AuthError> {
        let reg = self.registry();
        let (client, raw) = authenticate(&reg, content_type, body, now).await?;
        let iat = checks::check_iat(raw.iat.as_ref(), now, reg.idempotency_window_secs)?;
        let jti = checks::check_jti(raw.jti.as_ref())?;
        if present(&raw.issuance_ref).is_some() {
            if present(&raw.idx).is_some() || present(&raw.uri).is_some() {
                return Err(ClaimError::RefWithIndex.into());
            }
            let issuance_ref =
                checks::check_ref(raw.issuance_ref.as_ref())?.ok_or(ClaimError::InvalidRef)?;
            let digest = checks::ref_change_digest(op, &client.id, &jti, &issuance_ref);
            let kind = claims::RefChange { op, issuance_ref };
            return Ok(ChangeRequest::Ref(
                reg.claims(client, iat, jti, digest, kind),
            ));
        }
        let idx = checks::check_idx(raw.idx.as_ref())?;
        let list = checks::check_uri(raw.uri.as_ref(), &reg.public_base_url)?;
        let digest = checks::change_digest(op, &client.id, &jti, idx, &list);
        let kind = claims::Change { op, idx, list };
        Ok(ChangeRequest::Entry(
            reg.claims(client, iat, jti, digest, kind),
        ))
    }

    /// Checks the `Authorization` header of a `GET /entries`: a bearer JWT
    /// with the header, key and signature checks of `/issue`, an `aud`
    /// naming this service (required), and `iat` and `jti` as for a change.
    /// Whether the jti was used before is the store's question.
    ///
    /// # Errors
    /// The first failed check as an [`AuthError`].
    pub async fn check_listing(
        &self,
        authorization: Option<&[u8]>,
        now: u64,
    ) -> Result<ListingClaims, AuthError> {
        let reg = self.registry();
        let token = jwt::bearer_token(authorization)?;
        let (client, raw) = verify(&reg, token, now).await?;
        checks::check_aud_required(raw.aud.as_ref(), &reg.public_base_url)?;
        let iat = checks::check_iat(raw.iat.as_ref(), now, reg.idempotency_window_secs)?;
        let jti = checks::check_jti(raw.jti.as_ref())?;
        let digest = checks::listing_digest(&client.id, &jti);
        Ok(reg.claims(client, iat, jti, digest, claims::Listing { sealed: () }))
    }
}

fn present(v: &Option<Value>) -> Option<&Value> {
    v.as_ref().filter(|v| !v.is_null())
}

/// The header checks, on the header as sent.
fn check_header(h: &jwt::RawHeader) -> Result<Header<'_>, AuthError> {
    let kid = present(&h.kid).ok_or(AuthError::MissingKid)?;
    let typ = present(&h.typ).ok_or(AuthError::MissingTyp)?;
    // `typ` is a media type, compared case-insensitively (RFC 7515 §4.1.9).
    if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
        return Err(AuthError::InvalidTyp);
    }
    let alg = present(&h.alg).ok_or(AuthError::MissingAlg)?;
    let alg = alg
        .as_str()
        .and_then(SigAlg::parse)
        .ok_or(AuthError::InvalidAlg)?;
    // A `kid` that is not a non-empty string is "present but invalid": it
    // fails at the JWKS lookup, in its place in the order.
    let kid = kid.as_str().filter(|k| !k.is_empty());
    Ok(Header { kid, alg })
}

/// The checks of a request body JWT up to and including an `aud` that may
/// be absent; returns the client and the raw claims for the
/// endpoint-specific checks.
async fn authenticate<'r>(
    reg: &'r Registry,
    content_type: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(&'r Arc<Client>, jwt::RawClaims), AuthError> {
    if !jwt::is_jwt_content_type(content_type) {
        return Err(AuthError::ContentType);
    }
    let (client, claims) = verify(reg, body, now).await?;
    checks::check_aud(claims.aud.as_ref(), &reg.public_base_url)?;
    Ok((client, claims))
}

/// Decoding, the header, the issuer, the key and the signature of a token,
/// in that order; returns the client and the raw claims.
async fn verify<'r>(
    reg: &'r Registry,
    token: &[u8],
    now: u64,
) -> Result<(&'r Arc<Client>, jwt::RawClaims), AuthError> {
    let parsed = jwt::parse(token)?;
    let header = check_header(&parsed.header)?;
    let iss = present(&parsed.claims.iss).ok_or(AuthError::MissingIss)?;
    let client = iss
        .as_str()
        .and_then(|id| reg.client(id))
        .ok_or(AuthError::UnknownClient)?;
    if !client.algorithms.contains(&header.alg) {
        return Err(AuthError::InvalidAlg);
    }
    let kid = header.kid.ok_or(AuthError::InvalidKid)?;
    let set = client.keys.key_set_for(&reg.fetcher, kid, now).await?;
    let key = set.get(kid).ok_or(AuthError::InvalidKid)?;
    if !key.verify(header.alg, parsed.signing_input, parsed.signature) {
        return Err(AuthError::BadSignature);
    }
    Ok((client, parsed.claims))
}

/// Installs a `SIGHUP` handler and spawns a task that reloads the
/// configuration at `path` on each signal, until `shutdown` completes.
/// Clients only: the application uses `crate::startup::Reloader`, which
/// reloads the signing keys too. The
/// handler is installed before this returns, so a signal sent afterwards is
/// never lost (nor fatal to the process).
///
/// # Errors
/// The I/O error when the signal handler cannot be installed.
pub fn spawn_reload_on_sighup<F>(
    auth: Arc<Authenticator>,
    path: PathBuf,
    shutdown: F,
) -> std::io::Result<tokio::task::JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                got = hup.recv() => {
                    if got.is_none() {
                        break;
                    }
                    tracing::info!(path = %path.display(), "SIGHUP: reloading configuration");
                    let (auth, path) = (Arc::clone(&auth), path.clone());
                    // Reading and parsing files is blocking work; errors are
                    // logged inside `reload_from`.
                    let _ = tokio::task::spawn_blocking(move || auth.reload_from(&path)).await;
                }
            }
        }
    }))
}
