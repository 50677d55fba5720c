//! Black-box tests of the publish layer and the `keygen` command.
//!
//! Signatures are checked through an independent path: the public key is
//! taken from our own JWKS document as JSON, turned into a key by
//! `jsonwebtoken` and verified by `jsonwebtoken` (aws-lc-rs), never by the
//! p256 code that signed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::Value;
use sha2::{Digest, Sha256};

use statuslist::domain::codec::{DEFAULT_DECODE_LIMIT, decode_bitstring, decode_lst};
use statuslist::domain::{Bits, CompressedList, Layout, StatusList};
use statuslist::publish::credential::{self, MIN_BITSTRING_BYTES};
use statuslist::publish::keys::{self, PublicJwk, ServiceKey};
use statuslist::publish::{
    KeySet, ListParams, PublishError, cwt, decode_bitstring_credential, decode_cwt_list,
    decode_token_list, jws, sign_bitstring_credential, sign_token_cwt, sign_token_list, token,
};

const ISS: &str = "https://status.example";
const T_URI: &str = "https://status.example/t/0123456789AB";
const B_URI: &str = "https://status.example/b/0123456789AB";
/// 2026-11-23T16:00:00Z
const IAT: u64 = 1_795_449_600;
/// 2100-01-01T00:00:00Z: far enough for `exp` validation to pass.
const EXP: u64 = 4_102_444_800;

fn params(uri: &str) -> ListParams<'_> {
    ListParams {
        iss: ISS,
        uri,
        iat: IAT,
        exp: EXP,
        ttl: 300,
    }
}

fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name)
}

fn ietf_vectors() -> Value {
    let text = std::fs::read_to_string(reference("ietf-token-status-list-vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A key set with a signing key and two rotation keys, as a verifier sees it:
/// the JWKS JSON text parsed by jsonwebtoken.
fn rotated_key_set() -> (KeySet, JwkSet) {
    let mut set = KeySet::new(ServiceKey::generate());
    set.add_public(ServiceKey::generate().verifying_key());
    set.add_public(ServiceKey::generate().verifying_key());
    let jwks: JwkSet = serde_json::from_str(&set.jwks_json().unwrap()).unwrap();
    (set, jwks)
}

/// Verifies `token` with the JWKS key named by its header, through
/// jsonwebtoken only, and returns (header, claims).
fn verify_with_jwks(token: &str, jwks: &JwkSet, sub: &str) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.as_deref().expect("kid in header");
    let jwk = jwks.find(kid).expect("kid is published in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation.set_issuer(&[ISS]);
    validation.sub = Some(sub.to_owned());
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
    (data.header, data.claims)
}

/// Sets some entries to every nonzero value a 2-bit list holds.
fn mark(list: &mut StatusList) -> Vec<(u64, u8)> {
    let last = list.len() - 1;
    let marks = vec![(0, 1), (1, 2), (5, 3), (77, 1), (last / 2, 2), (last, 1)];
    for (idx, value) in &marks {
        list.set(*idx, *value).unwrap();
    }
    marks
}

#[test]
fn token_list_jwt_verifies_with_our_jwks_and_decodes() {
    let (set, jwks) = rotated_key_set();
    let mut list = StatusList::new(Layout::Ietf, Bits::Two, 10_000).unwrap();
    let marks = mark(&mut list);
    let jwt = sign_token_list(&list, &params(T_URI), set.signing_key()).unwrap();

    let (header, claims) = verify_with_jwks(&jwt, &jwks, T_URI);
    assert_eq!(header.typ.as_deref(), Some("statuslist+jwt"));
    assert_eq!(header.kid.as_deref(), Some(set.signing_key().kid()));
    assert_eq!(claims["sub"], T_URI);
    assert_eq!(claims["iss"], ISS);
    assert_eq!(claims["iat"], IAT);
    assert_eq!(claims["exp"], EXP);
    assert_eq!(claims["ttl"], 300);
    assert_eq!(claims["status_list"]["bits"], 2);

    let bytes = decode_lst(
        claims["status_list"]["lst"].as_str().unwrap(),
        DEFAULT_DECODE_LIMIT,
    )
    .unwrap();
    let decoded = StatusList::from_bytes(Layout::Ietf, Bits::Two, 10_000, bytes).unwrap();
    for (idx, value) in &marks {
        assert_eq!(decoded.get(*idx).unwrap(), *value, "entry {idx}");
    }
    assert_eq!(decoded.nonzero().collect::<Vec<_>>().len(), marks.len());

    // Our own reader agrees with the independent path.
    let ours = decode_token_list(
        &jws::verify(&jwt, set.signing_key().verifying_key())
            .unwrap()
            .payload,
        DEFAULT_DECODE_LIMIT,
    )
    .unwrap();
    assert_eq!(ours.list.as_bytes(), list.as_bytes());
}

#[test]
fn bitstring_credential_verifies_with_our_jwks_and_decodes() {
    let (set, jwks) = rotated_key_set();
    for len in [1_000, 131_072, 200_003] {
        let mut list = StatusList::new(Layout::W3c, Bits::Two, len).unwrap();
        let marks = mark(&mut list);
        let jwt = sign_bitstring_credential(&list, &params(B_URI), set.signing_key()).unwrap();

        let (header, vc) = verify_with_jwks(&jwt, &jwks, B_URI);
        assert_eq!(header.typ.as_deref(), Some("vc+jwt"));
        assert_eq!(header.kid.as_deref(), Some(set.signing_key().kid()));
        assert_eq!(
            vc["@context"],
            serde_json::json!(["https://www.w3.org/ns/credentials/v2"])
        );
        assert_eq!(vc["id"], B_URI);
        assert_eq!(
            vc["type"],
            serde_json::json!(["VerifiableCredential", "BitstringStatusListCredential"])
        );
        assert_eq!(vc["issuer"], ISS);
        assert_eq!(vc["validFrom"], "2026-11-23T16:00:00Z");
        assert_eq!(vc["validUntil"], "2100-01-01T00:00:00Z");
        assert_eq!(vc["iss"], ISS);
        assert_eq!(vc["sub"], B_URI);
        assert_eq!(vc["iat"], IAT);
        assert_eq!(vc["exp"], EXP);
        let subject = &vc["credentialSubject"];
        assert_eq!(subject["id"], format!("{B_URI}#list"));
        assert_eq!(subject["type"], "BitstringStatusList");
        assert_eq!(subject["statusPurpose"], "message");
        assert_eq!(subject["statusSize"], 2);
        assert_eq!(
            subject["statusMessage"],
            serde_json::json!([
                {"status": "0x0", "message": "VALID"},
                {"status": "0x1", "message": "INVALID"},
                {"status": "0x2", "message": "SUSPENDED"},
            ])
        );
        assert_eq!(subject["ttl"], 300_000, "ttl is in milliseconds");

        let bytes = decode_bitstring(
            subject["encodedList"].as_str().unwrap(),
            DEFAULT_DECODE_LIMIT,
        )
        .unwrap();
        let expected_len = list.as_bytes().len().max(MIN_BITSTRING_BYTES);
        assert_eq!(bytes.len(), expected_len, "list of {len}");
        let decoded = StatusList::from_decoded(Layout::W3c, Bits::Two, bytes).unwrap();
        for (idx, value) in &marks {
            assert_eq!(decoded.get(*idx).unwrap(), *value, "entry {idx} of {len}");
        }
        assert_eq!(decoded.nonzero().count(), marks.len());

        let ours = decode_bitstring_credential(
            &jws::verify(&jwt, set.signing_key().verifying_key())
                .unwrap()
                .payload,
            DEFAULT_DECODE_LIMIT,
        )
        .unwrap();
        assert_eq!(ours.list, decoded);
        assert_eq!(ours.credential.credential_subject.ttl, Some(300_000));
    }
}

#[test]
fn draft_example_jwt_verifies_with_its_key_and_decodes_to_1bit_16() {
    let vectors = ietf_vectors();
    let mut public = vectors["example_key_jwk"].clone();
    public.as_object_mut().unwrap().remove("d");
    let jwk: Jwk = serde_json::from_value(public.clone()).unwrap();
    let jwt = vectors["example_status_list_jwt"].as_str().unwrap();

    let key = DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation).unwrap();
    assert_eq!(data.header.typ.as_deref(), Some("statuslist+jwt"));
    let claims = data.claims;
    assert_eq!(claims["status_list"]["bits"], 1);
    let bytes = decode_lst(
        claims["status_list"]["lst"].as_str().unwrap(),
        DEFAULT_DECODE_LIMIT,
    )
    .unwrap();
    let list = StatusList::from_bytes(Layout::Ietf, Bits::One, 16, bytes).unwrap();

    let vector = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "1bit-16")
        .unwrap();
    let statuses = vector["statuses"].as_object().unwrap();
    assert_eq!(statuses.len(), 16);
    for (idx, value) in statuses {
        let idx: u64 = idx.parse().unwrap();
        assert_eq!(
            u64::from(list.get(idx).unwrap()),
            value.as_u64().unwrap(),
            "entry {idx}"
        );
    }

    // Our verifier and reader accept the draft's token too, with the key
    // read from the same JWK.
    let ours: PublicJwk = serde_json::from_value(serde_json::json!({
        "kty": public["kty"], "crv": public["crv"], "x": public["x"], "y": public["y"],
        "kid": public["kid"], "use": "sig", "alg": "ES256",
    }))
    .unwrap();
    let parts = jws::verify(jwt, &ours.to_verifying_key().unwrap()).unwrap();
    assert_eq!(parts.header.typ.as_deref(), Some(token::TYP));
    let decoded = decode_token_list(&parts.payload, DEFAULT_DECODE_LIMIT).unwrap();
    assert_eq!(decoded.list, list);
    assert_eq!(decoded.claims.sub, "https://example.com/statuslists/1");
    assert_eq!(decoded.claims.ttl, Some(43_200));
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn assert_is_1bit_16(list: &StatusList) {
    let vectors = ietf_vectors();
    let vector = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "1bit-16")
        .unwrap();
    let statuses = vector["statuses"].as_object().unwrap();
    assert_eq!(statuses.len(), 16);
    assert_eq!(list.len(), 16);
    for (idx, value) in statuses {
        let idx: u64 = idx.parse().unwrap();
        assert_eq!(
            u64::from(list.get(idx).unwrap()),
            value.as_u64().unwrap(),
            "entry {idx}"
        );
    }
}

/// The draft's example CWT, read by the reader that reads ours: its
/// signature verifies with the draft's example key, its `kid` (unprotected
/// there) and `typ` are found, and its list is the 1bit-16 vector.
#[test]
fn draft_example_cwt_verifies_with_its_key_and_decodes_to_1bit_16() {
    let vectors = ietf_vectors();
    let public = &vectors["example_key_jwk"];
    let key: PublicJwk = serde_json::from_value(serde_json::json!({
        "kty": public["kty"], "crv": public["crv"], "x": public["x"], "y": public["y"],
        "kid": public["kid"], "use": "sig", "alg": "ES256",
    }))
    .unwrap();
    let key = key.to_verifying_key().unwrap();
    let example = unhex(vectors["example_status_list_cwt_hex"].as_str().unwrap());
    let parts = cwt::verify(&example, &key).unwrap();
    assert_eq!(parts.alg, Some(-7));
    assert_eq!(parts.kid.as_deref(), Some(&b"12"[..]));
    assert_eq!(parts.typ.as_deref(), Some(cwt::MEDIA_TYPE));
    let decoded = decode_cwt_list(&parts.payload, DEFAULT_DECODE_LIMIT).unwrap();
    assert_eq!(decoded.claims.sub, "https://example.com/statuslists/1");
    assert_eq!(decoded.claims.bits, Bits::One);
    assert_eq!(decoded.claims.ttl, Some(43_200));
    assert_eq!(decoded.claims.iss, None);
    assert!(decoded.claims.exp.unwrap() > decoded.claims.iat);
    assert_is_1bit_16(&decoded.list);

    // Any other key: refused.
    let other = ServiceKey::generate();
    assert!(matches!(
        cwt::verify(&example, other.verifying_key()),
        Err(PublishError::BadSignature)
    ));

    // The draft's CBOR Status List alone (`example_status_list_cbor_hex_1bit_16`),
    // spliced byte for byte as `status_list` (65533) into a minimal claims
    // set {2: "s", 6: 1, 65533: ...}, reads the same.
    let status_list = unhex(
        vectors["example_status_list_cbor_hex_1bit_16"]
            .as_str()
            .unwrap(),
    );
    let mut claims = vec![0xa3, 0x02, 0x61, b's', 0x06, 0x01, 0x19, 0xff, 0xfd];
    claims.extend_from_slice(&status_list);
    let decoded = decode_cwt_list(&claims, DEFAULT_DECODE_LIMIT).unwrap();
    assert_is_1bit_16(&decoded.list);
}

/// Our CWT of the 1bit-16 list decodes, in our reader, to the same statuses
/// as the draft's, and its signature verifies with the public key of our
/// JWKS document.
#[test]
fn our_cwt_verifies_with_our_jwks_and_decodes() {
    let vectors = ietf_vectors();
    let example = unhex(vectors["example_status_list_cwt_hex"].as_str().unwrap());
    let draft = decode_cwt_list(
        &cwt::decode_unverified(&example).unwrap().payload,
        DEFAULT_DECODE_LIMIT,
    )
    .unwrap();
    let set = KeySet::new(ServiceKey::generate());
    let jwks: Value = serde_json::from_str(&set.jwks_json().unwrap()).unwrap();
    let published: PublicJwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let compressed = CompressedList::new(draft.list.as_bytes());
    let ours = sign_token_cwt(
        &draft.list,
        &compressed,
        &params(T_URI),
        Some("https://status.example/t/aggregation"),
        set.signing_key(),
    )
    .unwrap();
    let parts = cwt::verify(&ours, &published.to_verifying_key().unwrap()).unwrap();
    assert_eq!(parts.kid.as_deref(), Some(published.kid.as_bytes()));
    let decoded = decode_cwt_list(&parts.payload, DEFAULT_DECODE_LIMIT).unwrap();
    assert_is_1bit_16(&decoded.list);
    assert_eq!(decoded.claims.sub, T_URI);
    assert_eq!(decoded.claims.iss.as_deref(), Some(ISS));
    assert_eq!((decoded.claims.iat, decoded.claims.exp), (IAT, Some(EXP)));
}

/// The thumbprint computed here from the JWKS JSON alone: the required EC
/// members in lexicographic order (a BTreeMap), compact JSON, SHA-256.
fn independent_thumbprint(jwk: &Value) -> String {
    let required: BTreeMap<&str, &Value> = ["crv", "kty", "x", "y"]
        .into_iter()
        .map(|m| (m, &jwk[m]))
        .collect();
    let canonical = serde_json::to_string(&required).unwrap();
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[test]
fn kid_is_the_rfc7638_thumbprint() {
    let (set, jwks) = rotated_key_set();
    let doc: Value = serde_json::from_str(&set.jwks_json().unwrap()).unwrap();
    for (jwk, parsed) in doc["keys"].as_array().unwrap().iter().zip(&jwks.keys) {
        let kid = jwk["kid"].as_str().unwrap();
        assert_eq!(kid, independent_thumbprint(jwk));
        assert_eq!(kid, parsed.thumbprint(ThumbprintHash::SHA256).unwrap());
    }

    // A known answer: the draft's example key, in a PKCS#8 PEM written by
    // Python's `cryptography` from the JWK's `d`; its thumbprint was computed
    // with Python's hashlib over the canonical JSON.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ietf-example-key.pem");
    let key = ServiceKey::load_pem(&fixture).unwrap();
    assert_eq!(key.kid(), "lMu2ifRhv0BMzdgKWoXvEDBZTHIT-vZ2dlRDAa0Mc8g");
    let example = &ietf_vectors()["example_key_jwk"];
    assert_eq!(key.public_jwk().x, example["x"].as_str().unwrap());
    assert_eq!(key.public_jwk().y, example["y"].as_str().unwrap());
    assert_eq!(key.kid(), independent_thumbprint(example));
}

#[test]
fn pem_round_trip_keeps_the_kid_and_debug_hides_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.pem");
    let key = ServiceKey::generate();
    key.save_pem(&path).unwrap();
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let loaded = ServiceKey::load_pem(&path).unwrap();
    assert_eq!(loaded.kid(), key.kid());
    assert_eq!(loaded.public_jwk(), key.public_jwk());

    // A token signed by the loaded key verifies with the original's public key.
    let list = StatusList::new(Layout::Ietf, Bits::One, 8).unwrap();
    let jwt = sign_token_list(&list, &params(T_URI), &loaded).unwrap();
    jws::verify(&jwt, key.verifying_key()).unwrap();

    let scalar: [u8; 32] = p256::SecretKey::from_pkcs8_pem(&pem)
        .unwrap()
        .to_bytes()
        .into();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut set = KeySet::new(loaded.clone());
    set.add_public(ServiceKey::generate().verifying_key());
    for debug in [
        format!("{key:?}"),
        format!("{loaded:#?}"),
        format!("{set:?}"),
    ] {
        assert!(debug.contains(key.kid()), "Debug names the key: {debug}");
        for secret in [
            hex_lower(&scalar),
            hex_lower(&scalar).to_uppercase(),
            URL_SAFE_NO_PAD.encode(scalar),
            pem_body.clone(),
            format!("{scalar:?}"),
        ] {
            assert!(!debug.contains(&secret), "private key leaked in {debug}");
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn jwks_publishes_every_rotation_key_with_all_members() {
    let dir = tempfile::tempdir().unwrap();
    let (signing, signing_path) = keys::generate_into_dir(dir.path()).unwrap();
    // A retired key kept as its private PEM, and one given as a public PEM.
    let (retired, retired_path) = keys::generate_into_dir(dir.path()).unwrap();
    let other = ServiceKey::generate();
    let public_path = dir.path().join("other.pub.pem");
    std::fs::write(
        &public_path,
        other
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();

    let set = KeySet::load(&signing_path, &[&retired_path, &public_path, &signing_path]).unwrap();
    assert_eq!(set.signing_key().kid(), signing.kid());
    let doc: Value = serde_json::from_str(&set.jwks_json().unwrap()).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [signing.kid(), retired.kid(), other.kid()]);

    let members: BTreeSet<&str> = ["kty", "crv", "x", "y", "kid", "use", "alg"].into();
    for key in keys {
        let object = key.as_object().unwrap();
        assert_eq!(
            object.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            members
        );
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "ES256");
    }

    // A token signed before the rotation still verifies through the JWKS.
    let list = StatusList::new(Layout::Ietf, Bits::One, 8).unwrap();
    let old_jwt = sign_token_list(&list, &params(T_URI), &retired).unwrap();
    let jwks: JwkSet = serde_json::from_value(doc).unwrap();
    let (header, _) = verify_with_jwks(&old_jwt, &jwks, T_URI);
    assert_eq!(header.kid.as_deref(), Some(retired.kid()));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let key = ServiceKey::generate();
    let ietf = StatusList::new(Layout::Ietf, Bits::Two, 64).unwrap();
    let w3c = StatusList::new(Layout::W3c, Bits::Two, 64).unwrap();
    let w3c_one = StatusList::new(Layout::W3c, Bits::One, 64).unwrap();
    assert!(matches!(
        sign_token_list(&w3c, &params(T_URI), &key),
        Err(PublishError::WrongLayout { .. })
    ));
    assert!(matches!(
        sign_bitstring_credential(&ietf, &params(B_URI), &key),
        Err(PublishError::WrongLayout { .. })
    ));
    let err = sign_bitstring_credential(&w3c_one, &params(B_URI), &key).unwrap_err();
    assert!(matches!(err, PublishError::WrongBits { .. }));
    assert!(err.to_string().contains("2-bit"), "{err}");
    assert!(
        credential::build_credential(
            &w3c,
            &ListParams {
                exp: IAT,
                ..params(B_URI)
            }
        )
        .is_err()
    );

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let public_only = dir.path().join("public.pem");
    std::fs::write(
        &public_only,
        key.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    let missing = dir.path().join("missing.pem");
    for (why, path) in [
        ("garbage", &garbage),
        ("public key as signing key", &public_only),
    ] {
        let err = ServiceKey::load_pem(path).unwrap_err();
        assert!(matches!(err, PublishError::BadPem { .. }), "{why}: {err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{why}: {err}"
        );
    }
    assert!(matches!(
        ServiceKey::load_pem(&missing),
        Err(PublishError::Io { .. })
    ));
    let good = dir.path().join("good.pem");
    key.save_pem(&good).unwrap();
    assert!(matches!(
        KeySet::load(&good, &[&garbage]),
        Err(PublishError::BadPem { .. })
    ));
    assert!(matches!(
        KeySet::load(&good, &[&missing]),
        Err(PublishError::Io { .. })
    ));
    assert!(matches!(
        KeySet::load(&garbage, &[&good]),
        Err(PublishError::BadPem { .. })
    ));
}

fn statuslist_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_statuslist"))
}

#[test]
fn keygen_prints_the_kid_of_the_key_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("keys");
    let output = statuslist_bin()
        .arg("keygen")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let kid = stdout.trim_end();
    assert_eq!(stdout, format!("{kid}\n"), "stdout is the kid alone");

    let files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, [out_dir.join(format!("{kid}.pem"))]);
    let key = ServiceKey::load_pem(&files[0]).unwrap();
    assert_eq!(key.kid(), kid);
    assert_eq!(
        independent_thumbprint(&serde_json::to_value(key.public_jwk()).unwrap()),
        kid
    );

    // A second run in the same directory adds a different key.
    let again = statuslist_bin()
        .arg("keygen")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_ne!(String::from_utf8(again.stdout).unwrap(), stdout);
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 2);
}

#[test]
fn keygen_with_a_bad_out_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let output = statuslist_bin()
        .arg("keygen")
        .arg("--out")
        .arg(file.join("keys"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(output.status.code(), Some(1), "an error exit, not a crash");
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("cannot create directory"), "{stderr}");
    assert!(stderr.contains("plain-file"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );

    let missing_arg = statuslist_bin().arg("keygen").output().unwrap();
    assert!(!missing_arg.status.success());
    assert!(
        String::from_utf8(missing_arg.stderr)
            .unwrap()
            .contains("--out")
    );
}

#[test]
fn help_lists_the_commands() {
    // With no subcommand the binary serves (README: `cargo run --release`);
    // the command list is under --help.
    let output = statuslist_bin().arg("--help").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("Usage"), "{stdout}");
    for command in ["serve", "keygen", "issue", "revoke", "check"] {
        assert!(stdout.contains(command), "{command}: {stdout}");
    }
}
