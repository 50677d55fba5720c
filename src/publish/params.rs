//! The issuance parameters shared by both list documents: who issues, which
//! list, when, for how long, and how long verifiers may cache it.

use super::PublishError;

/// What a signed list says about itself besides the list.
///
/// Times are Unix seconds. The same values feed both documents: `iat`/`exp`
/// become `validFrom`/`validUntil` in the W3C credential, and `ttl` (seconds)
/// is published in milliseconds there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListParams<'a> {
    /// The issuer (`iss`, and `issuer` in the credential): the service's
    /// public base URL.
    pub iss: &'a str,
    /// The list's URI, published as `sub` (and the credential's `id`).
    pub uri: &'a str,
    /// Issued at.
    pub iat: u64,
    /// Expires at; must be after `iat`.
    pub exp: u64,
    /// How long a verifier may cache the list, in seconds.
    pub ttl: u64,
}

/// The largest Unix time accepted: 9999-12-31T23:59:59Z, the end of the
/// four-digit years RFC 3339 can write, so every accepted `exp` can also be a
/// W3C `validUntil`.
pub const MAX_TIME: u64 = 253_402_300_799;

impl ListParams<'_> {
    /// Checks the parameters that could make a token no verifier accepts.
    ///
    /// # Errors
    /// [`PublishError::BadParams`] for an empty `iss` or `uri`, `exp` not after
    /// `iat`, or a time past [`MAX_TIME`].
    pub fn check(&self) -> Result<(), PublishError> {
        if self.iss.is_empty() {
            return Err(PublishError::BadParams("iss is empty"));
        }
        if self.uri.is_empty() {
            return Err(PublishError::BadParams("the list URI is empty"));
        }
        if self.exp <= self.iat {
            return Err(PublishError::BadParams("exp must be after iat"));
        }
        if self.exp > MAX_TIME {
            return Err(PublishError::BadParams("exp is after year 9999"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_no_verifier_accepts() {
        let good = ListParams {
            iss: "https://s.example",
            uri: "https://s.example/t/ABCDEF012345",
            iat: 10,
            exp: 20,
            ttl: 5,
        };
        assert!(good.check().is_ok());
        let cases = [
            ("empty iss", ListParams { iss: "", ..good }),
            ("empty uri", ListParams { uri: "", ..good }),
            ("exp == iat", ListParams { exp: 10, ..good }),
            ("exp < iat", ListParams { exp: 5, ..good }),
            (
                "exp too far",
                ListParams {
                    exp: MAX_TIME + 1,
                    ..good
                },
            ),
        ];
        for (why, params) in cases {
            assert!(
                matches!(params.check(), Err(PublishError::BadParams(_))),
                "{why}"
            );
        }
        assert!(
            ListParams {
                exp: MAX_TIME,
                ..good
            }
            .check()
            .is_ok()
        );
    }
}
