//! The service's key set: one key that signs, and every key a verifier may
//! still meet, published together as the JWKS document.
//!
//! A set is fixed; rotation swaps whole sets ([`super::KeyRing`]), which
//! keeps a replaced signing key published until every token it signed has
//! expired (`exp`) and left the verifiers' caches (`ttl`). Keys listed here
//! as published only (`signing.publish_key_files`) stay until the operator
//! removes them: that is how a new key is published before it signs.

use std::path::Path;

use p256::ecdsa::VerifyingKey;

use super::PublishError;
use super::keys::{PublicJwk, ServiceKey, load_public_pem};

/// The JWKS document, `{"keys": [...]}`, signing key first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Jwks {
    /// The published keys.
    pub keys: Vec<PublicJwk>,
}

/// One signing key plus the public keys of previous (or upcoming) keys.
///
/// Invariant: `published` starts with the signing key's JWK and holds each
/// `kid` once.
#[derive(Debug, Clone)]
pub struct KeySet {
    signing: ServiceKey,
    published: Vec<PublicJwk>,
}

impl KeySet {
    /// A set whose only key is `signing`.
    pub fn new(signing: ServiceKey) -> Self {
        let published = vec![signing.public_jwk().clone()];
        KeySet { signing, published }
    }

    /// Adds a verification-only key to the JWKS. A key already published
    /// (same `kid`, including the signing key) is not added twice.
    pub fn add_public(&mut self, key: &VerifyingKey) {
        let jwk = PublicJwk::from_verifying_key(key);
        if !self.published.iter().any(|p| p.kid == jwk.kid) {
            self.published.push(jwk);
        }
    }

    /// Loads the signing key from a PKCS#8 PEM file and the published-only
    /// keys from PEM files holding either public (SPKI) or private (PKCS#8)
    /// keys, so a retired key file can be listed as it is.
    ///
    /// # Errors
    /// [`PublishError::Io`] or [`PublishError::BadPem`] naming the first file
    /// that cannot be read or parsed.
    pub fn load<P: AsRef<Path>>(
        signing_pem: &Path,
        extra_pems: &[P],
    ) -> Result<Self, PublishError> {
        let mut set = KeySet::new(ServiceKey::load_pem(signing_pem)?);
        for path in extra_pems {
            set.add_public(&load_public_pem(path.as_ref())?);
        }
        Ok(set)
    }

    /// Loads a key directory as `statuslist keygen` fills it: the signing key
    /// is `<dir>/<signing_kid>.pem`, and every other `*.pem` file in `dir`
    /// (private or public) is published, in file-name order.
    ///
    /// # Errors
    /// [`PublishError::Io`] when the directory or a file cannot be read,
    /// [`PublishError::BadPem`] for a file that is not a P-256 key,
    /// [`PublishError::KidMismatch`] when the signing file holds another key
    /// (a renamed file would otherwise sign under a surprising `kid`).
    pub fn load_dir(dir: &Path, signing_kid: &str) -> Result<Self, PublishError> {
        let signing_path = dir.join(format!("{signing_kid}.pem"));
        let signing = ServiceKey::load_pem(&signing_path)?;
        if signing.kid() != signing_kid {
            return Err(PublishError::KidMismatch {
                path: signing_path,
                expected: signing_kid.to_owned(),
                found: signing.kid().to_owned(),
            });
        }
        let read_err = |e| PublishError::io("cannot read key directory", dir, e);
        let mut extra = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.extension().is_some_and(|e| e == "pem") && path != signing_path {
                extra.push(path);
            }
        }
        extra.sort();
        let mut set = KeySet::new(signing);
        for path in extra {
            set.add_public(&load_public_pem(&path)?);
        }
        Ok(set)
    }

    /// The key that signs new tokens.
    pub fn signing_key(&self) -> &ServiceKey {
        &self.signing
    }

    /// Every published key, the signing key first.
    pub fn published(&self) -> &[PublicJwk] {
        &self.published
    }

    /// The published key with this `kid`, if any.
    pub fn find(&self, kid: &str) -> Option<&PublicJwk> {
        self.published.iter().find(|p| p.kid == kid)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.published.clone(),
        }
    }

    /// The JWKS document as JSON text, ready to serve.
    ///
    /// # Errors
    /// [`PublishError::BadJson`] if serialization fails, which plain strings
    /// never make it do.
    pub fn jwks_json(&self) -> Result<String, PublishError> {
        serde_json::to_string(&JwksRef {
            keys: &self.published,
        })
        .map_err(|e| PublishError::json("JWKS", &e))
    }
}

/// Serializes like [`Jwks`] without cloning the keys.
#[derive(serde::Serialize)]
struct JwksRef<'a> {
    keys: &'a [PublicJwk],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_first_and_no_duplicates() {
        let signing = ServiceKey::generate();
        let old = ServiceKey::generate();
        let mut set = KeySet::new(signing.clone());
        set.add_public(old.verifying_key());
        set.add_public(old.verifying_key());
        set.add_public(signing.verifying_key());
        let kids: Vec<_> = set.published().iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [signing.kid(), old.kid()]);
        assert_eq!(set.find(old.kid()), Some(old.public_jwk()));
        assert_eq!(set.find("nope"), None);
        let parsed: Jwks = serde_json::from_str(&set.jwks_json().unwrap()).unwrap();
        assert_eq!(parsed, set.jwks());
    }

    #[test]
    fn load_dir_takes_the_named_signing_key_and_publishes_the_rest() {
        use crate::publish::keys::generate_into_dir;
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = generate_into_dir(dir.path()).unwrap();
        let (b, b_path) = generate_into_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a key").unwrap();

        let set = KeySet::load_dir(dir.path(), a.kid()).unwrap();
        assert_eq!(set.signing_key().kid(), a.kid());
        let kids: Vec<_> = set.published().iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [a.kid(), b.kid()]);

        assert!(matches!(
            KeySet::load_dir(dir.path(), "no-such-kid"),
            Err(PublishError::Io { .. })
        ));
        // b's key stored under a's name: refused, not silently used.
        std::fs::rename(&b_path, dir.path().join("renamed.pem")).unwrap();
        std::fs::copy(dir.path().join("renamed.pem"), dir.path().join("fake.pem")).unwrap();
        let fake_kid = "fake";
        assert!(matches!(
            KeySet::load_dir(dir.path(), fake_kid),
            Err(PublishError::KidMismatch { .. })
        ));
        std::fs::write(dir.path().join("broken.pem"), "garbage").unwrap();
        assert!(matches!(
            KeySet::load_dir(dir.path(), a.kid()),
            Err(PublishError::BadPem { .. })
        ));
    }
}
