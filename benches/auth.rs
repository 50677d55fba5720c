//! Cost of authenticating a request: the full check of a valid ES256
//! `/issue` JWT (Content-Type, parse, header and claim checks, key lookup,
//! signature) next to bare ES256 verifications of the same token:
//!
//! - `bare_parsed_aws_lc_verify`: aws-lc-rs with the key parsed once, as the
//!   service verifies (the key of a JWKS is parsed when the set is fetched);
//! - `bare_jsonwebtoken_verify`: jsonwebtoken on aws-lc-rs, which parses the
//!   key again on every call (what the service did before);
//! - `bare_p256_verify`: RustCrypto's `p256` with a parsed key, the
//!   pure-Rust alternative.
//!
//! Target: full ≥ 0.8× the bare parsed-key throughput.
//!
//! Run: `cargo bench --bench auth`

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;
use statuslist::auth::Authenticator;
use statuslist::config::Settings;

const NOW: u64 = 1_758_038_912;

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn bench(c: &mut Criterion) {
    let sk = SigningKey::random(&mut rand::rngs::OsRng);
    let point = sk.verifying_key().to_encoded_point(false);
    let (x, y) = (b64(point.x().unwrap()), b64(point.y().unwrap()));
    let toml = format!(
        "public_base_url = \"https://status.example.com\"\n[[clients]]\nid = \"clientId-abcdef\"\nformat = \"token\"\n\
         jwks = {{ keys = [{{ kty = \"EC\", crv = \"P-256\", kid = \"k1\", x = \"{x}\", y = \"{y}\" }}] }}\n"
    );
    let auth = Authenticator::new(&Settings::from_toml_str(&toml).unwrap()).unwrap();

    let header = json!({"alg": "ES256", "typ": "JWT", "kid": "k1"});
    let payload = json!({
        "iss": "clientId-abcdef",
        "iat": NOW,
        "jti": "bcea4e51-6eca-4547-8d18-4b971b72c146",
        "statusExpiry": NOW + 86_400,
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig: Signature = sk.sign(input.as_bytes());
    let sig = b64(&sig.to_bytes());
    let token = format!("{input}.{sig}");
    let key = jsonwebtoken::DecodingKey::from_ec_components(&x, &y).unwrap();
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        point.as_bytes(),
    )
    .unwrap();
    let raw_sig = URL_SAFE_NO_PAD.decode(&sig).unwrap();
    let p256_key = *sk.verifying_key();
    let p256_sig = Signature::from_slice(&raw_sig).unwrap();

    // Sanity: both paths accept the token.
    assert!(
        futures::executor::block_on(auth.check_issue(
            Some("application/jwt"),
            token.as_bytes(),
            NOW
        ))
        .is_ok()
    );
    assert!(
        jsonwebtoken::crypto::verify(&sig, input.as_bytes(), &key, jsonwebtoken::Algorithm::ES256)
            .unwrap()
    );

    let mut g = c.benchmark_group("auth_es256");
    g.throughput(Throughput::Elements(1));
    // The inline JWKS never awaits, so a minimal executor measures the check
    // itself rather than a runtime's scheduling.
    g.bench_function("full_check_issue", |b| {
        b.iter(|| {
            futures::executor::block_on(auth.check_issue(
                black_box(Some("application/jwt")),
                black_box(token.as_bytes()),
                NOW,
            ))
        })
    });
    g.bench_function("bare_parsed_aws_lc_verify", |b| {
        b.iter(|| {
            // Decoding the signature is part of what the service does per call.
            let raw = URL_SAFE_NO_PAD.decode(black_box(&sig)).unwrap();
            parsed.verify_sig(black_box(input.as_bytes()), &raw)
        })
    });
    g.bench_function("bare_p256_verify", |b| {
        use p256::ecdsa::signature::Verifier;
        b.iter(|| p256_key.verify(black_box(input.as_bytes()), black_box(&p256_sig)))
    });
    g.bench_function("bare_jsonwebtoken_verify", |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(
                black_box(&sig),
                black_box(input.as_bytes()),
                &key,
                jsonwebtoken::Algorithm::ES256,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
