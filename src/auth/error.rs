//! The one error type of request authentication: typed causes, never HTTP
//! statuses.
//!
//! The `Display` of each variant is its CRS `error_description`, verbatim from
//! `crs-private-spec.yaml` where CRS has the cause (the causes of the
//! service's own extensions, `ref`, `count` and `GET /entries`, have texts
//! in the same style that name the claim or header). Which HTTP status and CRS `error` code a cause gets
//! is decided in one place, the HTTP layer's error table
//! (`crate::http::error`), which also checks that its texts are these.

use crate::domain::ClaimError;

/// Why a request JWT was refused. Variants are listed in the order the checks
/// run; a request with several faults gets the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Content-Type missing or not `application/jwt`.
    #[error("Content-Type header must be application/jwt")]
    ContentType,
    /// No `Authorization` header where a bearer JWT is required
    /// (`GET /entries`).
    #[error("No Authorization header: send Authorization: Bearer <JWT>")]
    MissingBearer,
    /// An `Authorization` header that is not `Bearer` and one token.
    #[error("Authorization header must be Bearer followed by a JWT")]
    MalformedBearer,
    /// Not a compact JWS whose header and payload are base64url JSON objects
    /// (also: too long, a `crit` header, a payload that is not an object).
    #[error("Error decoding JWT or converting to JSON")]
    Decode,
    /// No `kid` in the header.
    #[error("No Key ID in Header")]
    MissingKid,
    /// No `typ` in the header.
    #[error("No Type in Header")]
    MissingTyp,
    /// A `typ` other than `JWT`.
    #[error("Invalid Type in Header")]
    InvalidTyp,
    /// No `alg` in the header.
    #[error("No Algorithm in Header")]
    MissingAlg,
    /// An `alg` outside the safe set, or not allowed for this client.
    #[error("Invalid Algorithm in Header")]
    InvalidAlg,
    /// No `iss` in the payload.
    #[error("No Issuer in Payload")]
    MissingIss,
    /// An `iss` that is not a registered client.
    #[error("JWT has non-matching Client ID")]
    UnknownClient,
    /// A `kid` that is not in the client's JWKS (after at most one refresh).
    #[error("Invalid Key ID in Header")]
    InvalidKid,
    /// The signature does not verify with the client's key for `kid`.
    #[error("JWT has non-verified signature")]
    BadSignature,
    /// A claim is missing or invalid.
    #[error(transparent)]
    Claim(#[from] ClaimError),
    /// The client's JWKS could not be fetched and nothing usable is cached.
    #[error("Service is temporarily unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// True when the client may retry the same request later (the HTTP layer
    /// sends `Retry-After`).
    pub const fn is_retryable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable)
    }

    /// Every variant, in check order (for tests and documentation of the
    /// table); [`ClaimError::InvalidCount`] with the default `max_batch`.
    pub const ALL: [AuthError; 29] = {
        use AuthError as E;
        use ClaimError as C;
        [
            E::ContentType,
            E::MissingBearer,
            E::MalformedBearer,
            E::Decode,
            E::MissingKid,
            E::MissingTyp,
            E::InvalidTyp,
            E::MissingAlg,
            E::InvalidAlg,
            E::MissingIss,
            E::UnknownClient,
            E::InvalidKid,
            E::BadSignature,
            E::Claim(C::InvalidAud),
            E::Claim(C::MissingAud),
            E::Claim(C::MissingIat),
            E::Claim(C::InvalidIat),
            E::Claim(C::MissingJti),
            E::Claim(C::InvalidJti),
            E::Claim(C::MissingStatusExpiry),
            E::Claim(C::InvalidStatusExpiry),
            E::Claim(C::InvalidRef),
            E::Claim(C::InvalidCount { max: 100 }),
            E::Claim(C::RefWithIndex),
            E::Claim(C::MissingIdx),
            E::Claim(C::InvalidIdx),
            E::Claim(C::MissingUri),
            E::Claim(C::InvalidUri),
            E::KeysUnavailable,
        ]
    };
}
