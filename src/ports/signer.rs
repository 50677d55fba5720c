//! The signer port: what the publish use case needs to turn a status list
//! into the signed document verifiers fetch (an IETF `statuslist+jwt`, its
//! `statuslist+cwt` twin, or a W3C `vc+jwt` credential), without knowing
//! keys, algorithms, JSON or CBOR.
//!
//! The service's signing keys (`crate::publish::KeyRing`, which rotates,
//! or a fixed `crate::publish::KeySet`) implement it;
//! `crate::startup` hands them to the service as `Arc<dyn ListSigner>`. The
//! token cache calls it only when it rebuilds a token, so the dynamic
//! dispatch never sits on a cache hit.

use crate::domain::{CompressedList, ListFormat, StatusList};

/// One list to sign, with what its document says about itself.
///
/// Times are Unix seconds; `exp` is after `iat`.
#[derive(Debug, Clone, Copy)]
pub struct ListToSign<'a> {
    /// Which document to build: a Token Status List JWT or a Bitstring Status
    /// List credential.
    pub format: ListFormat,
    /// The list, in the layout of `format`.
    pub list: &'a StatusList,
    /// The list's bytes compressed, as the caller keeps them to re-publish
    /// the next version incrementally; must be the compression of
    /// `list.as_bytes()`. A signer uses it when the document publishes exactly
    /// those bytes (it encodes the list itself otherwise, e.g. for a W3C list
    /// padded to the minimum length).
    pub compressed: &'a CompressedList,
    /// The issuer: the service's public base URL, without a trailing slash.
    pub iss: &'a str,
    /// The list's URI (`sub`, and the credential's `id`).
    pub uri: &'a str,
    /// Issued at.
    pub iat: u64,
    /// Expires at.
    pub exp: u64,
    /// How long a verifier may cache the list, in seconds.
    pub ttl: u64,
    /// The Status List Aggregation URI published in the list
    /// (`status_list.aggregation_uri`); `None` leaves the member out. Only
    /// Token Status Lists carry it (the W3C model has no such member).
    pub aggregation_uri: Option<&'a str>,
}

/// Why a list could not be signed. The adapter's own error is kept as the
/// source and shown as is, so logs read the same whichever adapter signs.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct SignError(Box<dyn std::error::Error + Send + Sync>);

impl SignError {
    /// Wraps an adapter's error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        SignError(source.into())
    }
}

/// Signs status lists with the service's key.
///
/// Implementations are CPU-bound and synchronous: the caller moves large
/// lists off the async reactor itself.
pub trait ListSigner: Send + Sync + std::fmt::Debug {
    /// The signed compact JWS of `list`.
    ///
    /// # Errors
    /// [`SignError`] when the list and parameters cannot make a valid
    /// document (wrong layout or width, `exp` out of range, …).
    fn sign(&self, list: &ListToSign<'_>) -> Result<String, SignError>;

    /// The signed CWT of a Token Status List (`application/statuslist+cwt`:
    /// a tagged COSE_Sign1), with the same claims as [`ListSigner::sign`]
    /// makes for the JWT.
    ///
    /// # Errors
    /// [`SignError`] as for [`ListSigner::sign`], and for a list whose
    /// `format` is not the Token Status List (no CWT form exists for it).
    fn sign_cwt(&self, list: &ListToSign<'_>) -> Result<Vec<u8>, SignError>;

    /// Whether a signing key is loaded (reported by `/health/ready`).
    fn has_key(&self) -> bool;

    /// Which signing key signs now, as a number that grows by one at each
    /// rotation (0 for a signer whose key never changes). A token signed
    /// under a lower number is re-signed before it is served again, so that
    /// after a rotation every list shows the new key.
    fn key_generation(&self) -> u64 {
        0
    }
}

/// The service's public keys as verifiers fetch them
/// (`/.well-known/jwks.json`).
///
/// Its own port rather than a method of [`ListSigner`]: the JWKS is read by
/// the HTTP layer on every fetch, signing only by the token cache.
pub trait PublishedKeys: Send + Sync + std::fmt::Debug {
    /// The JWKS document (`{"keys": [...]}`, the signing key first) as JSON,
    /// as it stands at `now` (unix seconds): a retired signing key is in it
    /// until its retire time and gone from then on, with no reload needed.
    fn jwks_json(&self, now: u64) -> bytes::Bytes;
}
