//! Request-claim validation for `/issue`, `/revoke` (and `/suspend`,
//! `/unsuspend`) and `GET /entries`: the pure rules on `iat`, `jti`,
//! `statusExpiry`, `idx`, `uri`, `ref`, `count` and `aud`, the set of JWS
//! algorithms the service may ever accept, and the digests that say whether
//! two requests are "the same" for idempotency.
//!
//! Everything here is a function of the claim values and an injected `now`
//! (unix seconds), so the HTTP-free auth layer and the tests share one source
//! of truth. Signatures and keys live in `auth`.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ids::{ClientId, IssuanceRef, Jti, ListRef};

/// How far in the future an `iat` may lie (clock skew between the issuer and
/// this service), in seconds.
pub const MAX_IAT_SKEW_SECS: u64 = 60;

/// The longest a `statusExpiry` may lie ahead of `now`: one year of 365 days.
/// CRS says "no more than 1 year from now"; 365 days is the conservative
/// reading (a leap year's extra day is not granted).
pub const MAX_STATUS_EXPIRY_SECS: u64 = 365 * 24 * 60 * 60;

/// The largest `idx` accepted as a JSON float (2^53, the largest integer a
/// JSON number written by a JavaScript issuer represents exactly).
const MAX_EXACT_FLOAT_INT: f64 = 9_007_199_254_740_992.0;

/// Which claim was missing or invalid. Each variant has exactly one CRS text,
/// its `Display`; the HTTP layer's one error table gives it a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// No `iat`.
    #[error("No iat in Payload")]
    MissingIat,
    /// `iat` not a number, too far in the future or older than the
    /// idempotency window.
    #[error("Invalid iat in Payload")]
    InvalidIat,
    /// No `jti`.
    #[error("No jti in Payload")]
    MissingJti,
    /// `jti` not a lowercase hyphenated UUID.
    #[error("Invalid jti in Payload")]
    InvalidJti,
    /// No `statusExpiry`.
    #[error("No Status Expiry in Payload")]
    MissingStatusExpiry,
    /// `statusExpiry` not a number, not in the future, or more than a year
    /// ahead.
    #[error(
        "Status Expiry in Payload must be a non negative number and represent a future expiry date no more than 1 year from now"
    )]
    InvalidStatusExpiry,
    /// No `idx`.
    #[error("No Index in Payload")]
    MissingIdx,
    /// `idx` not a non-negative integer.
    #[error("Index must be a valid non-negative integer")]
    InvalidIdx,
    /// No `uri`, or one that is not a string.
    #[error("No valid URI in Payload")]
    MissingUri,
    /// A `uri` string that is not a list URI of this service.
    #[error("Invalid URI format in payload")]
    InvalidUri,
    /// An `aud` that does not name this service (RFC 8725 §3.9: a token
    /// meant for another recipient must not be accepted here).
    #[error("Invalid Audience in Payload")]
    InvalidAud,
    /// No `aud` where one is required (`GET /entries`: a listing JWT must
    /// be addressed to this service).
    #[error("No aud in Payload: it must be the service's public base URL")]
    MissingAud,
    /// A `ref` that is not a string of 1 to 128 printable ASCII characters.
    #[error("Invalid ref in Payload: it must be a string of 1 to 128 printable ASCII characters")]
    InvalidRef,
    /// A `count` that is not a whole number from 1 to `max`.
    #[error("Invalid count in Payload: it must be a whole number from 1 to {max}")]
    InvalidCount {
        /// The largest count accepted (`lists.max_batch`).
        max: u32,
    },
    /// A status change naming its target twice: by `ref` and by `idx` or
    /// `uri`.
    #[error("Payload must name either a ref, or an idx and a uri, not both")]
    RefWithIndex,
}

/// A JWS algorithm this service can accept. `none` and every HMAC algorithm
/// are deliberately absent: a type that cannot name them cannot allow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// ECDSA P-256 with SHA-256 (the CRS default).
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PSS with SHA-256 (RSA keys of at least 2048 bits).
    Ps256,
}

impl SigAlg {
    /// Every algorithm the service can accept.
    pub const ALL: [SigAlg; 4] = [SigAlg::Es256, SigAlg::Es384, SigAlg::EdDsa, SigAlg::Ps256];

    /// Reads a JOSE `alg` value; `None` for anything outside the safe set
    /// (`none`, `HS256`, `RS256`, unknown names, wrong case).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(SigAlg::Es256),
            "ES384" => Some(SigAlg::Es384),
            "EdDSA" => Some(SigAlg::EdDsa),
            "PS256" => Some(SigAlg::Ps256),
            _ => None,
        }
    }

    /// The JOSE name.
    pub const fn name(self) -> &'static str {
        match self {
            SigAlg::Es256 => "ES256",
            SigAlg::Es384 => "ES384",
            SigAlg::EdDsa => "EdDSA",
            SigAlg::Ps256 => "PS256",
        }
    }
}

/// Reads a NumericDate claim (`iat`, `statusExpiry`): a JSON number,
/// non-negative and finite. Fractions are allowed (RFC 7519 NumericDate) and
/// truncated to whole seconds; strings are refused.
fn numeric_date(v: &Value) -> Option<u64> {
    let Value::Number(n) = v else { return None };
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    if f.is_finite() && (0.0..MAX_EXACT_FLOAT_INT).contains(&f) {
        // In range and finite, so the cast is exact up to truncation.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(f.trunc() as u64)
    } else {
        None
    }
}

/// Checks `iat`: a number, at most [`MAX_IAT_SKEW_SECS`] ahead of `now`, and
/// not older than `window_secs` (the idempotency window), so that a replayed
/// request can never outlive its idempotency record and allocate twice.
///
/// # Errors
/// [`ClaimError::MissingIat`] when absent (or `null`),
/// [`ClaimError::InvalidIat`] otherwise.
pub fn check_iat(v: Option<&Value>, now: u64, window_secs: u64) -> Result<u64, ClaimError> {
    let v = present(v).ok_or(ClaimError::MissingIat)?;
    let iat = numeric_date(v).ok_or(ClaimError::InvalidIat)?;
    if iat > now.saturating_add(MAX_IAT_SKEW_SECS) || iat < now.saturating_sub(window_secs) {
        return Err(ClaimError::InvalidIat);
    }
    Ok(iat)
}

/// Checks `jti`: a lowercase hyphenated UUID (any version).
///
/// # Errors
/// [`ClaimError::MissingJti`] when absent, [`ClaimError::InvalidJti`] for a
/// non-string or a string that is not a lowercase UUID.
pub fn check_jti(v: Option<&Value>) -> Result<Jti, ClaimError> {
    let v = present(v).ok_or(ClaimError::MissingJti)?;
    let s = v.as_str().ok_or(ClaimError::InvalidJti)?;
    Jti::parse(s).map_err(|_| ClaimError::InvalidJti)
}

pub use super::ids::is_lowercase_uuid;

/// Checks `statusExpiry`: a number strictly after `now` and at most
/// [`MAX_STATUS_EXPIRY_SECS`] after it.
///
/// # Errors
/// [`ClaimError::MissingStatusExpiry`] when absent,
/// [`ClaimError::InvalidStatusExpiry`] otherwise.
pub fn check_status_expiry(v: Option<&Value>, now: u64) -> Result<u64, ClaimError> {
    let v = present(v).ok_or(ClaimError::MissingStatusExpiry)?;
    let exp = numeric_date(v).ok_or(ClaimError::InvalidStatusExpiry)?;
    if exp <= now || exp > now.saturating_add(MAX_STATUS_EXPIRY_SECS) {
        return Err(ClaimError::InvalidStatusExpiry);
    }
    Ok(exp)
}

/// A JSON whole number: an unsigned integer, or a float with no fractional
/// part (`3.0`, as some JavaScript serialisers write) up to 2^53.
fn whole_number(v: &Value) -> Option<u64> {
    let Value::Number(n) = v else { return None };
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=MAX_EXACT_FLOAT_INT).contains(&f) =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(f as u64)
        }
        _ => None,
    }
}

/// Checks `idx`: a non-negative integer. A JSON float with no fractional part
/// (`3.0`, as some JavaScript serialisers write) is accepted up to 2^53.
///
/// # Errors
/// [`ClaimError::MissingIdx`] when absent, [`ClaimError::InvalidIdx`]
/// otherwise.
pub fn check_idx(v: Option<&Value>) -> Result<u64, ClaimError> {
    let v = present(v).ok_or(ClaimError::MissingIdx)?;
    whole_number(v).ok_or(ClaimError::InvalidIdx)
}

/// Checks `ref`, which is optional: `None` when absent (or `null`), else a
/// string that is an [`IssuanceRef`].
///
/// # Errors
/// [`ClaimError::InvalidRef`] for a non-string or a string that is not a
/// ref.
pub fn check_ref(v: Option<&Value>) -> Result<Option<IssuanceRef>, ClaimError> {
    let Some(v) = present(v) else {
        return Ok(None);
    };
    let s = v.as_str().ok_or(ClaimError::InvalidRef)?;
    IssuanceRef::parse(s)
        .map(Some)
        .map_err(|_| ClaimError::InvalidRef)
}

/// Checks `count`, which is optional: `None` when absent (or `null`), else
/// a whole number from 1 to `max` (floats with no fractional part accepted,
/// as for `idx`).
///
/// # Errors
/// [`ClaimError::InvalidCount`] (saying `max`) otherwise.
pub fn check_count(v: Option<&Value>, max: u32) -> Result<Option<u32>, ClaimError> {
    let Some(v) = present(v) else {
        return Ok(None);
    };
    whole_number(v)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=max).contains(n))
        .map(Some)
        .ok_or(ClaimError::InvalidCount { max })
}

/// Checks `uri`: a string naming a list of this service, `<base>/t/<id>` or
/// `<base>/b/<id>`.
///
/// # Errors
/// [`ClaimError::MissingUri`] when absent or not a string (CRS: "No valid
/// URI"), [`ClaimError::InvalidUri`] for any other string.
pub fn check_uri(v: Option<&Value>, public_base_url: &str) -> Result<ListRef, ClaimError> {
    let s = present(v)
        .and_then(Value::as_str)
        .ok_or(ClaimError::MissingUri)?;
    ListRef::parse_uri(public_base_url, s).map_err(|_| ClaimError::InvalidUri)
}

/// Checks `aud`, when present, against the service's public base URL
/// (RFC 7519 §4.1.3, RFC 8725 §3.9): a string equal to it, or an array with
/// such a string. A trailing `/` is ignored on either side. Absent (or
/// `null`) is accepted: CRS clients send none.
///
/// # Errors
/// [`ClaimError::InvalidAud`] for any other value.
pub fn check_aud(v: Option<&Value>, public_base_url: &str) -> Result<(), ClaimError> {
    let Some(v) = present(v) else {
        return Ok(());
    };
    let base = public_base_url.trim_end_matches('/');
    let names_us = |v: &Value| v.as_str().is_some_and(|s| s.trim_end_matches('/') == base);
    let ok = match v {
        Value::Array(items) => items.iter().any(names_us),
        other => names_us(other),
    };
    if ok {
        Ok(())
    } else {
        Err(ClaimError::InvalidAud)
    }
}

/// Checks a required `aud` (a listing JWT): present, and naming this
/// service as [`check_aud`] says.
///
/// # Errors
/// [`ClaimError::MissingAud`] when absent (or `null`),
/// [`ClaimError::InvalidAud`] for any value not naming the service.
pub fn check_aud_required(v: Option<&Value>, public_base_url: &str) -> Result<(), ClaimError> {
    present(v).ok_or(ClaimError::MissingAud)?;
    check_aud(v, public_base_url)
}

/// Until when (exclusive, unix seconds) the idempotency record of a request
/// with this `iat` must count: the last moment the `iat` check accepts the
/// request again is `iat + window` by the service's clock ([`check_iat`]),
/// plus the allowed skew as a margin. One clock, the service's, decides both.
pub fn record_until(iat: u64, window_secs: u64) -> u64 {
    iat.saturating_add(window_secs)
        .saturating_add(MAX_IAT_SKEW_SECS)
        .saturating_add(1)
}

/// A JSON `null` counts as absent: issuers that serialise optional fields as
/// `null` mean "not given".
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

/// The operation a status-change request asks for; part of its idempotency
/// digest so that a revoke and a suspend with the same `jti` differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeOp {
    /// `/revoke`.
    Revoke,
    /// `/suspend`.
    Suspend,
    /// `/unsuspend`.
    Unsuspend,
}

impl ChangeOp {
    const fn tag(self) -> &'static [u8] {
        match self {
            ChangeOp::Revoke => b"revoke",
            ChangeOp::Suspend => b"suspend",
            ChangeOp::Unsuspend => b"unsuspend",
        }
    }
}

/// Feeds one length-prefixed field, so that no two field lists share an
/// encoding.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// The idempotency digest of an `/issue` request: SHA-256 over `iss`, `jti`
/// and `statusExpiry`.
///
/// `iat` is left out on purpose: a client that retries after a timeout
/// usually re-signs the request with a fresh `iat`, and that retry must get
/// the original answer rather than "invalid changes". `iat` is still bounded
/// by the idempotency window, so a replay cannot outlive the record.
pub fn issue_digest(client: &ClientId, jti: &Jti, status_expiry: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, b"statuslist/issue/v1");
    field(&mut h, client.as_str().as_bytes());
    field(&mut h, jti.as_str().as_bytes());
    field(&mut h, &status_expiry.to_be_bytes());
    h.finalize().into()
}

/// The idempotency digest of an `/issue` request that carries `ref` or
/// `count` (or both): SHA-256 over `iss`, `jti`, `statusExpiry`, `count`
/// (1 when absent) and `ref`. A request with neither keeps the CRS digest,
/// [`issue_digest`], byte for byte; the two never collide (another tag
/// starts the input). `iat` is left out for the reason given there.
pub fn issue_digest_v2(
    client: &ClientId,
    jti: &Jti,
    status_expiry: u64,
    count: u32,
    issuance_ref: Option<&IssuanceRef>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, b"statuslist/issue/v2");
    field(&mut h, client.as_str().as_bytes());
    field(&mut h, jti.as_str().as_bytes());
    field(&mut h, &status_expiry.to_be_bytes());
    field(&mut h, &count.to_be_bytes());
    match issuance_ref {
        // A presence byte first, so that no ref and an empty text (which
        // `IssuanceRef` never is anyway) cannot meet.
        None => field(&mut h, b"-"),
        Some(r) => {
            field(&mut h, b"+");
            field(&mut h, r.as_str().as_bytes());
        }
    }
    h.finalize().into()
}

/// The idempotency digest of a status change (`/revoke`, `/suspend`,
/// `/unsuspend`): SHA-256 over the operation, `iss`, `jti`, `idx` and the
/// list (format and id, so the spelling of the base URL does not matter).
/// `iat` is left out for the reason given at [`issue_digest`].
pub fn change_digest(
    op: ChangeOp,
    client: &ClientId,
    jti: &Jti,
    idx: u64,
    list: &ListRef,
) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, b"statuslist/change/v1");
    field(&mut h, op.tag());
    field(&mut h, client.as_str().as_bytes());
    field(&mut h, jti.as_str().as_bytes());
    field(&mut h, &idx.to_be_bytes());
    field(&mut h, list.format.path_segment().as_bytes());
    field(&mut h, list.id.as_str().as_bytes());
    h.finalize().into()
}

/// The idempotency digest of a status change by `ref`: SHA-256 over the
/// operation, `iss`, `jti` and the ref. Another tag than
/// [`change_digest`]'s, so a change by ref and one by index never share a
/// digest. `iat` is left out for the reason given at [`issue_digest`].
pub fn ref_change_digest(
    op: ChangeOp,
    client: &ClientId,
    jti: &Jti,
    issuance_ref: &IssuanceRef,
) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, b"statuslist/change-ref/v1");
    field(&mut h, op.tag());
    field(&mut h, client.as_str().as_bytes());
    field(&mut h, jti.as_str().as_bytes());
    field(&mut h, issuance_ref.as_str().as_bytes());
    h.finalize().into()
}

/// The digest recorded with a listing JWT's (client, jti) claim: SHA-256
/// over `iss` and `jti`. A listing JWT is single-use whatever it asks, so
/// the query is not part of it.
pub fn listing_digest(client: &ClientId, jti: &Jti) -> [u8; 32] {
    let mut h = Sha256::new();
    field(&mut h, b"statuslist/entries/v1");
    field(&mut h, client.as_str().as_bytes());
    field(&mut h, jti.as_str().as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_758_038_912;

    #[test]
    fn iat_rules() {
        let w = 3600;
        assert_eq!(check_iat(Some(&json!(NOW)), NOW, w), Ok(NOW));
        assert_eq!(check_iat(Some(&json!(NOW + 60)), NOW, w), Ok(NOW + 60));
        assert_eq!(check_iat(Some(&json!(NOW - 3600)), NOW, w), Ok(NOW - 3600));
        assert_eq!(
            check_iat(Some(&json!(1.5e9 + 0.7)), 1_500_000_000, w),
            Ok(1_500_000_000)
        );
        assert_eq!(check_iat(None, NOW, w), Err(ClaimError::MissingIat));
        assert_eq!(
            check_iat(Some(&Value::Null), NOW, w),
            Err(ClaimError::MissingIat)
        );
        for bad in [
            json!(NOW + 61),
            json!(NOW - 3601),
            json!(NOW.to_string()),
            json!(-1),
            json!(true),
            json!([NOW]),
            json!(1e300),
        ] {
            assert_eq!(
                check_iat(Some(&bad), NOW, w),
                Err(ClaimError::InvalidIat),
                "{bad}"
            );
        }
    }

    #[test]
    fn jti_rules() {
        let ok = "bcea4e51-6eca-4547-8d18-4b971b72c146";
        assert_eq!(
            check_jti(Some(&json!(ok))).map(|j| j.to_string()),
            Ok(ok.to_owned())
        );
        assert_eq!(check_jti(None), Err(ClaimError::MissingJti));
        for bad in [
            json!("BCEA4E51-6ECA-4547-8D18-4B971B72C146"),
            json!("bcea4e516eca45478d184b971b72c146"),
            json!("{bcea4e51-6eca-4547-8d18-4b971b72c146}"),
            json!("bcea4e51-6eca-4547-8d18-4b971b72c14g"),
            json!(""),
            json!(12),
        ] {
            assert_eq!(check_jti(Some(&bad)), Err(ClaimError::InvalidJti), "{bad}");
        }
    }

    #[test]
    fn status_expiry_rules() {
        let max = NOW + MAX_STATUS_EXPIRY_SECS;
        assert_eq!(check_status_expiry(Some(&json!(NOW + 1)), NOW), Ok(NOW + 1));
        assert_eq!(check_status_expiry(Some(&json!(max)), NOW), Ok(max));
        assert_eq!(
            check_status_expiry(None, NOW),
            Err(ClaimError::MissingStatusExpiry)
        );
        for bad in [
            json!(NOW),
            json!(max + 1),
            json!(-5),
            json!("1789574909"),
            json!(0),
        ] {
            assert_eq!(
                check_status_expiry(Some(&bad), NOW),
                Err(ClaimError::InvalidStatusExpiry),
                "{bad}"
            );
        }
    }

    #[test]
    fn idx_rules() {
        assert_eq!(check_idx(Some(&json!(0))), Ok(0));
        assert_eq!(check_idx(Some(&json!(3.0))), Ok(3));
        assert_eq!(check_idx(Some(&json!(u64::MAX))), Ok(u64::MAX));
        assert_eq!(check_idx(None), Err(ClaimError::MissingIdx));
        for bad in [json!(-1), json!(1.5), json!("3"), json!(1e20), json!(false)] {
            assert_eq!(check_idx(Some(&bad)), Err(ClaimError::InvalidIdx), "{bad}");
        }
    }

    #[test]
    fn uri_rules() {
        let base = "https://crs.example";
        let r = check_uri(Some(&json!("https://crs.example/b/A671FED3E9AD")), base).unwrap();
        assert_eq!(r.uri(base), "https://crs.example/b/A671FED3E9AD");
        assert_eq!(check_uri(None, base), Err(ClaimError::MissingUri));
        assert_eq!(
            check_uri(Some(&json!(5)), base),
            Err(ClaimError::MissingUri)
        );
        assert_eq!(
            check_uri(Some(&json!("https://evil.example/b/A671FED3E9AD")), base),
            Err(ClaimError::InvalidUri)
        );
    }

    #[test]
    fn aud_rules() {
        let base = "https://crs.example";
        for ok in [
            None,
            Some(Value::Null),
            Some(json!("https://crs.example")),
            Some(json!("https://crs.example/")),
            Some(json!(["https://other.example", "https://crs.example"])),
        ] {
            assert_eq!(check_aud(ok.as_ref(), base), Ok(()), "{ok:?}");
        }
        for bad in [
            json!("https://other.example"),
            json!("https://crs.example/t"),
            json!([]),
            json!(["https://other.example"]),
            json!(5),
            json!({"aud": "https://crs.example"}),
        ] {
            assert_eq!(
                check_aud(Some(&bad), base),
                Err(ClaimError::InvalidAud),
                "{bad}"
            );
        }
    }

    #[test]
    fn required_aud() {
        let base = "https://crs.example";
        assert_eq!(
            check_aud_required(Some(&json!("https://crs.example/")), base),
            Ok(())
        );
        assert_eq!(check_aud_required(None, base), Err(ClaimError::MissingAud));
        assert_eq!(
            check_aud_required(Some(&Value::Null), base),
            Err(ClaimError::MissingAud)
        );
        assert_eq!(
            check_aud_required(Some(&json!("https://other.example")), base),
            Err(ClaimError::InvalidAud)
        );
    }

    #[test]
    fn ref_rules() {
        assert_eq!(check_ref(None), Ok(None));
        assert_eq!(check_ref(Some(&Value::Null)), Ok(None));
        assert_eq!(
            check_ref(Some(&json!("order 42")))
                .unwrap()
                .unwrap()
                .as_str(),
            "order 42"
        );
        for bad in [
            json!(""),
            json!("x".repeat(129)),
            json!("caf\u{e9}"),
            json!("a\tb"),
            json!(42),
            json!(["a"]),
            json!(true),
        ] {
            assert_eq!(check_ref(Some(&bad)), Err(ClaimError::InvalidRef), "{bad}");
        }
    }

    #[test]
    fn count_rules() {
        assert_eq!(check_count(None, 100), Ok(None));
        assert_eq!(check_count(Some(&Value::Null), 100), Ok(None));
        assert_eq!(check_count(Some(&json!(1)), 100), Ok(Some(1)));
        assert_eq!(check_count(Some(&json!(100)), 100), Ok(Some(100)));
        assert_eq!(check_count(Some(&json!(7.0)), 100), Ok(Some(7)));
        for bad in [
            json!(0),
            json!(101),
            json!(-1),
            json!(2.5),
            json!("3"),
            json!(1e20),
            json!(u64::MAX),
            json!(false),
        ] {
            assert_eq!(
                check_count(Some(&bad), 100),
                Err(ClaimError::InvalidCount { max: 100 }),
                "{bad}"
            );
        }
        assert_eq!(
            ClaimError::InvalidCount { max: 7 }.to_string(),
            "Invalid count in Payload: it must be a whole number from 1 to 7"
        );
    }

    #[test]
    fn records_outlive_every_accepted_replay() {
        let w = 3600;
        for iat in [NOW - w, NOW, NOW + MAX_IAT_SKEW_SECS] {
            let until = record_until(iat, w);
            // The last `now` at which this iat still passes the check.
            let last = iat + w;
            assert!(check_iat(Some(&json!(iat)), last, w).is_ok());
            assert!(check_iat(Some(&json!(iat)), last + 1, w).is_err());
            assert!(until > last, "record must count at {last}");
        }
    }

    #[test]
    fn algorithms() {
        for a in SigAlg::ALL {
            assert_eq!(SigAlg::parse(a.name()), Some(a));
        }
        for bad in [
            "none", "None", "HS256", "HS384", "HS512", "RS256", "es256", "",
        ] {
            assert_eq!(SigAlg::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn digests_separate_what_differs_and_ignore_iat() {
        let a = ClientId::parse("a").unwrap();
        let b = ClientId::parse("b").unwrap();
        let j = &Jti::parse("bcea4e51-6eca-4547-8d18-4b971b72c146").unwrap();
        assert_eq!(issue_digest(&a, j, 10), issue_digest(&a, j, 10));
        assert_ne!(issue_digest(&a, j, 10), issue_digest(&a, j, 11));
        assert_ne!(issue_digest(&a, j, 10), issue_digest(&b, j, 10));
        let l = ListRef::parse_uri("https://x", "https://x/t/A671FED3E9AD").unwrap();
        let l2 = ListRef::parse_uri("https://x", "https://x/b/A671FED3E9AD").unwrap();
        let d = change_digest(ChangeOp::Revoke, &a, j, 3, &l);
        assert_eq!(d, change_digest(ChangeOp::Revoke, &a, j, 3, &l));
        assert_ne!(d, change_digest(ChangeOp::Suspend, &a, j, 3, &l));
        assert_ne!(d, change_digest(ChangeOp::Revoke, &a, j, 4, &l));
        assert_ne!(d, change_digest(ChangeOp::Revoke, &a, j, 3, &l2));
    }

    #[test]
    fn the_v2_digests_separate_ref_and_count_from_the_crs_one() {
        let a = ClientId::parse("a").unwrap();
        let j = &Jti::parse("bcea4e51-6eca-4547-8d18-4b971b72c146").unwrap();
        let r = IssuanceRef::parse("r").unwrap();
        let r2 = IssuanceRef::parse("r2").unwrap();
        let v2 = issue_digest_v2(&a, j, 10, 1, None);
        assert_ne!(
            v2,
            issue_digest(&a, j, 10),
            "count 1 is not the CRS request"
        );
        assert_eq!(v2, issue_digest_v2(&a, j, 10, 1, None));
        assert_ne!(v2, issue_digest_v2(&a, j, 10, 2, None));
        assert_ne!(v2, issue_digest_v2(&a, j, 11, 1, None));
        assert_ne!(v2, issue_digest_v2(&a, j, 10, 1, Some(&r)));
        assert_ne!(
            issue_digest_v2(&a, j, 10, 1, Some(&r)),
            issue_digest_v2(&a, j, 10, 1, Some(&r2))
        );
        let d = ref_change_digest(ChangeOp::Revoke, &a, j, &r);
        assert_eq!(d, ref_change_digest(ChangeOp::Revoke, &a, j, &r));
        assert_ne!(d, ref_change_digest(ChangeOp::Suspend, &a, j, &r));
        assert_ne!(d, ref_change_digest(ChangeOp::Revoke, &a, j, &r2));
        assert_ne!(listing_digest(&a, j), d);
    }
}
