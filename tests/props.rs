//! Property tests over everything that reads untrusted input: request JWTs
//! (`auth::jwt::parse`), request claims (`domain::claims::check_*`), encoded
//! and published lists (`domain::codec`, `publish::decode_token_list`,
//! `publish::decode_bitstring_credential`), configuration text
//! (`config::Settings::from_toml_str`) and the entry listing's query
//! (`domain::entries::EntryFilter::parse`). Inputs are arbitrary, and valid
//! ones mutated byte by byte and member by member. Each property asserts no
//! panic, an error of the layer's type, and what an `Ok` promises.
//!
//! `cargo test` runs proptest's default number of cases (256 per property);
//! the long run sets the count through proptest's environment variable:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release --test props
//! ```
//!
//! (`tests/domain.rs` holds the properties of the codecs' round trips and of
//! the allocator; the segmented encoder's round trips and incremental
//! updates are below, and so is the page cut of the entry listing
//! (`domain::entries::cut` and `merge`) against a naive merge and slice.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};

use statuslist::auth::AuthError;
use statuslist::auth::jwt::{self, MAX_TOKEN_BYTES};
use statuslist::config::{ConfigError, Settings};
use statuslist::domain::claims::{
    self, ClaimError, MAX_IAT_SKEW_SECS, MAX_STATUS_EXPIRY_SECS, is_lowercase_uuid,
};
use statuslist::domain::codec::{
    self, CodecError, decode_bitstring, decode_lst, encode_bitstring, encode_lst, unzlib,
};
use statuslist::domain::entries::{EntryFilter, EntryKey, SortOrder, StatusSet, cut, merge};
use statuslist::domain::segmented::{CompressedList, SEGMENT_BYTES};
use statuslist::domain::{Bits, Layout, ListRef, StatusList};
use statuslist::publish::credential::build_credential;
use statuslist::publish::{
    ListParams, PublishError, decode_bitstring_credential, decode_token_list,
};

// ---------------------------------------------------------------------------
// Generators

/// A byte-level change to an input.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR the byte at (position mod len) with a non-zero mask.
    Flip(usize, u8),
    /// Insert a byte at (position mod len + 1).
    Insert(usize, u8),
    /// Remove up to `n` bytes from (position mod len).
    Remove(usize, usize),
    /// Keep only the first (position mod len + 1) bytes.
    Truncate(usize),
    /// Copy a range of the input to another place in it.
    Duplicate(usize, usize, usize),
    /// Replace the byte at (position mod len) with one of the bytes the
    /// formats give a meaning to.
    Special(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop::sample::select(&b".=+/-_ \n\t{}[]\":,\\0\x00\xff\xc3u"[..]);
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(p, m)| Mutation::Flip(p, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Mutation::Remove(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..32, any::<usize>())
            .prop_map(|(p, n, to)| Mutation::Duplicate(p, n, to)),
        (any::<usize>(), special).prop_map(|(p, b)| Mutation::Special(p, b)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Insert(p, b) => bytes.insert(p % (len + 1), b),
            _ if len == 0 => {}
            Mutation::Flip(p, mask) => bytes[p % len] ^= mask,
            Mutation::Remove(p, n) => {
                let at = p % len;
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Truncate(p) => bytes.truncate(p % len + 1),
            Mutation::Duplicate(p, n, to) => {
                let at = p % len;
                let part = bytes[at..(at + n).min(len)].to_vec();
                let to = to % (len + 1);
                bytes.splice(to..to, part);
            }
            Mutation::Special(p, b) => bytes[p % len] = b,
        }
    }
    bytes
}

/// Numbers where the claim rules have their edges: around the test's `now`,
/// zero, the largest exact float, the integer limits, negative and
/// fractional values.
fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (0u64..4_000_000_000).prop_map(Value::from),
        (-2.0e9f64..4.0e9).prop_map(Value::from),
        prop::sample::select(vec![
            0.0,
            -0.0,
            0.5,
            1.0,
            9_007_199_254_740_992.0,
            9_007_199_254_740_993.0,
            1.8e19,
            1e300,
            -1.0,
        ])
        .prop_map(Value::from),
    ]
}

/// Strings close to what the claims expect: UUIDs in every case, list URIs
/// with good and bad ids, and anything else.
fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F-]{30,40}",
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string().to_uppercase()),
        "(https://status\\.example\\.com|http://127\\.0\\.0\\.1)?/?[tbx]?/?[0-9A-Fa-f]{10,14}[/?#]?.{0,3}",
        "(https://status\\.example\\.com|http://127\\.0\\.0\\.1)/[tb]/[0-9A-F]{12}",
    ]
}

/// Any JSON value, with claim-shaped leaves.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_number(),
        edge_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z]{1,6}",
                    prop::sample::select(vec![
                        "alg".to_owned(),
                        "kid".to_owned(),
                        "typ".to_owned(),
                        "crit".to_owned(),
                        "iss".to_owned(),
                        "jti".to_owned(),
                        "iat".to_owned(),
                        "idx".to_owned(),
                        "uri".to_owned(),
                        "statusExpiry".to_owned(),
                    ]),
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A claim as the checks receive it: absent, or any value.
fn claim() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![1 => Just(None), 9 => json_value().prop_map(Some)]
}

/// `now` values: realistic, and at the ends of the range.
fn now() -> impl Strategy<Value = u64> {
    prop_oneof![
        1_700_000_000u64..2_000_000_000,
        any::<u64>(),
        Just(0u64),
        Just(u64::MAX)
    ]
}

/// A `now` and a claim that is often a time close to it: within seconds of
/// the skew and window limits, or of a year ahead, as an integer or with a
/// fraction.
fn now_and_time_claim() -> impl Strategy<Value = (u64, Option<Value>)> {
    now().prop_flat_map(|now| {
        let edges = vec![
            0i128,
            i128::from(MAX_IAT_SKEW_SECS),
            -3600,
            MAX_STATUS_EXPIRY_SECS as i128,
        ];
        let relative = prop_oneof![
            (prop::sample::select(edges.clone()), -2i128..=2).prop_map(|(edge, off)| edge + off),
            (prop::sample::select(edges), -130i128..130).prop_map(|(edge, off)| edge + off),
            -200_000i128..200_000,
        ]
        .prop_flat_map(move |delta| {
            let t = i128::from(now) + delta;
            prop_oneof![
                Just(u64::try_from(t).map_or(Value::Null, Value::from)),
                (0.0f64..1.0).prop_map(move |frac| Value::from(t as f64 + frac)),
            ]
        })
        .prop_map(Some);
        (Just(now), prop_oneof![claim(), relative])
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A well-formed request JWT with these header and payload values (the
/// signature is random bytes: parsing does not check it).
fn jwt_of(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(signature)
    )
}

fn valid_jwt() -> impl Strategy<Value = String> {
    (
        any::<u128>(),
        0u64..2_000_000_000,
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(jti, iat, sig)| {
            jwt_of(
                &json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}),
                &json!({
                    "iss": "client-1", "iat": iat, "jti": uuid::Uuid::from_u128(jti).to_string(),
                    "idx": 7, "uri": "https://status.example.com/t/A671FED3E9AD",
                    "statusExpiry": iat + 86_400
                }),
                &sig,
            )
        })
}

// ---------------------------------------------------------------------------
// Request JWTs

/// `parse` answers `Ok` or `Decode`, and an `Ok` splits the trimmed input
/// exactly: `signing_input "." signature`.
fn check_parse(body: &[u8]) -> Result<(), TestCaseError> {
    match jwt::parse(body) {
        Err(e) => prop_assert_eq!(e, AuthError::Decode),
        Ok(parsed) => {
            let trimmed = body.trim_ascii();
            prop_assert!(trimmed.len() <= MAX_TOKEN_BYTES);
            let mut rebuilt = parsed.signing_input.to_vec();
            rebuilt.push(b'.');
            rebuilt.extend_from_slice(parsed.signature.as_bytes());
            prop_assert_eq!(rebuilt.as_slice(), trimmed);
            prop_assert!(parsed.header.crit.is_none());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn jwt_parse_never_panics_on_arbitrary_bytes(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            "[A-Za-z0-9_.=+/ -]{0,300}".prop_map(String::into_bytes),
        ]
    ) {
        check_parse(&body)?;
    }

    #[test]
    fn jwt_parse_accepts_exactly_two_objects_without_crit(
        header in json_value(), payload in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let token = jwt_of(&header, &payload, &signature);
        let result = jwt::parse(token.as_bytes());
        let crit = header.get("crit").is_some_and(|c| !c.is_null());
        let expect_ok = header.is_object() && payload.is_object() && !crit
            && token.len() <= MAX_TOKEN_BYTES;
        prop_assert_eq!(result.is_ok(), expect_ok, "{}", token);
        check_parse(token.as_bytes())?;
    }

    #[test]
    fn jwt_parse_never_panics_on_mutated_tokens(token in valid_jwt(), m in mutations()) {
        prop_assert!(jwt::parse(token.as_bytes()).is_ok());
        check_parse(&apply(token.into_bytes(), &m))?;
    }
}

// ---------------------------------------------------------------------------
// Claims

fn absent(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

proptest! {
    #[test]
    fn iat_is_in_the_window_or_a_typed_error(
        (now, v) in now_and_time_claim(),
        window in prop_oneof![3600u64..3601, 1u64..100_000, any::<u64>()],
    ) {
        match claims::check_iat(v.as_ref(), now, window) {
            Ok(iat) => {
                prop_assert!(iat <= now.saturating_add(MAX_IAT_SKEW_SECS));
                prop_assert!(iat >= now.saturating_sub(window));
                prop_assert!(v.as_ref().is_some_and(Value::is_number));
            }
            Err(ClaimError::MissingIat) => prop_assert!(absent(v.as_ref())),
            Err(ClaimError::InvalidIat) => prop_assert!(!absent(v.as_ref())),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn jti_is_a_lowercase_uuid_or_a_typed_error(v in claim()) {
        match claims::check_jti(v.as_ref()) {
            Ok(jti) => {
                prop_assert!(is_lowercase_uuid(jti.as_str()));
                prop_assert_eq!(v, Some(Value::String(jti.to_string())));
            }
            Err(ClaimError::MissingJti) => prop_assert!(absent(v.as_ref())),
            Err(ClaimError::InvalidJti) => prop_assert!(!absent(v.as_ref())),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn status_expiry_is_within_a_year_or_a_typed_error((now, v) in now_and_time_claim()) {
        match claims::check_status_expiry(v.as_ref(), now) {
            Ok(exp) => {
                prop_assert!(exp > now);
                prop_assert!(exp <= now.saturating_add(MAX_STATUS_EXPIRY_SECS));
            }
            Err(ClaimError::MissingStatusExpiry) => prop_assert!(absent(v.as_ref())),
            Err(ClaimError::InvalidStatusExpiry) => prop_assert!(!absent(v.as_ref())),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn idx_is_the_integer_sent_or_a_typed_error(v in claim()) {
        match claims::check_idx(v.as_ref()) {
            Ok(idx) => {
                let n = v.as_ref().and_then(Value::as_number).cloned();
                prop_assert!(n.is_some(), "{:?}", v);
                if let Some(u) = n.as_ref().and_then(serde_json::Number::as_u64) {
                    prop_assert_eq!(idx, u);
                } else {
                    let f = n.and_then(|n| n.as_f64()).unwrap_or(f64::NAN);
                    prop_assert!(f.fract() == 0.0 && f >= 0.0);
                    #[allow(clippy::cast_precision_loss)]
                    let back = idx as f64;
                    prop_assert_eq!(back, f);
                }
            }
            Err(ClaimError::MissingIdx) => prop_assert!(absent(v.as_ref())),
            Err(ClaimError::InvalidIdx) => prop_assert!(!absent(v.as_ref())),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn uri_names_a_list_of_this_service_or_a_typed_error(
        v in claim(),
        base in prop::sample::select(vec!["https://status.example.com", "http://127.0.0.1", "http://127.0.0.1/"]),
    ) {
        match claims::check_uri(v.as_ref(), base) {
            Ok(list) => {
                let sent = v.as_ref().and_then(Value::as_str).unwrap_or_default().to_owned();
                prop_assert_eq!(list.uri(base), sent.clone());
                prop_assert_eq!(ListRef::parse_uri(base, &sent).ok(), Some(list));
            }
            Err(ClaimError::MissingUri) => prop_assert!(!v.as_ref().is_some_and(Value::is_string)),
            Err(ClaimError::InvalidUri) => prop_assert!(v.as_ref().is_some_and(Value::is_string)),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Lists

fn widths() -> impl Strategy<Value = Bits> {
    prop::sample::select(vec![Bits::One, Bits::Two, Bits::Four, Bits::Eight])
}

/// Raw list bytes: sparse (mostly zero, as real lists are) or random.
fn list_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            1usize..4096,
            prop::collection::vec((any::<usize>(), any::<u8>()), 0..20)
        )
            .prop_map(|(len, writes)| {
                let mut bytes = vec![0u8; len];
                for (at, b) in writes {
                    bytes[at % len] = b;
                }
                bytes
            }),
        prop::collection::vec(any::<u8>(), 1..512),
    ]
}

/// Decode limits: small ones make "too large" reachable.
fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..64, 64usize..8192, Just(codec::DEFAULT_DECODE_LIMIT)]
}

/// An `Ok` from a decoder is a non-empty list within the limit; an error is
/// a [`CodecError`].
fn check_decoded(result: Result<Vec<u8>, CodecError>, limit: usize) -> Result<(), TestCaseError> {
    if let Ok(bytes) = result {
        prop_assert!(!bytes.is_empty());
        prop_assert!(bytes.len() <= limit);
    }
    Ok(())
}

fn token_payload(bits: Bits, bytes: &[u8]) -> Value {
    json!({
        "iss": "https://status.example.com",
        "sub": "https://status.example.com/t/A671FED3E9AD",
        "iat": 1_700_000_000u64, "exp": 1_700_086_400u64, "ttl": 300,
        "status_list": {"bits": bits.get(), "lst": encode_lst(bytes)}
    })
}

fn credential_payload(bytes: &[u8]) -> Value {
    let list = StatusList::from_decoded(Layout::W3c, Bits::Two, bytes.to_vec()).unwrap();
    let params = ListParams {
        iss: "https://status.example.com",
        uri: "https://status.example.com/b/A671FED3E9AD",
        iat: 1_700_000_000,
        exp: 1_700_086_400,
        ttl: 300,
    };
    serde_json::to_value(build_credential(&list, &params).unwrap()).unwrap()
}

/// Sets the member at `path` (object keys, created as needed) of `v`.
fn set_at(v: &mut Value, path: &[&str], to: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = v;
    for key in parents {
        if !at.get(*key).is_some_and(Value::is_object) {
            at[*key] = json!({});
        }
        at = &mut at[*key];
    }
    at[*last] = to;
}

/// The members of the two list documents a mutation may replace.
const TOKEN_MEMBERS: &[&[&str]] = &[
    &["sub"],
    &["iat"],
    &["exp"],
    &["ttl"],
    &["status_list"],
    &["status_list", "bits"],
    &["status_list", "lst"],
];
const CREDENTIAL_MEMBERS: &[&[&str]] = &[
    &["@context"],
    &["id"],
    &["type"],
    &["credentialSubject"],
    &["credentialSubject", "type"],
    &["credentialSubject", "statusSize"],
    &["credentialSubject", "encodedList"],
    &["credentialSubject", "statusMessage"],
    &["validFrom"],
    &["exp"],
];

/// A replacement for a list member: any JSON, or a plausible but wrong
/// encoded list.
fn member_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        prop::sample::select(vec![0u64, 1, 2, 3, 4, 8, 16, 255, 256]).prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| Value::from(b64(&b))),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| Value::from(format!("u{}", b64(&b)))),
        list_bytes().prop_map(|b| Value::from(encode_bitstring(&b))),
        list_bytes().prop_map(|b| Value::from(encode_lst(&b))),
    ]
}

fn check_token_list(payload: &[u8], limit: usize) -> Result<(), TestCaseError> {
    match decode_token_list(payload, limit) {
        Ok(d) => {
            prop_assert!(!d.list.is_empty());
            prop_assert!(d.list.as_bytes().len() <= limit);
            prop_assert_eq!(d.list.bits(), d.claims.status_list.bits);
            prop_assert_eq!(d.list.layout(), Layout::Ietf);
        }
        Err(
            PublishError::BadJson { .. } | PublishError::Codec(_) | PublishError::NotAStatusList(_),
        ) => {}
        Err(other) => prop_assert!(false, "unexpected error {other:?}"),
    }
    Ok(())
}

fn check_credential(payload: &[u8], limit: usize) -> Result<(), TestCaseError> {
    match decode_bitstring_credential(payload, limit) {
        Ok(d) => {
            prop_assert!(!d.list.is_empty());
            prop_assert!(d.list.as_bytes().len() <= limit);
            prop_assert_eq!(d.list.layout(), Layout::W3c);
            prop_assert!(
                d.credential
                    .type_
                    .iter()
                    .any(|t| t == "BitstringStatusListCredential")
            );
        }
        Err(
            PublishError::BadJson { .. } | PublishError::Codec(_) | PublishError::NotAStatusList(_),
        ) => {}
        Err(other) => prop_assert!(false, "unexpected error {other:?}"),
    }
    Ok(())
}

proptest! {
    #[test]
    fn codec_decoders_never_panic_on_mutated_encodings(
        bytes in list_bytes(), m in mutations(), limit in limit(),
    ) {
        // The text forms, mutated.
        let lst = apply(encode_lst(&bytes).into_bytes(), &m);
        check_decoded(decode_lst(&String::from_utf8_lossy(&lst), limit), limit)?;
        let bitstring = apply(encode_bitstring(&bytes).into_bytes(), &m);
        check_decoded(decode_bitstring(&String::from_utf8_lossy(&bitstring), limit), limit)?;
        // The compressed bytes, mutated (past the base64 check).
        let zlib = apply(codec::zlib(&bytes), &m);
        check_decoded(unzlib(&zlib, limit), limit)?;
        check_decoded(decode_lst(&b64(&zlib), limit), limit)?;
        let gz = URL_SAFE_NO_PAD.decode(&encode_bitstring(&bytes)[1..]).unwrap();
        let gz = apply(gz, &m);
        check_decoded(decode_bitstring(&format!("u{}", b64(&gz)), limit), limit)?;
    }

    #[test]
    fn list_documents_never_panic_on_arbitrary_input(
        raw in prop::collection::vec(any::<u8>(), 0..512),
        value in json_value(),
        limit in limit(),
    ) {
        check_token_list(&raw, limit)?;
        check_credential(&raw, limit)?;
        let text = value.to_string();
        check_token_list(text.as_bytes(), limit)?;
        check_credential(text.as_bytes(), limit)?;
    }

    #[test]
    fn list_documents_never_panic_on_mutated_valid_ones(
        bits in widths(),
        bytes in list_bytes(),
        member in any::<prop::sample::Index>(),
        to in member_value(),
        m in mutations(),
        limit in limit(),
    ) {
        let token = token_payload(bits, &bytes);
        let credential = credential_payload(&bytes);
        // Unchanged, they decode to what was encoded.
        let d = decode_token_list(token.to_string().as_bytes(), codec::DEFAULT_DECODE_LIMIT).unwrap();
        prop_assert_eq!(d.list.as_bytes(), bytes.as_slice());
        prop_assert!(decode_bitstring_credential(credential.to_string().as_bytes(), codec::DEFAULT_DECODE_LIMIT).is_ok());

        // One member replaced.
        let mut t = token.clone();
        set_at(&mut t, member.get::<&[&str]>(TOKEN_MEMBERS), to.clone());
        check_token_list(t.to_string().as_bytes(), limit)?;
        let mut c = credential.clone();
        set_at(&mut c, member.get::<&[&str]>(CREDENTIAL_MEMBERS), to);
        check_credential(c.to_string().as_bytes(), limit)?;

        // The JSON text mutated.
        check_token_list(&apply(token.to_string().into_bytes(), &m), limit)?;
        check_credential(&apply(credential.to_string().into_bytes(), &m), limit)?;
    }
}

// ---------------------------------------------------------------------------
// Segmented compression

/// Lists of 0–4 segments: sparse (as real lists are) or random, with lengths
/// that fall on and beside segment boundaries.
fn segmented_bytes() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![
        0usize..3 * SEGMENT_BYTES + 100,
        (1usize..4).prop_flat_map(|n| (n * SEGMENT_BYTES - 2)..(n * SEGMENT_BYTES + 2)),
    ];
    (len, any::<bool>(), any::<u64>()).prop_map(|(len, dense, seed)| {
        let mut state = seed | 1;
        let mut next = move || {
            // xorshift64: cheap deterministic bytes for large lists.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..len)
            .map(|_| {
                let r = next();
                if dense || r % 50 == 0 {
                    (r >> 32) as u8
                } else {
                    0
                }
            })
            .collect()
    })
}

/// Inflates with miniz_oxide, which shares no code with the zlib-rs encoder.
fn independent_inflate(zlib: &[u8]) -> Vec<u8> {
    miniz_oxide::inflate::decompress_to_vec_zlib(zlib).expect("valid zlib")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A segmented encoding decodes to the list, through our decoders (zlib
    /// and GZIP) and an independent one.
    #[test]
    fn segmented_encodings_decode_back(bytes in segmented_bytes()) {
        let fast = CompressedList::new(&bytes);
        prop_assert_eq!(fast.segments(), bytes.len().div_ceil(SEGMENT_BYTES));
        // As first published, and optimized (level 9 where smaller): both
        // decode the same, and optimizing never makes a list larger.
        let best = fast.optimized().map_or_else(|| fast.clone(), |(b, _)| b);
        prop_assert!(best.is_optimized());
        prop_assert!(best.compressed_len() <= fast.compressed_len());
        for list in [&fast, &best] {
            prop_assert_eq!(independent_inflate(&list.zlib()), bytes.clone());
            if !bytes.is_empty() {
                prop_assert_eq!(decode_lst(&list.lst(), codec::DEFAULT_DECODE_LIMIT).unwrap(), bytes.clone());
                prop_assert_eq!(decode_bitstring(&list.encoded_list(), codec::DEFAULT_DECODE_LIMIT).unwrap(), bytes.clone());
            }
        }
    }

    /// After one changed byte, the update compresses only that byte's
    /// segment, decodes to the new list, and equals a full encode of it.
    #[test]
    fn a_single_change_recompresses_one_segment_and_decodes_back(
        bytes in segmented_bytes().prop_filter("not empty", |b| !b.is_empty()),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let before = CompressedList::new(&bytes);
        let mut changed = bytes.clone();
        let at = at.index(changed.len());
        changed[at] ^= mask;
        let (after, stats) = before.update(&changed);
        prop_assert_eq!(stats.compressed, 1);
        prop_assert_eq!(stats.reused, before.segments() - 1);
        prop_assert_eq!(after.shared_segments(&before), before.segments() - 1);
        prop_assert_eq!(independent_inflate(&after.zlib()), changed.clone());
        prop_assert_eq!(decode_bitstring(&after.encoded_list(), codec::DEFAULT_DECODE_LIMIT).unwrap(), changed.clone());
        prop_assert_eq!(after, CompressedList::new(&changed));
        // Unchanged bytes reuse everything.
        let (same, stats) = before.update(&bytes);
        prop_assert_eq!(stats.compressed, 0);
        prop_assert_eq!(same, before);
    }
}

// ---------------------------------------------------------------------------
// Configuration

const KEY: &str = r#"{ kty = "EC", crv = "P-256", kid = "k1", x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" }"#;

/// A configuration that validates, touching every section. No member names
/// a file, so nothing is read from disk.
fn valid_config() -> String {
    format!(
        r#"public_base_url = "https://status.example.com"
listen = "127.0.0.1:8080"
idempotency_window_secs = 3600

[jwks]
timeout_ms = 2000
max_bytes = 65536
default_ttl_secs = 300

[store]
url = "redis://127.0.0.1:6379/0"
redis_prefix = "statuslist:"
command_timeout_ms = 500

[lists]
capacity = 131072
bits = 2

[signing]
key_file = "./data/service-key.pem"
token_lifetime_secs = 86400
ttl_secs = 300
freshness_ms = 250

[[clients]]
id = "client-a"
format = "token"
jwks = {{ keys = [{KEY}] }}
algorithms = ["ES256", "EdDSA"]

[[clients]]
id = "client-b"
format = "bitstring"
jwks_uri = "https://issuer.example/jwks"
"#
    )
}

/// Keys of the configuration, as `section.key` or `key`.
const CONFIG_KEYS: &[&str] = &[
    "public_base_url",
    "listen",
    "idempotency_window_secs",
    "jwks.timeout_ms",
    "jwks.connect_timeout_ms",
    "jwks.max_bytes",
    "jwks.default_ttl_secs",
    "jwks.min_ttl_secs",
    "jwks.max_ttl_secs",
    "store.url",
    "store.redis_prefix",
    "store.command_timeout_ms",
    "lists.capacity",
    "lists.bits",
    "signing.key_file",
    "signing.token_lifetime_secs",
    "signing.ttl_secs",
    "signing.freshness_ms",
    "clients.id",
    "clients.format",
    "clients.algorithms",
    "clients.jwks_uri",
    "clients.jwks",
    "clients.allow_insecure_jwks",
    "unknown_key",
];

/// A TOML value of any type, some of them near the limits.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "0",
            "1",
            "-1",
            "2",
            "3",
            "8",
            "16",
            "1099511627776",
            "1099511627777",
            "18446744073709551615",
            "9223372036854775807",
            "1e9",
            "nan",
            "inf",
            "true",
            "false",
            "[]",
            "{}",
            "\"\"",
            "[\"ES256\", \"none\"]",
            "{ keys = [] }",
        ])
        .prop_map(str::to_owned),
        any::<String>().prop_map(|s| format!("{s:?}")),
        "(embedded:|redis://|redis\\+unix://|https?://|ftp://)?[a-z0-9.:/@{}\\[\\] -]{0,24}"
            .prop_map(|s| format!("{s:?}")),
        "[0-9.:\\[\\]a-f]{0,24}".prop_map(|s| format!("{s:?}")),
    ]
}

/// Sets `key` (`section.key`, `clients.key` for the first client, or a
/// top-level key) to the TOML text `value` in `config`.
fn override_key(config: &str, key: &str, value: &str) -> String {
    let (section, name) = key.split_once('.').unwrap_or(("", key));
    let header = match section {
        "" => None,
        "clients" => Some("[[clients]]".to_owned()),
        s => Some(format!("[{s}]")),
    };
    let mut out = Vec::new();
    let mut in_section = header.is_none();
    let mut done = false;
    for line in config.lines() {
        if line.starts_with('[') {
            if in_section && !done {
                out.push(format!("{name} = {value}"));
                done = true;
            }
            in_section = header.as_deref() == Some(line) && !done;
        }
        let is_key = line.split('=').next().map(str::trim) == Some(name);
        if in_section && !done && is_key {
            out.push(format!("{name} = {value}"));
            done = true;
            continue;
        }
        out.push(line.to_owned());
    }
    if !done {
        if let Some(h) = header {
            out.push(h);
        }
        out.push(format!("{name} = {value}"));
    }
    out.join("\n")
}

/// An `Ok` has the invariants validation promises; an error is a
/// [`ConfigError`] with a message.
fn check_config(text: &str) -> Result<(), TestCaseError> {
    match Settings::from_toml_str(text) {
        Ok(s) => {
            prop_assert!(!s.public_base_url.as_str().ends_with('/'));
            prop_assert!(url::Url::parse(s.public_base_url.as_str()).is_ok());
            prop_assert!(s.idempotency_window.as_secs() >= 1);
            prop_assert!(s.lists.capacity.get() >= 1);
            prop_assert!(s.lists.capacity.get() <= statuslist::domain::allocator::MAX_CAPACITY);
            prop_assert!(Bits::try_from(s.lists.bits.get()).is_ok());
            prop_assert!(s.store.command_timeout.as_millis() >= 1);
            prop_assert!(s.signing.token_lifetime.as_secs() >= 2);
            prop_assert!(s.signing.ttl.as_secs() >= 1);
            prop_assert!(s.jwks.min_ttl <= s.jwks.max_ttl);
            let mut ids: Vec<_> = s.clients.iter().map(|c| c.id.as_str()).collect();
            ids.sort_unstable();
            let n = ids.len();
            ids.dedup();
            prop_assert_eq!(ids.len(), n, "duplicate client ids accepted");
            prop_assert!(s.clients.iter().all(|c| !c.algorithms.is_empty()));
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty());
            let typed = matches!(
                e,
                ConfigError::Load { .. } | ConfigError::Invalid { .. } | ConfigError::File { .. }
            );
            prop_assert!(typed, "{e:?}");
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn config_parsing_never_panics_on_arbitrary_text(
        text in prop_oneof![
            any::<String>(),
            "([a-z_.\\[\\]]{1,12} ?= ?[\"0-9a-z{}\\[\\],. ]{0,16}\n){0,8}",
        ]
    ) {
        check_config(&text)?;
    }

    #[test]
    fn config_parsing_never_panics_on_mutated_valid_configs(m in mutations()) {
        let valid = valid_config();
        prop_assert!(Settings::from_toml_str(&valid).is_ok());
        check_config(&String::from_utf8_lossy(&apply(valid.into_bytes(), &m)))?;
    }

    #[test]
    fn config_parsing_never_panics_on_any_value_for_any_key(
        changes in prop::collection::vec((prop::sample::select(CONFIG_KEYS), toml_value()), 1..4)
    ) {
        let mut config = valid_config();
        for (key, value) in &changes {
            config = override_key(&config, key, value);
        }
        check_config(&config)?;
    }
}

// ---------------------------------------------------------------------------
// The entry listing: the page cut of `domain::entries` against a naive
// merge-and-slice, and the query parser on arbitrary query strings.

/// Two sources of distinct keys, each sorted in `order`, split out of one
/// history: entry `seq` = its position, `updated_at` from a small range so
/// that ties (broken by seq) are common, and a coin for its source.
fn sources(entries: &[(u64, bool)], order: SortOrder) -> (Vec<EntryKey>, Vec<EntryKey>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (seq, (updated_at, in_a)) in (0u64..).zip(entries) {
        let key = EntryKey {
            updated_at: *updated_at,
            seq,
        };
        if *in_a { a.push(key) } else { b.push(key) }
    }
    for v in [&mut a, &mut b] {
        v.sort_unstable();
        if order == SortOrder::Desc {
            v.reverse();
        }
    }
    (a, b)
}

/// The bit length of `n`: how many halvings a binary search over `n + 1`
/// candidates takes at most.
fn bit_len(n: u64) -> u32 {
    u64::BITS - n.leading_zeros()
}

proptest! {
    /// `cut` splits any offset exactly as the full merge does, asks only
    /// for ranks inside each source and O(log) of them, and `merge` from
    /// there gives the page the full merge gives, in both orders and at
    /// every offset (past the end included).
    #[test]
    fn page_cuts_match_a_naive_merge_and_slice(
        entries in prop::collection::vec((0u64..12, any::<bool>()), 0..48),
        limit in 1usize..12,
    ) {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let (a, b) = sources(&entries, order);
            let mut all: Vec<EntryKey> = a.iter().chain(&b).copied().collect();
            all.sort_unstable();
            if order == SortOrder::Desc {
                all.reverse();
            }
            let n = all.len() as u64;
            for offset in 0..=n + 2 {
                let (mut asked_a, mut asked_b) = (0u32, 0u32);
                let (i, j) = cut(
                    offset,
                    order,
                    a.len() as u64,
                    b.len() as u64,
                    |r| {
                        asked_a += 1;
                        a.get(r as usize).copied().ok_or(r)
                    },
                    |r| {
                        asked_b += 1;
                        b.get(r as usize).copied().ok_or(r)
                    },
                )
                .map_err(|r| TestCaseError::fail(format!("rank {r} asked, out of range")))?;
                prop_assert_eq!(i + j, offset.min(n));
                prop_assert!(asked_a <= bit_len(n) && asked_b <= bit_len(n));
                let mut before: Vec<EntryKey> =
                    a[..i as usize].iter().chain(&b[..j as usize]).copied().collect();
                before.sort_unstable();
                if order == SortOrder::Desc {
                    before.reverse();
                }
                prop_assert_eq!(&before[..], &all[..(offset.min(n)) as usize]);
                let page = merge(
                    order,
                    a[i as usize..].iter().map(|k| (*k, k.seq)),
                    b[j as usize..].iter().map(|k| (*k, k.seq)),
                    limit,
                );
                let want: Vec<(EntryKey, u64)> = all
                    .iter()
                    .skip(offset as usize)
                    .take(limit)
                    .map(|k| (*k, k.seq))
                    .collect();
                prop_assert_eq!(page, want);
            }
        }
    }
}

/// A query string of `GET /entries`: the known parameters (and unknown
/// ones) with values at and around their edges, percent-encoded or not.
fn entries_query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "page",
            "limit",
            "status",
            "ref",
            "uri",
            "updatedSince",
            "updatedUntil",
            "sort",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z%+=&]{0,8}",
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            "0",
            "1",
            "100",
            "101",
            "-1",
            "+5",
            "1.5",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "VALID",
            "INVALID,SUSPENDED",
            "VALID,",
            "asc",
            "desc",
            "DESC",
            "https%3A%2F%2Fcrs.example%2Ft%2FA671FED3E9AD",
            "https://crs.example/b/A671FED3E9AD",
            "%",
            "%zz",
            "%00",
            "%C3%A9",
            "%FF",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
        "[0-9]{0,22}",
    ];
    let pair = (name, prop::option::of(value)).prop_map(|(n, v)| match v {
        Some(v) => format!("{n}={v}"),
        None => n,
    });
    prop::collection::vec(pair, 0..8).prop_map(|pairs| pairs.join("&"))
}

/// What an `Ok` of [`EntryFilter::parse`] promises, and an `Err`'s text.
fn check_filter(query: &str) -> Result<(), TestCaseError> {
    match EntryFilter::parse(query, "https://crs.example") {
        Ok(f) => {
            prop_assert!(f.page >= 1);
            prop_assert!((1..=100).contains(&f.limit));
            prop_assert!((f.page - 1).checked_mul(u64::from(f.limit)).is_some());
            prop_assert_eq!(f.offset(), (f.page - 1) * u64::from(f.limit));
            prop_assert!(StatusSet::from_mask(f.statuses.mask()).is_some());
            if let (Some(s), Some(u)) = (f.updated_since, f.updated_until) {
                prop_assert!(s <= u);
            }
        }
        Err(e) => {
            let text = e.to_string();
            prop_assert!(!text.is_empty() && text.len() < 200, "{}", text);
            prop_assert!(text.contains('\''), "names the parameter: {}", text);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn entry_queries_never_panic_on_arbitrary_text(query in "\\PC{0,200}") {
        check_filter(&query)?;
    }

    #[test]
    fn entry_queries_never_panic_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        check_filter(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn entry_queries_never_panic_on_edge_values(query in entries_query()) {
        check_filter(&query)?;
    }
}
