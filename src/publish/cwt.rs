//! The IETF Token Status List as a CWT (`application/statuslist+cwt`):
//! building and signing it, verifying it, and reading its claims back.
//!
//! The draft (§5.2) makes it a COSE_Sign1 with CBOR tag 18 (not the CWT tag
//! 61) whose protected header holds `alg` (ES256, -7) and `typ` (label 16,
//! RFC 9596) = `application/statuslist+cwt`; we also put our `kid` (the
//! bytes of the JWK thumbprint text, the same key as the JWT's) in the
//! protected header, so that it is covered by the signature. The claims are
//! `1` iss, `2` sub, `6` iat, `4` exp, `65534` ttl and `65533` status_list =
//! `{"bits": n, "lst": <zlib bytes>, ? "aggregation_uri": text}`: the same
//! values as the JWT's, with `lst` as raw bytes instead of base64url.
//!
//! The signature is ES256 over the COSE `Sig_structure` (RFC 9052 §4.4),
//! the raw 64-byte `r || s`, made by the same [`ServiceKey`] as the JWT's.
//!
//! Reading accepts what the draft allows beyond what we write (the draft's
//! own example puts `kid` in the unprotected header and has no `iss`), so
//! that the one reader checks both our lists and the draft's example.

use coset::cbor::value::{Integer, Value};
use coset::iana::EnumI64;
use coset::{
    CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, Label, TaggedCborSerializable,
    iana,
};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};

use crate::domain::codec::unzlib;
use crate::domain::{Bits, CompressedList, Layout, StatusList};

use super::PublishError;
use super::keys::ServiceKey;
use super::params::ListParams;

/// The media type a Token Status List CWT is served with, and its `typ`.
pub const MEDIA_TYPE: &str = "application/statuslist+cwt";

/// The COSE header label of `typ` (RFC 9596).
const TYP_LABEL: i64 = 16;

/// Claim keys (RFC 8392 §4, draft §5.2).
const ISS: i64 = 1;
const SUB: i64 = 2;
const EXP: i64 = 4;
const IAT: i64 = 6;
const TTL: i64 = 65534;
const STATUS_LIST: i64 = 65533;

/// The claims of a Token Status List CWT, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CwtClaims {
    /// The issuer (`1`), when present.
    pub iss: Option<String>,
    /// The list URI (`2`).
    pub sub: String,
    /// Issued at (`6`, Unix seconds).
    pub iat: u64,
    /// Expiry (`4`, Unix seconds), when present.
    pub exp: Option<u64>,
    /// How long a verifier may cache the list (`65534`, seconds), when
    /// present.
    pub ttl: Option<u64>,
    /// Bits per entry (`status_list.bits`).
    pub bits: Bits,
    /// `status_list.aggregation_uri`, when present.
    pub aggregation_uri: Option<String>,
}

/// A Token Status List CWT's claims, with the list decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedCwtList {
    /// The claims.
    pub claims: CwtClaims,
    /// The decoded list: IETF layout, every whole entry the bytes hold.
    pub list: StatusList,
}

/// A COSE_Sign1 split into what a verifier looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CwtParts {
    /// The protected `alg`, as its COSE number (ES256 is -7).
    pub alg: Option<i64>,
    /// The `kid`, from the protected header or else the unprotected one.
    pub kid: Option<Vec<u8>>,
    /// The protected `typ` (label 16), when it is text.
    pub typ: Option<String>,
    /// The payload: the CBOR claims set.
    pub payload: Vec<u8>,
}

/// Builds and signs the Token Status List CWT of `list`, with its bytes
/// already compressed as `compressed` (one of another length is ignored and
/// the list compressed anew), publishing `aggregation_uri` when given.
///
/// # Errors
/// [`PublishError::WrongLayout`] unless the list has the IETF layout;
/// [`PublishError::BadParams`] when `params` fail [`ListParams::check`] or
/// the CBOR cannot be written.
#[tracing::instrument(level = "debug", skip_all, fields(list = params.uri, entries = list.len()))]
pub fn sign_token_cwt(
    list: &StatusList,
    compressed: &CompressedList,
    params: &ListParams<'_>,
    aggregation_uri: Option<&str>,
    key: &ServiceKey,
) -> Result<Vec<u8>, PublishError> {
    if list.layout() != Layout::Ietf {
        return Err(PublishError::WrongLayout {
            format: "Token Status List",
            expected: Layout::Ietf,
            got: list.layout(),
        });
    }
    params.check()?;
    let zlib = if compressed.raw_len() == list.as_bytes().len() {
        compressed.zlib()
    } else {
        CompressedList::new(list.as_bytes()).zlib()
    };
    let int = |n: i64| Value::Integer(Integer::from(n));
    let uint = |n: u64| Value::Integer(Integer::from(n));
    let text = |t: &str| Value::Text(t.to_owned());
    let mut status_list = vec![
        (text("bits"), uint(u64::from(list.bits().get()))),
        (text("lst"), Value::Bytes(zlib)),
    ];
    if let Some(uri) = aggregation_uri {
        status_list.push((text("aggregation_uri"), text(uri)));
    }
    let claims = Value::Map(vec![
        (int(ISS), text(params.iss)),
        (int(SUB), text(params.uri)),
        (int(IAT), uint(params.iat)),
        (int(EXP), uint(params.exp)),
        (int(TTL), uint(params.ttl)),
        (int(STATUS_LIST), Value::Map(status_list)),
    ]);
    let payload = claims
        .to_vec()
        .map_err(|_| PublishError::BadParams("the CWT claims cannot be written as CBOR"))?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(key.kid().as_bytes().to_vec())
        .value(TYP_LABEL, text(MEDIA_TYPE))
        .build();
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |tbs| key.sign(tbs).to_vec())
        .build()
        .to_tagged_vec()
        .map_err(|_| PublishError::BadParams("the CWT cannot be written as CBOR"))
}

/// Splits a tagged COSE_Sign1 WITHOUT checking the signature: for tools
/// that show a list, and for tests.
///
/// # Errors
/// [`PublishError::MalformedCwt`] unless the bytes are one COSE_Sign1 with
/// tag 18 and a payload.
pub fn decode_unverified(cwt: &[u8]) -> Result<CwtParts, PublishError> {
    parse(cwt).map(|(_, parts)| parts)
}

/// Verifies an ES256 Token Status List CWT with `key` and returns its parts.
///
/// # Errors
/// As [`decode_unverified`]; [`PublishError::UnsupportedAlg`] unless the
/// protected `alg` is ES256; [`PublishError::BadSignature`] when the
/// signature is not 64 bytes or does not verify.
pub fn verify(cwt: &[u8], key: &VerifyingKey) -> Result<CwtParts, PublishError> {
    let (sign1, parts) = parse(cwt)?;
    if parts.alg != Some(iana::Algorithm::ES256.to_i64()) {
        return Err(PublishError::UnsupportedAlg);
    }
    sign1.verify_signature(b"", |signature, tbs| {
        let signature = Signature::from_slice(signature).map_err(|_| PublishError::BadSignature)?;
        key.verify(tbs, &signature)
            .map_err(|_| PublishError::BadSignature)
    })?;
    Ok(parts)
}

fn parse(cwt: &[u8]) -> Result<(CoseSign1, CwtParts), PublishError> {
    let sign1 = CoseSign1::from_tagged_slice(cwt)
        .map_err(|_| PublishError::MalformedCwt("not a COSE_Sign1 with tag 18"))?;
    let protected = &sign1.protected.header;
    let alg = match &protected.alg {
        Some(coset::RegisteredLabelWithPrivate::Assigned(a)) => Some(a.to_i64()),
        Some(coset::RegisteredLabelWithPrivate::PrivateUse(n)) => Some(*n),
        _ => None,
    };
    let kid = [protected, &sign1.unprotected]
        .into_iter()
        .map(|h| &h.key_id)
        .find(|k| !k.is_empty())
        .cloned();
    let typ = protected
        .rest
        .iter()
        .find(|(label, _)| *label == Label::Int(TYP_LABEL))
        .and_then(|(_, v)| v.as_text())
        .map(str::to_owned);
    let payload = sign1
        .payload
        .clone()
        .ok_or(PublishError::MalformedCwt("no payload"))?;
    Ok((
        sign1,
        CwtParts {
            alg,
            kid,
            typ,
            payload,
        },
    ))
}

/// Reads a Token Status List CWT payload (the CBOR claims set, as returned
/// by [`verify`]) and decodes its list, refusing to inflate it past `limit`
/// bytes. Checks no signature and no time. The counterpart of
/// [`super::token::decode_token_list`] for the JWT.
///
/// # Errors
/// [`PublishError::MalformedCwt`] when the claims do not have the draft's
/// shape (a missing `sub`, `iat` or `status_list`, a claim of the wrong
/// type, `bits` other than 1, 2, 4 or 8); [`PublishError::Codec`] when
/// `lst` is not zlib.
pub fn decode_cwt_list(payload: &[u8], limit: usize) -> Result<DecodedCwtList, PublishError> {
    use PublishError::MalformedCwt as Bad;
    let claims = Value::from_slice(payload).map_err(|_| Bad("the claims are not CBOR"))?;
    let Value::Map(claims) = claims else {
        return Err(Bad("the claims are not a map"));
    };
    let claim = |key: i64| {
        claims
            .iter()
            .find(|(k, _)| {
                k.as_integer()
                    .is_some_and(|k| i128::from(k) == i128::from(key))
            })
            .map(|(_, v)| v)
    };
    let text = |v: &Value, what| v.as_text().map(str::to_owned).ok_or(Bad(what));
    let uint = |v: &Value, what| {
        v.as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(Bad(what))
    };
    let iss = claim(ISS).map(|v| text(v, "iss is not text")).transpose()?;
    let sub = text(claim(SUB).ok_or(Bad("no sub"))?, "sub is not text")?;
    let iat = uint(
        claim(IAT).ok_or(Bad("no iat"))?,
        "iat is not an unsigned integer",
    )?;
    let exp = claim(EXP)
        .map(|v| uint(v, "exp is not an unsigned integer"))
        .transpose()?;
    let ttl = claim(TTL)
        .map(|v| uint(v, "ttl is not an unsigned integer"))
        .transpose()?;
    let Some(Value::Map(status_list)) = claim(STATUS_LIST) else {
        return Err(Bad("no status_list map"));
    };
    let member = |name: &str| {
        status_list
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
    };
    let bits = uint(
        member("bits").ok_or(Bad("no bits"))?,
        "bits is not an unsigned integer",
    )?;
    let bits = u8::try_from(bits)
        .ok()
        .and_then(|b| Bits::try_from(b).ok())
        .ok_or(Bad("bits is not 1, 2, 4 or 8"))?;
    let lst = member("lst")
        .ok_or(Bad("no lst"))?
        .as_bytes()
        .ok_or(Bad("lst is not a byte string"))?;
    let aggregation_uri = member("aggregation_uri")
        .map(|v| text(v, "aggregation_uri is not text"))
        .transpose()?;
    let bytes = unzlib(lst, limit)?;
    let list = StatusList::from_decoded(Layout::Ietf, bits, bytes)
        .map_err(|_| PublishError::NotAStatusList("the list is empty"))?;
    Ok(DecodedCwtList {
        claims: CwtClaims {
            iss,
            sub,
            iat,
            exp,
            ttl,
            bits,
            aggregation_uri,
        },
        list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codec::DEFAULT_DECODE_LIMIT;
    use crate::publish::{jws, token};

    fn params() -> ListParams<'static> {
        ListParams {
            iss: "https://s.example",
            uri: "https://s.example/t/ABCDEF012345",
            iat: 1_700_000_000,
            exp: 1_700_086_400,
            ttl: 300,
        }
    }

    fn sign(list: &StatusList, aggregation: Option<&str>, key: &ServiceKey) -> Vec<u8> {
        let compressed = CompressedList::new(list.as_bytes());
        sign_token_cwt(list, &compressed, &params(), aggregation, key).unwrap()
    }

    #[test]
    fn round_trips_through_our_own_verifier() {
        let key = ServiceKey::generate();
        let mut list = StatusList::new(Layout::Ietf, Bits::Two, 1000).unwrap();
        list.set(7, 1).unwrap();
        list.set(999, 2).unwrap();
        let cwt = sign(&list, Some("https://s.example/t/aggregation"), &key);
        // COSE_Sign1_Tagged: tag 18 (0xd2), then a 4-element array (0x84).
        assert_eq!(&cwt[..2], &[0xd2, 0x84]);
        let parts = verify(&cwt, key.verifying_key()).unwrap();
        assert_eq!(parts.alg, Some(-7));
        assert_eq!(parts.kid.as_deref(), Some(key.kid().as_bytes()));
        assert_eq!(parts.typ.as_deref(), Some(MEDIA_TYPE));
        let decoded = decode_cwt_list(&parts.payload, DEFAULT_DECODE_LIMIT).unwrap();
        assert_eq!(decoded.list.as_bytes(), list.as_bytes());
        assert_eq!(
            decoded.claims,
            CwtClaims {
                iss: Some(params().iss.to_owned()),
                sub: params().uri.to_owned(),
                iat: params().iat,
                exp: Some(params().exp),
                ttl: Some(300),
                bits: Bits::Two,
                aggregation_uri: Some("https://s.example/t/aggregation".to_owned()),
            }
        );
        let without = sign(&list, None, &key);
        let parts = verify(&without, key.verifying_key()).unwrap();
        let decoded = decode_cwt_list(&parts.payload, DEFAULT_DECODE_LIMIT).unwrap();
        assert_eq!(decoded.claims.aggregation_uri, None);
    }

    #[test]
    fn the_list_bytes_are_raw_zlib_not_base64() {
        let key = ServiceKey::generate();
        let list = StatusList::new(Layout::Ietf, Bits::One, 16).unwrap();
        let cwt = sign(&list, None, &key);
        let payload = decode_unverified(&cwt).unwrap().payload;
        let Value::Map(claims) = Value::from_slice(&payload).unwrap() else {
            panic!("claims are a map")
        };
        let status_list = claims
            .iter()
            .find(|(k, _)| k.as_integer() == Some(Integer::from(STATUS_LIST)))
            .map(|(_, v)| v.clone())
            .unwrap();
        let lst = status_list.as_map().unwrap()[1]
            .1
            .as_bytes()
            .unwrap()
            .clone();
        assert_eq!(lst, CompressedList::new(list.as_bytes()).zlib());
        assert_eq!(lst[0], 0x78, "a zlib header, not base64 text");
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let key = ServiceKey::generate();
        let list = StatusList::new(Layout::Ietf, Bits::One, 16).unwrap();
        let cwt = sign(&list, None, &key);
        assert!(matches!(
            verify(&cwt, ServiceKey::generate().verifying_key()),
            Err(PublishError::BadSignature)
        ));
        // Flip one bit of the payload's text (the URI), keeping valid CBOR.
        let at = cwt.windows(12).position(|w| w == b"ABCDEF012345").unwrap();
        let mut forged = cwt.clone();
        forged[at] = b'B';
        assert!(matches!(
            verify(&forged, key.verifying_key()),
            Err(PublishError::BadSignature)
        ));
    }

    #[test]
    fn w3c_lists_and_bad_params_are_refused() {
        let key = ServiceKey::generate();
        let w3c = StatusList::new(Layout::W3c, Bits::Two, 8).unwrap();
        let compressed = CompressedList::new(w3c.as_bytes());
        assert!(matches!(
            sign_token_cwt(&w3c, &compressed, &params(), None, &key),
            Err(PublishError::WrongLayout { .. })
        ));
        let ietf = StatusList::new(Layout::Ietf, Bits::One, 8).unwrap();
        let bad = ListParams { exp: 0, ..params() };
        assert!(matches!(
            sign_token_cwt(&ietf, &compressed, &bad, None, &key),
            Err(PublishError::BadParams(_))
        ));
    }

    #[test]
    fn malformed_cwts_and_claims_are_errors() {
        let key = ServiceKey::generate();
        let list = StatusList::new(Layout::Ietf, Bits::One, 16).unwrap();
        let good = sign(&list, None, &key);
        let untagged = good[1..].to_vec();
        for (why, cwt) in [
            ("empty", vec![]),
            ("not cbor", vec![0xff, 0x00]),
            ("untagged", untagged),
            ("truncated", good[..good.len() - 3].to_vec()),
            ("trailing bytes", [good.as_slice(), &[0]].concat()),
        ] {
            assert!(verify(&cwt, key.verifying_key()).is_err(), "{why}");
        }
        let map = |entries: Vec<(Value, Value)>| Value::Map(entries).to_vec().unwrap();
        let i = |n: i64| Value::Integer(Integer::from(n));
        let t = |s: &str| Value::Text(s.to_owned());
        let status =
            |bits: i64, lst: Value| Value::Map(vec![(t("bits"), i(bits)), (t("lst"), lst)]);
        let zlib = Value::Bytes(CompressedList::new(&[0u8; 2]).zlib());
        let good_claims = |extra: Vec<(Value, Value)>| {
            let mut c = vec![(i(SUB), t("s")), (i(IAT), i(1))];
            c.extend(extra);
            c
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not a map", i(1).to_vec().unwrap()),
            ("no status_list", map(good_claims(vec![]))),
            (
                "no sub",
                map(vec![
                    (i(IAT), i(1)),
                    (i(STATUS_LIST), status(1, zlib.clone())),
                ]),
            ),
            (
                "negative iat",
                map(vec![
                    (i(SUB), t("s")),
                    (i(IAT), i(-1)),
                    (i(STATUS_LIST), status(1, zlib.clone())),
                ]),
            ),
            (
                "bits 3",
                map(good_claims(vec![(i(STATUS_LIST), status(3, zlib.clone()))])),
            ),
            (
                "lst as text",
                map(good_claims(vec![(
                    i(STATUS_LIST),
                    status(1, t("eNrbuRgAAhcBXQ")),
                )])),
            ),
            (
                "lst not zlib",
                map(good_claims(vec![(
                    i(STATUS_LIST),
                    status(1, Value::Bytes(vec![1, 2])),
                )])),
            ),
            (
                "ttl as text",
                map(good_claims(vec![
                    (i(TTL), t("300")),
                    (i(STATUS_LIST), status(1, zlib.clone())),
                ])),
            ),
        ];
        for (why, payload) in cases {
            assert!(decode_cwt_list(&payload, 1024).is_err(), "{why}");
        }
        let ok = map(good_claims(vec![(i(STATUS_LIST), status(1, zlib))]));
        assert_eq!(decode_cwt_list(&ok, 1024).unwrap().list.len(), 16);
    }

    /// The JWT of the same list says the same: one list, two envelopes.
    #[test]
    fn the_jwt_and_the_cwt_carry_the_same_claims() {
        let key = ServiceKey::generate();
        let mut list = StatusList::new(Layout::Ietf, Bits::Two, 64).unwrap();
        list.set(5, 2).unwrap();
        let compressed = CompressedList::new(list.as_bytes());
        let agg = Some("https://s.example/t/aggregation");
        let jwt =
            token::sign_compressed_token_list(&list, &compressed, &params(), agg, &key).unwrap();
        let jwt = jws::verify(&jwt, key.verifying_key()).unwrap();
        let jwt = token::decode_token_list(&jwt.payload, 1024).unwrap();
        let cwt = sign_token_cwt(&list, &compressed, &params(), agg, &key).unwrap();
        let cwt = decode_cwt_list(&decode_unverified(&cwt).unwrap().payload, 1024).unwrap();
        assert_eq!(jwt.list, cwt.list);
        assert_eq!(jwt.claims.iss, cwt.claims.iss);
        assert_eq!(jwt.claims.sub, cwt.claims.sub);
        assert_eq!(
            (jwt.claims.iat, jwt.claims.exp, jwt.claims.ttl),
            (cwt.claims.iat, cwt.claims.exp, cwt.claims.ttl)
        );
        assert_eq!(
            jwt.claims.status_list.aggregation_uri,
            cwt.claims.aggregation_uri
        );
    }
}
