//! The one error type of request authentication, and the one table that maps
//! each variant to its HTTP status and CRS `error` / `error_description`.
//!
//! The texts are those of `crs-private-spec.yaml`, verbatim; a test reads the
//! spec and checks that every 400 and 401 example of `/issue` and `/revoke`
//! that concerns authentication is a row of this table.

use crate::domain::ClaimError;

/// Why a request JWT was refused. Variants are listed in the order the checks
/// run; a request with several faults gets the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Content-Type missing or not `application/jwt`.
    #[error("Content-Type header must be application/jwt")]
    ContentType,
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

/// `error` codes of the CRS contract.
const BAD_REQUEST: &str = "BAD_REQUEST";
const UNAUTHORIZED: &str = "UNAUTHORIZED";
const TEMPORARILY_UNAVAILABLE: &str = "TEMPORARILY_UNAVAILABLE";

impl AuthError {
    /// The response for this error: (HTTP status, CRS `error`, CRS
    /// `error_description`). This is the single table; the HTTP layer only
    /// serialises it.
    pub const fn crs(&self) -> (u16, &'static str, &'static str) {
        use AuthError as E;
        use ClaimError as C;
        match self {
            E::ContentType => (
                400,
                BAD_REQUEST,
                "Content-Type header must be application/jwt",
            ),
            E::Decode => (400, BAD_REQUEST, "Error decoding JWT or converting to JSON"),
            E::MissingKid => (401, UNAUTHORIZED, "No Key ID in Header"),
            E::MissingTyp => (401, UNAUTHORIZED, "No Type in Header"),
            E::InvalidTyp => (401, UNAUTHORIZED, "Invalid Type in Header"),
            E::MissingAlg => (401, UNAUTHORIZED, "No Algorithm in Header"),
            E::InvalidAlg => (401, UNAUTHORIZED, "Invalid Algorithm in Header"),
            E::MissingIss => (401, UNAUTHORIZED, "No Issuer in Payload"),
            E::UnknownClient => (401, UNAUTHORIZED, "JWT has non-matching Client ID"),
            E::InvalidKid => (401, UNAUTHORIZED, "Invalid Key ID in Header"),
            E::BadSignature => (401, UNAUTHORIZED, "JWT has non-verified signature"),
            E::Claim(C::MissingIat) => (400, BAD_REQUEST, "No iat in Payload"),
            E::Claim(C::InvalidIat) => (400, BAD_REQUEST, "Invalid iat in Payload"),
            E::Claim(C::MissingJti) => (400, BAD_REQUEST, "No jti in Payload"),
            E::Claim(C::InvalidJti) => (400, BAD_REQUEST, "Invalid jti in Payload"),
            E::Claim(C::MissingStatusExpiry) => (400, BAD_REQUEST, "No Status Expiry in Payload"),
            E::Claim(C::InvalidStatusExpiry) => (
                400,
                BAD_REQUEST,
                "Status Expiry in Payload must be a non negative number and represent a future expiry date no more than 1 year from now",
            ),
            E::Claim(C::MissingIdx) => (400, BAD_REQUEST, "No Index in Payload"),
            E::Claim(C::InvalidIdx) => (
                400,
                BAD_REQUEST,
                "Index must be a valid non-negative integer",
            ),
            E::Claim(C::MissingUri) => (400, BAD_REQUEST, "No valid URI in Payload"),
            E::Claim(C::InvalidUri) => (400, BAD_REQUEST, "Invalid URI format in payload"),
            // Not in CRS (its clients send no `aud`): a token addressed to
            // another service is an authentication failure.
            E::Claim(C::InvalidAud) => (401, UNAUTHORIZED, "Invalid Audience in Payload"),
            E::KeysUnavailable => (
                503,
                TEMPORARILY_UNAVAILABLE,
                "Service is temporarily unavailable",
            ),
        }
    }

    /// True when the client may retry the same request later (the HTTP layer
    /// sends `Retry-After`).
    pub const fn is_retryable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable)
    }

    /// Every variant, in check order (for tests and documentation of the
    /// table).
    pub const ALL: [AuthError; 23] = {
        use AuthError as E;
        use ClaimError as C;
        [
            E::ContentType,
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
            E::Claim(C::MissingIat),
            E::Claim(C::InvalidIat),
            E::Claim(C::MissingJti),
            E::Claim(C::InvalidJti),
            E::Claim(C::MissingStatusExpiry),
            E::Claim(C::InvalidStatusExpiry),
            E::Claim(C::MissingIdx),
            E::Claim(C::InvalidIdx),
            E::Claim(C::MissingUri),
            E::Claim(C::InvalidUri),
            E::KeysUnavailable,
        ]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_crs_description() {
        for e in AuthError::ALL {
            assert_eq!(e.to_string(), e.crs().2, "{e:?}");
        }
    }

    #[test]
    fn descriptions_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for e in AuthError::ALL {
            assert!(seen.insert(e.crs().2), "{e:?}");
        }
    }
}
