//! Client verifying keys: a client's JWKS document parsed once into
//! ready-to-use keys indexed by `kid` (aws-lc-rs [`ParsedPublicKey`]s), so
//! verifying a request never re-parses a JWK nor the key inside it; and the
//! recognition of the public demo key shipped in `examples/`, which only
//! development mode accepts.
//!
//! Both the configuration (a `jwks` or `jwks_file` read at load time) and
//! request authentication (a fetched `jwks_uri`) need these, so they live
//! here, below both: `config` and `auth` import this module, and it imports
//! only [`crate::domain`].
//!
//! Only public signing keys of the kinds the service accepts are kept (EC
//! P-256/P-384, OKP Ed25519, RSA of at least 2048 bits); keys marked
//! `use: enc`, keys whose `key_ops` exclude `verify`, keys without a `kid`
//! and keys of other kinds are skipped rather than failing the whole set, so
//! an issuer can publish unrelated keys next to its signing keys.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::domain::SigAlg;

/// The smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Room for the longest signature any accepted key can verify (PS256 with
/// an 8,192-bit modulus: 1,024 bytes), as the base64 decoder estimates it
/// (three bytes per four characters, rounded up). A longer signature fails
/// to decode into it, and could not have verified anyway.
const SIGNATURE_BUFFER: usize = 1032;

/// Why a JWKS document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// Not JSON, or not an object with a `keys` array.
    #[error("not a JWKS document (a JSON object with a \"keys\" array)")]
    NotJwks,
    /// No key in the set is usable for verification.
    #[error("no usable verification key (EC P-256/P-384, Ed25519 or RSA >= 2048 bits, with a kid)")]
    NoUsableKey,
}

/// One verification key and the single algorithm it may be used with.
///
/// Binding the algorithm to the key (from its curve or type, and from the
/// JWK's own `alg` when present) is what stops algorithm confusion: a token
/// cannot pick how its key is interpreted.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: SigAlg,
    /// The key, parsed once when the set is read. `None` when the JWK's
    /// material is not a key of its kind (a point off the curve, an RSA
    /// modulus that does not form a key): such a key stays in the set and
    /// verifies nothing, so a request naming it fails at the signature check
    /// as it always did (not at the `kid` lookup), and which sets are usable
    /// does not change.
    key: Option<ParsedPublicKey>,
}

impl VerifyingKey {
    /// The algorithm this key verifies.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }

    /// Checks `signature` (base64url, as in the token) over `signing_input`
    /// (`header.payload` as sent). False for a wrong algorithm, a malformed
    /// signature, a key that did not parse or a signature that does not
    /// verify.
    pub fn verify(&self, alg: SigAlg, signing_input: &[u8], signature: &str) -> bool {
        if alg != self.alg {
            return false;
        }
        let Some(key) = &self.key else {
            return false;
        };
        // The same decoder (and so the same accepted spellings) as
        // jsonwebtoken's, without its per-call allocation.
        let mut raw = [0u8; SIGNATURE_BUFFER];
        match URL_SAFE_NO_PAD.decode_slice(signature, &mut raw) {
            Ok(len) => raw
                .get(..len)
                .is_some_and(|sig| key.verify_sig(signing_input, sig).is_ok()),
            Err(_) => false,
        }
    }

    /// The parsed key, if the JWK held one (for benchmarks comparing against
    /// the bare library).
    pub fn parsed_key(&self) -> Option<&ParsedPublicKey> {
        self.key.as_ref()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .field("parsed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// The jsonwebtoken algorithm of a [`SigAlg`].
pub fn jwt_alg(alg: SigAlg) -> Algorithm {
    match alg {
        SigAlg::Es256 => Algorithm::ES256,
        SigAlg::Es384 => Algorithm::ES384,
        SigAlg::EdDsa => Algorithm::EdDSA,
        SigAlg::Ps256 => Algorithm::PS256,
    }
}

/// A parsed JWKS: usable keys by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
    skipped: usize,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl KeySet {
    /// Parses a JWKS document from its JSON bytes.
    ///
    /// # Errors
    /// [`KeySetError::NotJwks`] for anything but a JSON object with a `keys`
    /// array, [`KeySetError::NoUsableKey`] when every key was skipped.
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeySetError> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|_| KeySetError::NotJwks)?;
        Self::from_value(&doc)
    }

    /// Parses a JWKS document already read as JSON (inline in the
    /// configuration).
    ///
    /// # Errors
    /// As [`KeySet::from_json`].
    pub fn from_value(doc: &Value) -> Result<Self, KeySetError> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeySetError::NotJwks)?;
        let mut set = KeySet::default();
        for jwk in keys {
            match parse_jwk(jwk) {
                // The first key with a kid wins; a duplicate kid is ambiguous,
                // so later ones are skipped.
                Some((kid, key)) if !set.keys.contains_key(&kid) => {
                    set.keys.insert(kid, key);
                }
                _ => set.skipped += 1,
            }
        }
        if set.keys.is_empty() {
            return Err(KeySetError::NoUsableKey);
        }
        Ok(set)
    }

    /// The key with this `kid`, if the set has it.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the set holds no usable key (never for a parsed set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys of the document were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

/// Decoded length of a base64url member, or `None` if absent or malformed.
fn b64_len(jwk: &Value, member: &str) -> Option<Vec<u8>> {
    let s = jwk.get(member)?.as_str()?;
    URL_SAFE_NO_PAD.decode(s).ok()
}

fn parse_jwk(jwk: &Value) -> Option<(String, VerifyingKey)> {
    let kid = jwk.get("kid")?.as_str()?.to_owned();
    if kid.is_empty() {
        return None;
    }
    if let Some(u) = jwk.get("use")
        && u.as_str() != Some("sig")
    {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array()?;
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return None;
        }
    }
    let (alg, key) = match jwk.get("kty")?.as_str()? {
        "EC" => {
            let (alg, len) = match jwk.get("crv")?.as_str()? {
                "P-256" => (SigAlg::Es256, 32),
                "P-384" => (SigAlg::Es384, 48),
                _ => return None,
            };
            let x = b64_len(jwk, "x")?;
            let y = b64_len(jwk, "y")?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let curve = if alg == SigAlg::Es256 {
                &ECDSA_P256_SHA256_FIXED
            } else {
                &ECDSA_P384_SHA384_FIXED
            };
            (alg, ParsedPublicKey::new(curve, &point).ok())
        }
        "OKP" => {
            if jwk.get("crv")?.as_str()? != "Ed25519" {
                return None;
            }
            let x = b64_len(jwk, "x")?;
            if x.len() != 32 {
                return None;
            }
            (SigAlg::EdDsa, ParsedPublicKey::new(&ED25519, &x).ok())
        }
        "RSA" => {
            let n = b64_len(jwk, "n")?;
            let e = b64_len(jwk, "e")?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES || e.is_empty() {
                return None;
            }
            // The 2,048–8,192-bit range of the algorithm is checked when
            // verifying, as before: a larger key stays in the set and
            // verifies nothing.
            let parsed = RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&RSA_PSS_2048_8192_SHA256)
                .ok();
            (SigAlg::Ps256, parsed)
        }
        _ => return None,
    };
    // A JWK that names its algorithm is only used with that algorithm.
    if let Some(a) = jwk.get("alg")
        && a.as_str() != Some(alg.name())
    {
        return None;
    }
    Some((kid, VerifyingKey { alg, key }))
}

/// The demo clients' private key (PKCS#8 PEM), shipped for trying the
/// service; never use it outside development.
pub const DEMO_CLIENT_KEY_PEM: &str = include_str!("../examples/demo-client.key.pem");

/// The public key (uncompressed P-256 point, without the 0x04 tag) of the
/// demo key pair shipped in `examples/`, derived from its private key so
/// that no copy of the JWKS, whatever its `kid`, can slip through.
static DEMO_PUBLIC_KEY: std::sync::LazyLock<Option<Vec<u8>>> = std::sync::LazyLock::new(|| {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::DecodePrivateKey;
    let secret = p256::SecretKey::from_pkcs8_pem(DEMO_CLIENT_KEY_PEM).ok()?;
    let point = secret.public_key().to_encoded_point(false);
    point.as_bytes().get(1..).map(<[u8]>::to_vec)
});

/// Whether `jwk` is the public half of the shipped demo key: an EC P-256 key
/// with the demo key's coordinates, whatever its `kid`, `use` or `alg`. The
/// coordinates are decoded the way [`KeySet`] decodes them, so every key a
/// client could verify with is recognised.
pub fn is_demo_key(jwk: &Value) -> bool {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    if member("kty") != Some("EC") || member("crv") != Some("P-256") {
        return false;
    }
    let coordinate = |name: &str| member(name).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    let (Some(x), Some(y), Some(demo)) = (coordinate("x"), coordinate("y"), &*DEMO_PUBLIC_KEY)
    else {
        return false;
    };
    demo.len() == x.len() + y.len() && demo[..x.len()] == x[..] && demo[x.len()..] == y[..]
}

/// Whether a JWKS document holds the shipped demo key.
pub fn jwks_has_demo_key(doc: &Value) -> bool {
    doc.get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| keys.iter().any(is_demo_key))
}

/// Removes the shipped demo key from a JWKS document (a fetched one, outside
/// development mode) and returns how many keys were removed.
pub fn remove_demo_keys(doc: &mut Value) -> usize {
    let Some(keys) = doc.get_mut("keys").and_then(Value::as_array_mut) else {
        return 0;
    };
    let before = keys.len();
    keys.retain(|k| !is_demo_key(k));
    before - keys.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(n: usize) -> String {
        URL_SAFE_NO_PAD.encode(vec![7u8; n])
    }

    #[test]
    fn keeps_signing_keys_and_skips_the_rest() {
        let doc = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "a", "x": b64(32), "y": b64(32)},
            {"kty": "EC", "crv": "P-384", "kid": "b", "x": b64(48), "y": b64(48), "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "c", "x": b64(32)},
            {"kty": "RSA", "kid": "d", "n": b64(256), "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": b64(128), "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "x": b64(32), "y": b64(32), "use": "enc"},
            {"kty": "EC", "crv": "P-256", "kid": "ops", "x": b64(32), "y": b64(32), "key_ops": ["encrypt"]},
            {"kty": "EC", "crv": "P-256", "kid": "alg", "x": b64(32), "y": b64(32), "alg": "ES384"},
            {"kty": "EC", "crv": "P-256", "x": b64(32), "y": b64(32)},
            {"kty": "EC", "crv": "secp256k1", "kid": "k", "x": b64(32), "y": b64(32)},
            {"kty": "EC", "crv": "P-256", "kid": "short", "x": b64(31), "y": b64(32)},
            {"kty": "oct", "kid": "hmac", "k": b64(32)},
            {"kty": "EC", "crv": "P-256", "kid": "a", "x": b64(32), "y": b64(32)},
            "garbage"
        ]});
        let set = KeySet::from_value(&doc).unwrap();
        assert_eq!(set.len(), 4);
        assert_eq!(set.get("a").unwrap().alg(), SigAlg::Es256);
        assert_eq!(set.get("b").unwrap().alg(), SigAlg::Es384);
        assert_eq!(set.get("c").unwrap().alg(), SigAlg::EdDsa);
        assert_eq!(set.get("d").unwrap().alg(), SigAlg::Ps256);
        assert_eq!(set.skipped(), 10);
        for kid in ["small", "enc", "ops", "alg", "k", "short", "hmac"] {
            assert!(set.get(kid).is_none(), "{kid}");
        }
    }

    /// Signs a message with a test key.
    type Sign = Box<dyn Fn(&[u8]) -> Vec<u8>>;

    /// A real key of each accepted kind: its JWK and a signer.
    fn real_keys() -> Vec<(SigAlg, Value, Sign)> {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
            Ed25519KeyPair, KeyPair, RSA_PSS_SHA256,
        };
        let ec = |alg, kid: &str, crv: &str| {
            let pair = EcdsaKeyPair::generate(alg).unwrap();
            let point = pair.public_key().as_ref().to_vec();
            let n = (point.len() - 1) / 2;
            let jwk = json!({"kty": "EC", "crv": crv, "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..=n]),
                "y": URL_SAFE_NO_PAD.encode(&point[1 + n..])});
            let sign: Sign = Box::new(move |m: &[u8]| {
                pair.sign(&SystemRandom::new(), m)
                    .unwrap()
                    .as_ref()
                    .to_vec()
            });
            (jwk, sign)
        };
        let (p256, p256_sign) = ec(&ECDSA_P256_SHA256_FIXED_SIGNING, "p256", "P-256");
        let (p384, p384_sign) = ec(&ECDSA_P384_SHA384_FIXED_SIGNING, "p384", "P-384");
        let ed = Ed25519KeyPair::generate().unwrap();
        let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
            "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref())});
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let parts = PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        let rsa_jwk = json!({"kty": "RSA", "kid": "rsa",
            "n": URL_SAFE_NO_PAD.encode(&parts.n), "e": URL_SAFE_NO_PAD.encode(&parts.e)});
        vec![
            (SigAlg::Es256, p256, p256_sign),
            (SigAlg::Es384, p384, p384_sign),
            (
                SigAlg::EdDsa,
                ed_jwk,
                Box::new(move |m: &[u8]| ed.sign(m).as_ref().to_vec()),
            ),
            (
                SigAlg::Ps256,
                rsa_jwk,
                Box::new(move |m: &[u8]| {
                    let mut sig = vec![0; rsa.public_modulus_len()];
                    rsa.sign(&RSA_PSS_SHA256, &SystemRandom::new(), m, &mut sig)
                        .unwrap();
                    sig
                }),
            ),
        ]
    }

    /// The parsed keys decide exactly as jsonwebtoken's verification of the
    /// same JWK did (what the service used before keys were parsed once):
    /// valid signatures, altered ones, other lengths, other spellings of
    /// base64, other algorithms and other messages.
    #[test]
    fn parsed_keys_decide_as_jsonwebtoken_does() {
        let input = b"eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0";
        for (alg, jwk, sign) in real_keys() {
            let set = KeySet::from_value(&json!({"keys": [jwk.clone()]})).unwrap();
            let key = set.get(jwk["kid"].as_str().unwrap()).unwrap();
            assert_eq!(key.alg(), alg);
            assert!(key.parsed_key().is_some(), "{alg:?}");
            let jwt_key = jsonwebtoken::DecodingKey::from_jwk(
                &serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone()).unwrap(),
            )
            .unwrap();
            let sig = sign(input);
            let good = URL_SAFE_NO_PAD.encode(&sig);
            let mut flipped = sig.clone();
            flipped[sig.len() / 2] ^= 1;
            let mut longer = sig.clone();
            longer.push(0);
            let mut candidates = vec![
                good.clone(),
                URL_SAFE_NO_PAD.encode(&flipped),
                URL_SAFE_NO_PAD.encode(&sig[1..]),
                URL_SAFE_NO_PAD.encode(&longer),
                URL_SAFE_NO_PAD.encode(vec![0u8; 2000]),
                format!("{good}="),
                format!("{good}A"),
                good.replace('-', "+").replace('_', "/"),
                String::new(),
                "!!!!".into(),
            ];
            // A non-canonical last character (trailing bits set).
            let mut last = good.clone().into_bytes();
            if let Some(c) = last.last_mut() {
                *c = if *c == b'A' { b'B' } else { b'A' };
            }
            candidates.push(String::from_utf8(last).unwrap());
            for candidate in &candidates {
                for (message, claimed) in [
                    (&input[..], alg),
                    (&b"other message"[..], alg),
                    (&input[..], SigAlg::Es256),
                ] {
                    let ours = key.verify(claimed, message, candidate);
                    let theirs = claimed == alg
                        && jsonwebtoken::crypto::verify(candidate, message, &jwt_key, jwt_alg(alg))
                            .unwrap_or(false);
                    assert_eq!(ours, theirs, "{alg:?} {claimed:?} {candidate}");
                }
            }
            assert!(key.verify(alg, input, &good), "{alg:?}");
        }
    }

    /// A key whose material is not a key of its kind stays in the set (the
    /// request naming it fails at the signature, not at the kid lookup) and
    /// verifies nothing.
    #[test]
    fn unparsable_keys_stay_and_verify_nothing() {
        let set = KeySet::from_value(&json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "off-curve", "x": b64(32), "y": b64(32)},
        ]}))
        .unwrap();
        let key = set.get("off-curve").unwrap();
        assert!(key.parsed_key().is_none());
        assert!(!key.verify(SigAlg::Es256, b"a.b", &URL_SAFE_NO_PAD.encode([1u8; 64])));
    }

    #[test]
    fn refuses_documents_without_usable_keys() {
        assert_eq!(
            KeySet::from_json(b"nope").unwrap_err(),
            KeySetError::NotJwks
        );
        assert_eq!(KeySet::from_json(b"{}").unwrap_err(), KeySetError::NotJwks);
        assert_eq!(
            KeySet::from_json(br#"{"keys":[]}"#).unwrap_err(),
            KeySetError::NoUsableKey
        );
    }
}
