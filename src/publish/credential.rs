//! The W3C Bitstring Status List credential, secured as a JWT (`typ:
//! vc+jwt`, served as `application/vc+jwt`): building and signing it from a
//! list, and reading its payload back.
//!
//! The payload is the `BitstringStatusListCredential` itself (VC Data Model
//! 2.0, secured with JOSE), with the JWT claims `iss`, `sub`, `iat` and `exp`
//! next to it so that generic JWT verifiers can check lifetime and subject.
//! The service publishes one purpose, `message`, with 2-bit entries and the
//! same three values as the IETF registry (VALID, INVALID, SUSPENDED).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::CompressedList;
use crate::domain::codec::{decode_bitstring, encode_bitstring};
use crate::domain::embed;
use crate::domain::{Bits, Layout, StatusList};

use super::keys::ServiceKey;
use super::params::ListParams;
use super::{PublishError, jws};

/// The JWT `typ` of a credential secured as a JWT.
pub const TYP: &str = "vc+jwt";

/// The media type the credential is served with.
pub const MEDIA_TYPE: &str = "application/vc+jwt";

/// The VC Data Model 2.0 context.
pub const VC_CONTEXT_V2: &str = "https://www.w3.org/ns/credentials/v2";

/// The smallest uncompressed bitstring the W3C spec allows: 16 KiB, i.e.
/// 131,072 bits. The minimum is a privacy rule (herd privacy: a verifier
/// fetching the list must not learn much about which credential it checks),
/// and conforming verifiers reject shorter lists, so a shorter list is padded
/// with zero bytes (VALID entries that were never issued) up to this size.
pub const MIN_BITSTRING_BYTES: usize = 16 * 1024;

/// One row of `statusMessage` (the table lives in `domain`, shared with the
/// status entries `/issue` answers).
pub use crate::domain::embed::StatusMessage;

/// The `credentialSubject` of the credential.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BitstringStatusList {
    /// `<list URI>#list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Always `BitstringStatusList`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `message` for this service's lists.
    pub status_purpose: String,
    /// Bits per entry; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_size: Option<u64>,
    /// The meaning of each value, required when `statusSize` > 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<Vec<StatusMessage>>,
    /// Multibase `u` + base64url (no padding) of the GZIP-compressed bytes.
    pub encoded_list: String,
    /// How long a verifier may cache the list, in MILLISECONDS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
}

/// The credential and the JWT claims of the `vc+jwt` payload. Optional
/// members are those the spec does not require; this service sets them all.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BitstringStatusListCredential {
    /// JSON-LD contexts, the VCDM 2.0 one first.
    #[serde(rename = "@context")]
    pub context: Vec<String>,
    /// The list URI.
    pub id: String,
    /// `VerifiableCredential`, `BitstringStatusListCredential`.
    #[serde(rename = "type")]
    pub type_: Vec<String>,
    /// The issuer's URL.
    pub issuer: String,
    /// RFC 3339 UTC time from which the list is valid (= `iat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// RFC 3339 UTC time until which the list is valid (= `exp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// The list.
    pub credential_subject: BitstringStatusList,
    /// JWT issuer (= `issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// JWT subject (= `id`, the list URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// JWT issued-at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// JWT expiry, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

/// Builds and signs the `vc+jwt` Bitstring Status List credential of `list`.
///
/// # Errors
/// [`PublishError::WrongLayout`] unless the list has the W3C layout,
/// [`PublishError::WrongBits`] unless it has 2-bit entries (the published
/// `statusSize`), [`PublishError::BadParams`] when `params` fail
/// [`ListParams::check`] or `ttl` in milliseconds overflows.
#[tracing::instrument(level = "debug", skip_all, fields(list = params.uri, entries = list.len()))]
pub fn sign_bitstring_credential(
    list: &StatusList,
    params: &ListParams<'_>,
    key: &ServiceKey,
) -> Result<String, PublishError> {
    let credential = build_credential(list, params)?;
    jws::sign(TYP, &credential, key)
}

/// As [`sign_bitstring_credential`], with the list's bytes already
/// compressed (`compressed` must be the compression of `list.as_bytes()`). It
/// is used when the list is at least [`MIN_BITSTRING_BYTES`] long; a shorter
/// list is padded and compressed anew, as is one of another length.
///
/// # Errors
/// As [`sign_bitstring_credential`].
#[tracing::instrument(level = "debug", skip_all, fields(list = params.uri, entries = list.len()))]
pub fn sign_compressed_bitstring_credential(
    list: &StatusList,
    compressed: &CompressedList,
    params: &ListParams<'_>,
    key: &ServiceKey,
) -> Result<String, PublishError> {
    let credential = credential(list, Some(compressed), params)?;
    jws::sign(TYP, &credential, key)
}

/// The unsigned credential of `list` (what [`sign_bitstring_credential`]
/// signs).
///
/// # Errors
/// As [`sign_bitstring_credential`].
pub fn build_credential(
    list: &StatusList,
    params: &ListParams<'_>,
) -> Result<BitstringStatusListCredential, PublishError> {
    credential(list, None, params)
}

fn credential(
    list: &StatusList,
    compressed: Option<&CompressedList>,
    params: &ListParams<'_>,
) -> Result<BitstringStatusListCredential, PublishError> {
    const FORMAT: &str = "Bitstring Status List credential";
    if list.layout() != Layout::W3c {
        return Err(PublishError::WrongLayout {
            format: FORMAT,
            expected: Layout::W3c,
            got: list.layout(),
        });
    }
    if list.bits() != Bits::Two {
        return Err(PublishError::WrongBits {
            format: FORMAT,
            expected: Bits::Two,
            got: list.bits(),
        });
    }
    params.check()?;
    let ttl_ms = params
        .ttl
        .checked_mul(1000)
        .ok_or(PublishError::BadParams("ttl in milliseconds overflows"))?;
    Ok(BitstringStatusListCredential {
        context: vec![VC_CONTEXT_V2.to_owned()],
        id: params.uri.to_owned(),
        type_: vec![
            "VerifiableCredential".to_owned(),
            "BitstringStatusListCredential".to_owned(),
        ],
        issuer: params.iss.to_owned(),
        valid_from: Some(rfc3339(params.iat)?),
        valid_until: Some(rfc3339(params.exp)?),
        credential_subject: BitstringStatusList {
            id: Some(format!("{}#list", params.uri)),
            type_: "BitstringStatusList".to_owned(),
            status_purpose: embed::STATUS_PURPOSE.to_owned(),
            status_size: Some(u64::from(embed::STATUS_SIZE)),
            status_message: Some(embed::status_messages()),
            encoded_list: match compressed {
                Some(c)
                    if c.raw_len() == list.as_bytes().len()
                        && c.raw_len() >= MIN_BITSTRING_BYTES =>
                {
                    c.encoded_list()
                }
                _ => encode_padded(list.as_bytes()),
            },
            ttl: Some(ttl_ms),
        },
        iss: Some(params.iss.to_owned()),
        sub: Some(params.uri.to_owned()),
        iat: Some(params.iat),
        exp: Some(params.exp),
    })
}

/// Encodes the bytes, padded with zeros to [`MIN_BITSTRING_BYTES`] when
/// shorter (see there why). Copying only happens for short lists.
fn encode_padded(bytes: &[u8]) -> String {
    if bytes.len() >= MIN_BITSTRING_BYTES {
        return encode_bitstring(bytes);
    }
    let mut padded = vec![0; MIN_BITSTRING_BYTES];
    if let Some(head) = padded.get_mut(..bytes.len()) {
        head.copy_from_slice(bytes);
    }
    encode_bitstring(&padded)
}

/// A Unix time as an RFC 3339 / XML Schema `dateTime` in UTC, whole seconds,
/// e.g. `2026-11-23T16:00:00Z`.
///
/// # Errors
/// [`PublishError::BadParams`] past year 9999.
pub fn rfc3339(unix_seconds: u64) -> Result<String, PublishError> {
    const OUT_OF_RANGE: PublishError = PublishError::BadParams("time is not before year 10000");
    let secs = i64::try_from(unix_seconds).map_err(|_| OUT_OF_RANGE)?;
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or(OUT_OF_RANGE)
}

/// A Bitstring Status List credential payload, read and decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBitstringList {
    /// The credential as sent (with `encodedList` still encoded).
    pub credential: BitstringStatusListCredential,
    /// The decoded list: W3C layout, `statusSize` bits, every whole entry the
    /// bytes hold (padding included).
    pub list: StatusList,
}

/// Reads a `vc+jwt` payload (the JSON bytes, as returned by [`jws::verify`])
/// and decodes its list, refusing to inflate it past `limit` bytes. Checks
/// no signature and no time.
///
/// # Errors
/// [`PublishError::BadJson`] when the JSON does not have the credential's
/// shape; [`PublishError::NotAStatusList`] when the types are not those of a
/// Bitstring Status List or `statusSize` is not 1, 2, 4 or 8;
/// [`PublishError::Codec`] when `encodedList` cannot be decoded.
pub fn decode_bitstring_credential(
    payload: &[u8],
    limit: usize,
) -> Result<DecodedBitstringList, PublishError> {
    let credential: BitstringStatusListCredential =
        serde_json::from_slice(payload).map_err(|e| PublishError::json("credential", &e))?;
    if !credential
        .type_
        .iter()
        .any(|t| t == "BitstringStatusListCredential")
    {
        return Err(PublishError::NotAStatusList(
            "type does not include BitstringStatusListCredential",
        ));
    }
    let subject = &credential.credential_subject;
    if subject.type_ != "BitstringStatusList" {
        return Err(PublishError::NotAStatusList(
            "credentialSubject.type is not BitstringStatusList",
        ));
    }
    let bits = Bits::try_from(subject.status_size.unwrap_or(1))
        .map_err(|_| PublishError::NotAStatusList("statusSize must be 1, 2, 4 or 8"))?;
    let bytes = decode_bitstring(&subject.encoded_list, limit)?;
    let list = StatusList::from_decoded(Layout::W3c, bits, bytes)
        .map_err(|_| PublishError::NotAStatusList("the list is empty"))?;
    Ok(DecodedBitstringList { credential, list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codec::DEFAULT_DECODE_LIMIT;

    fn params() -> ListParams<'static> {
        ListParams {
            iss: "https://s.example",
            uri: "https://s.example/b/ABCDEF012345",
            iat: 1_795_449_600,
            exp: 1_795_536_000,
            ttl: 300,
        }
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        // Dates computed independently (`date -u -d @N`).
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_449_600).unwrap(), "2026-11-23T16:00:00Z");
        assert_eq!(rfc3339(253_402_300_799).unwrap(), "9999-12-31T23:59:59Z");
        assert!(rfc3339(253_402_300_800).is_err());
        assert!(rfc3339(u64::MAX).is_err());
    }

    #[test]
    fn short_lists_are_padded_to_16_kib_and_long_ones_kept() {
        let mut short = StatusList::new(Layout::W3c, Bits::Two, 100).unwrap();
        short.set(99, 2).unwrap();
        let c = build_credential(&short, &params()).unwrap();
        let bytes =
            decode_bitstring(&c.credential_subject.encoded_list, DEFAULT_DECODE_LIMIT).unwrap();
        assert_eq!(bytes.len(), MIN_BITSTRING_BYTES);
        assert_eq!(&bytes[..short.as_bytes().len()], short.as_bytes());
        assert!(bytes[short.as_bytes().len()..].iter().all(|b| *b == 0));

        let long = StatusList::new(Layout::W3c, Bits::Two, 100_000).unwrap();
        let c = build_credential(&long, &params()).unwrap();
        let bytes =
            decode_bitstring(&c.credential_subject.encoded_list, DEFAULT_DECODE_LIMIT).unwrap();
        assert_eq!(bytes.len(), 25_000);
    }

    #[test]
    fn wrong_lists_and_params_are_refused() {
        let ietf = StatusList::new(Layout::Ietf, Bits::Two, 8).unwrap();
        assert!(matches!(
            build_credential(&ietf, &params()),
            Err(PublishError::WrongLayout { .. })
        ));
        for bits in [Bits::One, Bits::Four, Bits::Eight] {
            let list = StatusList::new(Layout::W3c, bits, 8).unwrap();
            assert!(matches!(
                build_credential(&list, &params()),
                Err(PublishError::WrongBits { .. })
            ));
        }
        let list = StatusList::new(Layout::W3c, Bits::Two, 8).unwrap();
        let overflow = ListParams {
            ttl: u64::MAX,
            ..params()
        };
        assert!(matches!(
            build_credential(&list, &overflow),
            Err(PublishError::BadParams(_))
        ));
    }

    #[test]
    fn decoder_checks_types_and_size() {
        let list = StatusList::new(Layout::W3c, Bits::Two, 8).unwrap();
        let good = build_credential(&list, &params()).unwrap();
        let encode = |c: &BitstringStatusListCredential| serde_json::to_vec(c).unwrap();
        let decoded = decode_bitstring_credential(&encode(&good), DEFAULT_DECODE_LIMIT).unwrap();
        assert_eq!(decoded.credential, good);
        assert_eq!(decoded.list.len(), 65_536);

        let mut wrong_type = good.clone();
        wrong_type.type_.pop();
        let mut wrong_subject = good.clone();
        wrong_subject.credential_subject.type_ = "StatusList2021".into();
        let mut wrong_size = good.clone();
        wrong_size.credential_subject.status_size = Some(3);
        let mut bad_list = good.clone();
        bad_list.credential_subject.encoded_list = "zabc".into();
        for (why, c) in [
            ("type", wrong_type),
            ("subject type", wrong_subject),
            ("statusSize", wrong_size),
            ("encodedList", bad_list),
        ] {
            assert!(
                decode_bitstring_credential(&encode(&c), DEFAULT_DECODE_LIMIT).is_err(),
                "{why}"
            );
        }
        assert!(decode_bitstring_credential(b"[]", DEFAULT_DECODE_LIMIT).is_err());
        assert!(matches!(
            decode_bitstring_credential(&encode(&good), 100),
            Err(PublishError::Codec(_))
        ));
    }
}
