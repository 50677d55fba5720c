//! Compact-JWS parsing for request tokens, done by hand on the bytes as sent.
//!
//! The header is read here, before any JWT library sees it, because
//! libraries refuse a missing or `none` `alg` with their own errors and the
//! CRS texts must win. Each base64url part is decoded exactly once; the
//! signature is left encoded for the verifier.

use serde::Deserialize;
use serde_json::Value;

use super::AuthError;

/// The longest request token accepted, in bytes. A CRS request is a few
/// hundred bytes; anything this long is refused before decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// True when a Content-Type value names `application/jwt` (media type
/// compared case-insensitively, parameters such as `charset` allowed).
pub fn is_jwt_content_type(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/jwt"))
    })
}

/// The token of an `Authorization: Bearer <token>` header value (RFC 6750
/// §2.1): the scheme compared case-insensitively, one or more spaces, then a
/// token of visible ASCII characters; surrounding whitespace tolerated.
///
/// # Errors
/// [`AuthError::MissingBearer`] when there is no header,
/// [`AuthError::MalformedBearer`] for any other scheme, no token, or a
/// token with spaces or non-ASCII bytes.
pub fn bearer_token(value: Option<&[u8]>) -> Result<&[u8], AuthError> {
    let value = value.ok_or(AuthError::MissingBearer)?.trim_ascii();
    let at = value
        .iter()
        .position(|b| *b == b' ')
        .ok_or(AuthError::MalformedBearer)?;
    let (scheme, rest) = value.split_at(at);
    let token = rest.trim_ascii_start();
    if !scheme.eq_ignore_ascii_case(b"Bearer")
        || token.is_empty()
        || !token.iter().all(u8::is_ascii_graphic)
    {
        return Err(AuthError::MalformedBearer);
    }
    Ok(token)
}

/// The header members the checks look at, as sent. Other members (`jku`,
/// `x5u`, `jwk`, `x5c`, ...) are ignored: keys only ever come from the
/// client's registered JWKS.
#[derive(Debug, Deserialize)]
pub struct RawHeader {
    /// `kid`, any JSON value.
    #[serde(default)]
    pub kid: Option<Value>,
    /// `typ`, any JSON value.
    #[serde(default)]
    pub typ: Option<Value>,
    /// `alg`, any JSON value.
    #[serde(default)]
    pub alg: Option<Value>,
    /// `crit`: any critical extension is one this service does not
    /// understand, so its presence refuses the token (RFC 7515 §4.1.11).
    #[serde(default)]
    pub crit: Option<Value>,
}

/// The payload members the checks look at, as sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawClaims {
    /// `iss`.
    #[serde(default)]
    pub iss: Option<Value>,
    /// `iat`.
    #[serde(default)]
    pub iat: Option<Value>,
    /// `jti`.
    #[serde(default)]
    pub jti: Option<Value>,
    /// `statusExpiry`.
    #[serde(default)]
    pub status_expiry: Option<Value>,
    /// `idx`.
    #[serde(default)]
    pub idx: Option<Value>,
    /// `uri`.
    #[serde(default)]
    pub uri: Option<Value>,
    /// `aud`: optional (required of a listing JWT); when present it must
    /// name this service.
    #[serde(default)]
    pub aud: Option<Value>,
    /// `ref`: the issuer's reference of an issuance.
    #[serde(default, rename = "ref")]
    pub issuance_ref: Option<Value>,
    /// `count`: how many entries an `/issue` asks for.
    #[serde(default)]
    pub count: Option<Value>,
}

/// A decoded but not yet verified token. Its `Debug` leaves out the token
/// bytes, which must never reach a log.
pub struct Parsed<'a> {
    /// The header as sent.
    pub header: RawHeader,
    /// The payload as sent.
    pub claims: RawClaims,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature
    /// covers.
    pub signing_input: &'a [u8],
    /// The signature part, still base64url.
    pub signature: &'a str,
}

impl std::fmt::Debug for Parsed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

fn is_b64url(part: &[u8]) -> bool {
    part.iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &[u8]) -> Option<T> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    // serde's derived structs also accept JSON arrays; a JOSE header or a
    // claims set is an object, nothing else.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

/// Splits and decodes a compact JWS. Surrounding ASCII whitespace (a trailing
/// newline from a file) is tolerated.
///
/// # Errors
/// [`AuthError::Decode`] unless `body` is at most [`MAX_TOKEN_BYTES`] of
/// three base64url parts whose first two decode to JSON objects, without a
/// `crit` header.
pub fn parse(body: &[u8]) -> Result<Parsed<'_>, AuthError> {
    let body = body.trim_ascii();
    if body.is_empty() || body.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Decode);
    }
    let mut parts = body.splitn(4, |b| *b == b'.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Decode);
    };
    if h.is_empty() || p.is_empty() || !is_b64url(h) || !is_b64url(p) || !is_b64url(s) {
        return Err(AuthError::Decode);
    }
    let header: RawHeader = decode_json(h).ok_or(AuthError::Decode)?;
    if header.crit.is_some() {
        return Err(AuthError::Decode);
    }
    let claims: RawClaims = decode_json(p).ok_or(AuthError::Decode)?;
    // Every byte is base64url or '.', so both slices are ASCII text.
    let signing_input = body.get(..h.len() + 1 + p.len()).ok_or(AuthError::Decode)?;
    let signature = std::str::from_utf8(s).map_err(|_| AuthError::Decode)?;
    Ok(Parsed {
        header,
        claims,
        signing_input,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for ok in [
            "application/jwt",
            "Application/JWT",
            "application/jwt; charset=utf-8",
            " application/jwt ;x=y",
        ] {
            assert!(is_jwt_content_type(Some(ok)), "{ok}");
        }
        for bad in [
            "",
            "application/json",
            "application/jwt+x",
            "text/plain; application/jwt",
        ] {
            assert!(!is_jwt_content_type(Some(bad)), "{bad}");
        }
        assert!(!is_jwt_content_type(None));
    }

    #[test]
    fn bearer_headers() {
        for (ok, token) in [
            ("Bearer a.b.c", "a.b.c"),
            ("bearer a.b.c", "a.b.c"),
            ("BEARER   a.b.c  ", "a.b.c"),
            (" Bearer x", "x"),
        ] {
            assert_eq!(
                bearer_token(Some(ok.as_bytes())),
                Ok(token.as_bytes()),
                "{ok}"
            );
        }
        assert_eq!(bearer_token(None), Err(AuthError::MissingBearer));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwYXNz",
            "Bearer a b",
            "Bearera.b.c",
            "Token a.b.c",
            "Bearer a.b\u{e9}",
        ] {
            assert_eq!(
                bearer_token(Some(bad.as_bytes())),
                Err(AuthError::MalformedBearer),
                "{bad:?}"
            );
        }
        assert_eq!(
            bearer_token(Some(b"Bearer a.\xff.c")),
            Err(AuthError::MalformedBearer)
        );
    }

    #[test]
    fn refuses_malformed_tokens() {
        let h = "eyJhbGciOiJFUzI1NiJ9"; // {"alg":"ES256"}
        let p = "e30"; // {}
        assert!(parse(format!("{h}.{p}.sig").as_bytes()).is_ok());
        assert!(parse(format!("{h}.{p}.sig\n").as_bytes()).is_ok());
        for bad in [
            String::new(),
            "a.b".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}.s.x"),
            format!("{h}.{p}.s+g"),
            format!("{h}=.{p}.s"),
            format!(".{p}.s"),
            format!("{h}.WzFd.s"), // [1] is not an object
            format!("{h}.bm90IGpzb24.s"),
            format!("eyJjcml0IjpbImV4cCJdfQ.{p}.s"), // {"crit":["exp"]}
            format!("{h}.{p}.{}", "A".repeat(MAX_TOKEN_BYTES)),
        ] {
            assert_eq!(
                parse(bad.as_bytes()).unwrap_err(),
                AuthError::Decode,
                "{bad}"
            );
        }
        assert_eq!(
            parse(&[0xff, 0xfe, b'.', b'.']).unwrap_err(),
            AuthError::Decode
        );
    }
}
