//! The IETF Token Status List as a JWT (`typ: statuslist+jwt`): building and
//! signing it from a list, and reading its payload back.
//!
//! Claims (draft-ietf-oauth-status-list): `iss`, `sub` (the list URI, which
//! must equal the `uri` inside the referencing credentials), `iat`, `exp`,
//! `ttl` (seconds), and `status_list: {bits, lst}` where `lst` is the
//! base64url of the zlib-compressed bytes (any valid zlib stream; ours is
//! made in segments, see [`crate::domain::segmented`]).

use crate::domain::codec::decode_lst;
use crate::domain::{Bits, CompressedList, Layout, StatusList};

use super::keys::ServiceKey;
use super::params::ListParams;
use super::{PublishError, jws};

/// The JWT `typ` of a Token Status List.
pub const TYP: &str = "statuslist+jwt";

/// The media type a Token Status List JWT is served with.
pub const MEDIA_TYPE: &str = "application/statuslist+jwt";

/// The `status_list` claim.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusListClaim {
    /// Bits per entry.
    pub bits: Bits,
    /// base64url (no padding) of the zlib-compressed list bytes.
    pub lst: String,
    /// Where the Status List Aggregation of this kind of list is
    /// (draft §9); absent when the issuer publishes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_uri: Option<String>,
}

/// The claims of a Token Status List JWT. Optional members are those the
/// draft does not require; this service always sets them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenStatusListClaims {
    /// The issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The list URI.
    pub sub: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expiry (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// How long a verifier may cache the list, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// The list itself.
    pub status_list: StatusListClaim,
}

/// Builds and signs the Token Status List JWT of `list`.
///
/// # Errors
/// [`PublishError::WrongLayout`] unless the list has the IETF layout;
/// [`PublishError::BadParams`] when `params` fail [`ListParams::check`].
pub fn sign_token_list(
    list: &StatusList,
    params: &ListParams<'_>,
    key: &ServiceKey,
) -> Result<String, PublishError> {
    sign_compressed_token_list(
        list,
        &CompressedList::new(list.as_bytes()),
        params,
        None,
        key,
    )
}

/// As [`sign_token_list`], with the list's bytes already compressed
/// (`compressed` must be the compression of `list.as_bytes()`; one of another
/// length is ignored and the list compressed anew), publishing
/// `aggregation_uri` in the `status_list` claim when given.
///
/// # Errors
/// As [`sign_token_list`].
#[tracing::instrument(level = "debug", skip_all, fields(list = params.uri, entries = list.len()))]
pub fn sign_compressed_token_list(
    list: &StatusList,
    compressed: &CompressedList,
    params: &ListParams<'_>,
    aggregation_uri: Option<&str>,
    key: &ServiceKey,
) -> Result<String, PublishError> {
    if list.layout() != Layout::Ietf {
        return Err(PublishError::WrongLayout {
            format: "Token Status List",
            expected: Layout::Ietf,
            got: list.layout(),
        });
    }
    params.check()?;
    let fresh;
    let compressed = if compressed.raw_len() == list.as_bytes().len() {
        compressed
    } else {
        fresh = CompressedList::new(list.as_bytes());
        &fresh
    };
    let claims = TokenStatusListClaims {
        iss: Some(params.iss.to_owned()),
        sub: params.uri.to_owned(),
        iat: params.iat,
        exp: Some(params.exp),
        ttl: Some(params.ttl),
        status_list: StatusListClaim {
            bits: list.bits(),
            lst: compressed.lst(),
            aggregation_uri: aggregation_uri.map(str::to_owned),
        },
    };
    jws::sign(TYP, &claims, key)
}

/// A Token Status List payload, read and decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedTokenList {
    /// The claims as sent (with `lst` still encoded).
    pub claims: TokenStatusListClaims,
    /// The decoded list: IETF layout, every whole entry the bytes hold.
    pub list: StatusList,
}

/// Reads a Token Status List JWT payload (the JSON bytes, as returned by
/// [`jws::verify`]) and decodes its list, refusing to inflate it past `limit`
/// bytes. Checks no signature and no time.
///
/// # Errors
/// [`PublishError::BadJson`] when the claims do not have the draft's shape
/// (including `bits` other than 1, 2, 4 or 8); [`PublishError::Codec`] when
/// `lst` cannot be decoded.
pub fn decode_token_list(payload: &[u8], limit: usize) -> Result<DecodedTokenList, PublishError> {
    let claims: TokenStatusListClaims =
        serde_json::from_slice(payload).map_err(|e| PublishError::json("claims", &e))?;
    let bytes = decode_lst(&claims.status_list.lst, limit)?;
    let list = StatusList::from_decoded(Layout::Ietf, claims.status_list.bits, bytes)
        .map_err(|_| PublishError::NotAStatusList("the list is empty"))?;
    Ok(DecodedTokenList { claims, list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codec::DEFAULT_DECODE_LIMIT;

    fn params() -> ListParams<'static> {
        ListParams {
            iss: "https://s.example",
            uri: "https://s.example/t/ABCDEF012345",
            iat: 1_700_000_000,
            exp: 1_700_086_400,
            ttl: 300,
        }
    }

    #[test]
    fn round_trips_through_our_own_verifier() {
        let key = ServiceKey::generate();
        let mut list = StatusList::new(Layout::Ietf, Bits::Two, 1000).unwrap();
        list.set(7, 1).unwrap();
        list.set(999, 2).unwrap();
        let token = sign_token_list(&list, &params(), &key).unwrap();
        let parts = jws::verify(&token, key.verifying_key()).unwrap();
        assert_eq!(parts.header.typ.as_deref(), Some(TYP));
        let decoded = decode_token_list(&parts.payload, DEFAULT_DECODE_LIMIT).unwrap();
        assert_eq!(decoded.list.as_bytes(), list.as_bytes());
        assert_eq!(decoded.claims.sub, params().uri);
        assert_eq!(decoded.claims.ttl, Some(300));
    }

    #[test]
    fn w3c_list_and_bad_params_are_refused() {
        let key = ServiceKey::generate();
        let w3c = StatusList::new(Layout::W3c, Bits::Two, 8).unwrap();
        assert!(matches!(
            sign_token_list(&w3c, &params(), &key),
            Err(PublishError::WrongLayout { .. })
        ));
        let ietf = StatusList::new(Layout::Ietf, Bits::One, 8).unwrap();
        let bad = ListParams { exp: 0, ..params() };
        assert!(matches!(
            sign_token_list(&ietf, &bad, &key),
            Err(PublishError::BadParams(_))
        ));
    }

    #[test]
    fn bad_payloads_are_errors() {
        let cases: [(&str, &[u8]); 5] = [
            ("not json", b"nope"),
            ("no status_list", br#"{"sub":"s","iat":1}"#),
            (
                "bits 3",
                br#"{"sub":"s","iat":1,"status_list":{"bits":3,"lst":"eNrbuRgAAhcBXQ"}}"#,
            ),
            (
                "lst not zlib",
                br#"{"sub":"s","iat":1,"status_list":{"bits":1,"lst":"AAAA"}}"#,
            ),
            (
                "negative iat",
                br#"{"sub":"s","iat":-1,"status_list":{"bits":1,"lst":"eNrbuRgAAhcBXQ"}}"#,
            ),
        ];
        for (why, payload) in cases {
            assert!(decode_token_list(payload, 1024).is_err(), "{why}");
        }
        let ok = br#"{"sub":"s","iat":1,"status_list":{"bits":1,"lst":"eNrbuRgAAhcBXQ"}}"#;
        assert_eq!(
            decode_token_list(ok, 1024).unwrap().list.as_bytes(),
            [0xb9, 0xa3]
        );
        assert!(matches!(
            decode_token_list(ok, 1),
            Err(PublishError::Codec(_))
        ));
    }
}
