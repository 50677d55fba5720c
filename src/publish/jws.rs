//! Compact JWS with ES256, done directly with p256: signing the list tokens,
//! and splitting or verifying them for verifiers and tests.
//!
//! Signing serializes the header and the payload once each with serde_json
//! and base64url-encodes them straight into the output string; no
//! intermediate `serde_json::Value` is built, since the payload carries the
//! whole compressed list.
//!
//! Verification trusts nothing in the header but `alg`, which must be ES256:
//! the key is the caller's choice, never taken from `jku`, `jwk` or `x5u`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::Serialize;

use super::PublishError;
use super::keys::ServiceKey;

/// The only algorithm this service signs and accepts.
pub const ALG: &str = "ES256";

/// The protected header of the tokens this service signs, in the order
/// `alg`, `kid`, `typ`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// The JWS algorithm; always ES256 when signed here.
    pub alg: String,
    /// The signing key's `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The media type of the token, e.g. `statuslist+jwt` or `vc+jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The signing key's X.509 certificate chain (standard base64 DER, leaf
    /// first), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
}

/// The header this service puts on a token of type `typ` signed by `key`.
#[derive(serde::Serialize)]
struct HeaderRef<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    x5c: Option<&'a [String]>,
}

/// Signs `payload` as a compact JWS with header
/// `{"alg":"ES256","kid":<key's kid>,"typ":<typ>}`, plus `"x5c"` when the
/// key has a certificate chain ([`ServiceKey::with_certificate_chain`]).
///
/// # Errors
/// [`PublishError::BadJson`] if the payload cannot be serialized (a map with
/// non-string keys, say); the types of this layer never do that.
pub fn sign<P: Serialize>(
    typ: &str,
    payload: &P,
    key: &ServiceKey,
) -> Result<String, PublishError> {
    let header = serde_json::to_vec(&HeaderRef {
        alg: ALG,
        kid: key.kid(),
        typ,
        x5c: key.x5c(),
    })
    .map_err(|e| PublishError::json("header", &e))?;
    let payload = serde_json::to_vec(payload).map_err(|e| PublishError::json("payload", &e))?;
    // Every part's final size is known: reserve once, encode in place.
    let mut out =
        String::with_capacity(b64_len(header.len()) + b64_len(payload.len()) + b64_len(64) + 2);
    URL_SAFE_NO_PAD.encode_string(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let signature = key.sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    Ok(out)
}

fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// A JWS split into its decoded parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The parsed protected header.
    pub header: Header,
    /// The payload bytes (JSON for the tokens of this service).
    pub payload: Vec<u8>,
}

/// Splits a compact JWS and decodes its header and payload WITHOUT checking
/// the signature: for tools that show a token, and for tests.
///
/// # Errors
/// [`PublishError::MalformedJws`] unless the token is three base64url parts,
/// [`PublishError::BadJson`] when the header is not a JSON object with `alg`.
pub fn decode_unverified(token: &str) -> Result<Parts, PublishError> {
    split(token).map(|(_, parts, _)| parts)
}

/// Verifies an ES256 compact JWS with `key` and returns its parts.
///
/// # Errors
/// As [`decode_unverified`]; [`PublishError::UnsupportedAlg`] when the header's
/// `alg` is not ES256; [`PublishError::BadSignature`] when the signature is not
/// 64 bytes or does not verify.
pub fn verify(token: &str, key: &VerifyingKey) -> Result<Parts, PublishError> {
    let (signing_input, parts, signature) = split(token)?;
    if parts.header.alg != ALG {
        return Err(PublishError::UnsupportedAlg);
    }
    let signature = Signature::from_slice(&signature).map_err(|_| PublishError::BadSignature)?;
    key.verify(signing_input.as_bytes(), &signature)
        .map_err(|_| PublishError::BadSignature)?;
    Ok(parts)
}

/// Returns (signing input, decoded header and payload, raw signature).
fn split(token: &str) -> Result<(&str, Parts, Vec<u8>), PublishError> {
    let (signing_input, sig_b64) = token
        .rsplit_once('.')
        .ok_or(PublishError::MalformedJws("expected three parts"))?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(PublishError::MalformedJws("expected three parts"))?;
    if payload_b64.contains('.') {
        return Err(PublishError::MalformedJws("expected three parts"));
    }
    let decode = |part: &str, what: &'static str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| PublishError::MalformedJws(what))
    };
    let header = decode(header_b64, "header is not base64url")?;
    let payload = decode(payload_b64, "payload is not base64url")?;
    let signature = decode(sig_b64, "signature is not base64url")?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|e| PublishError::json("header", &e))?;
    Ok((signing_input, Parts { header, payload }, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects_tampering() {
        let key = ServiceKey::generate();
        let token = sign("x+jwt", &serde_json::json!({"a": 1}), &key).unwrap();
        let parts = verify(&token, key.verifying_key()).unwrap();
        assert_eq!(parts.header.kid.as_deref(), Some(key.kid()));
        assert_eq!(parts.header.typ.as_deref(), Some("x+jwt"));
        assert_eq!(parts.payload, br#"{"a":1}"#);
        assert_eq!(decode_unverified(&token).unwrap(), parts);

        let other = ServiceKey::generate();
        assert!(matches!(
            verify(&token, other.verifying_key()),
            Err(PublishError::BadSignature)
        ));
        // A different payload under the same signature.
        let (h, rest) = token.split_once('.').unwrap();
        let (_, s) = rest.split_once('.').unwrap();
        let forged = format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(br#"{"a":2}"#));
        assert!(matches!(
            verify(&forged, key.verifying_key()),
            Err(PublishError::BadSignature)
        ));
    }

    #[test]
    fn malformed_tokens_are_errors() {
        let key = ServiceKey::generate();
        let good = sign("x", &1, &key).unwrap();
        let (h, rest) = good.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("one part", "abc".into()),
            (
                "two parts",
                format!("{h}.{}", rest.split_once('.').unwrap().0),
            ),
            ("four parts", format!("{good}.x")),
            (
                "bad base64",
                format!("{h}.!!.{}", rest.split_once('.').unwrap().1),
            ),
            (
                "header not json",
                format!("{}.{rest}", URL_SAFE_NO_PAD.encode(b"nope")),
            ),
            ("alg none", format!("{none_header}.{rest}")),
            (
                "short signature",
                format!("{h}.{}.AAAA", rest.split_once('.').unwrap().0),
            ),
        ];
        for (why, token) in cases {
            assert!(verify(&token, key.verifying_key()).is_err(), "{why}");
        }
        assert!(matches!(
            verify(&format!("{none_header}.{rest}"), key.verifying_key()),
            Err(PublishError::UnsupportedAlg)
        ));
    }
}
