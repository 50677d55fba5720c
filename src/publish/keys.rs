//! Service signing keys: ES256 (P-256) key pairs, their PKCS#8 PEM files, their
//! public JWK and their `kid`.
//!
//! The `kid` is the RFC 7638 JWK thumbprint (SHA-256) of the public key, so it
//! is derived, never chosen: the same key always gets the same `kid`, on every
//! replica and after every reload, and a verifier can recompute it.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, LineEnding};
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use super::PublishError;

/// A P-256 public key as a JWK, with the members this service publishes:
/// `kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`.
///
/// Invariant when built by this module: `kid` is the RFC 7638 thumbprint of
/// (`crv`, `kty`, `x`, `y`). A deserialized one is only checked by
/// [`PublicJwk::to_verifying_key`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicJwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// The affine x coordinate, 32 bytes, base64url without padding.
    pub x: String,
    /// The affine y coordinate, 32 bytes, base64url without padding.
    pub y: String,
    /// The RFC 7638 thumbprint of the key.
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Always `ES256`.
    pub alg: String,
}

impl PublicJwk {
    /// The JWK of a P-256 public key, with its thumbprint as `kid`.
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        let point = key.to_encoded_point(false);
        // An uncompressed SEC1 point of a valid key is 0x04 || x || y, 65 bytes;
        // `as_bytes` never fails, unlike the Option-returning accessors.
        let raw = point.as_bytes();
        let (x, y) = match raw.get(1..33).zip(raw.get(33..65)) {
            Some((x, y)) => (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
            None => (String::new(), String::new()),
        };
        let kid = thumbprint(&x, &y);
        PublicJwk {
            kty: "EC".to_owned(),
            crv: "P-256".to_owned(),
            x,
            y,
            kid,
            use_: "sig".to_owned(),
            alg: "ES256".to_owned(),
        }
    }

    /// The verification key this JWK describes (for verifiers and the `check`
    /// command).
    ///
    /// # Errors
    /// [`PublishError::BadJwk`] when `kty`/`crv` are not EC/P-256, the
    /// coordinates are not 32 bytes of base64url, or the point is not on the
    /// curve.
    pub fn to_verifying_key(&self) -> Result<VerifyingKey, PublishError> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(PublishError::BadJwk("kty must be EC and crv P-256"));
        }
        let decode = |c: &str| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or(PublishError::BadJwk(
                    "x and y must be 32 bytes of base64url without padding",
                ))
        };
        let mut sec1 = Vec::with_capacity(65);
        sec1.push(0x04);
        sec1.extend_from_slice(&decode(&self.x)?);
        sec1.extend_from_slice(&decode(&self.y)?);
        VerifyingKey::from_sec1_bytes(&sec1)
            .map_err(|_| PublishError::BadJwk("the point is not on the curve"))
    }
}

/// The RFC 7638 thumbprint of a P-256 key given its base64url coordinates:
/// SHA-256 over `{"crv":"P-256","kty":"EC","x":…,"y":…}` (required members
/// only, in lexicographic order, no whitespace), base64url without padding.
pub fn thumbprint(x: &str, y: &str) -> String {
    // x and y are base64url, so they never need JSON escaping and the
    // canonical form can be written directly.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The service's ES256 signing key, with its public JWK computed once.
///
/// Its Debug output shows the `kid` only: the private scalar never leaves
/// this type except through [`ServiceKey::save_pem`].
#[derive(Clone)]
pub struct ServiceKey {
    signing: SigningKey,
    jwk: PublicJwk,
    /// The `x5c` header of the tokens it signs: its X.509 certificate chain,
    /// leaf first, each certificate standard base64 of its DER (RFC 7515
    /// §4.1.6). Invariant: the leaf certifies this key.
    x5c: Option<Arc<[String]>>,
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl ServiceKey {
    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::random(&mut OsRng))
    }

    fn from_signing_key(signing: SigningKey) -> Self {
        let jwk = PublicJwk::from_verifying_key(signing.verifying_key());
        ServiceKey {
            signing,
            jwk,
            x5c: None,
        }
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) P-256 key.
    ///
    /// # Errors
    /// [`PublishError::BadPem`] when the text is not such a key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PublishError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_signing_key)
            .map_err(|_| PublishError::BadPem {
                what: "key text".to_owned(),
                expected: "PKCS#8 P-256 private key",
            })
    }

    /// Loads a key file written by [`ServiceKey::save_pem`] (or by
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    ///
    /// # Errors
    /// [`PublishError::Io`] when the file cannot be read,
    /// [`PublishError::BadPem`] when it is not a PKCS#8 P-256 key.
    pub fn load_pem(path: &Path) -> Result<Self, PublishError> {
        let text = read_key_file(path)?;
        Self::from_pkcs8_pem(&text).map_err(|_| PublishError::BadPem {
            what: path.display().to_string(),
            expected: "PKCS#8 P-256 private key",
        })
    }

    /// Writes the key as PKCS#8 PEM to a new file, readable by its owner only
    /// (mode 0600 on unix).
    ///
    /// The file must not exist yet: overwriting a signing key by mistake
    /// would invalidate every token it signed once its JWK leaves the JWKS.
    ///
    /// # Errors
    /// [`PublishError::Io`] when the file exists or cannot be written.
    pub fn save_pem(&self, path: &Path) -> Result<(), PublishError> {
        const ACTION: &str = "cannot write key file";
        let pem = self
            .signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| PublishError::io(ACTION, path, std::io::Error::other("PEM encoding")))?;
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            // Set at creation so the key is never readable by others, not even
            // for the moment between create and chmod.
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts
            .open(path)
            .map_err(|e| PublishError::io(ACTION, path, e))?;
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| PublishError::io(ACTION, path, e))
    }

    /// The same key, its tokens carrying the certificate chain of the PEM
    /// text `pem` (`-----BEGIN CERTIFICATE-----` blocks, leaf first) as
    /// their `x5c` header, as HAIP profiles require. Only the link to the
    /// key is checked here (the leaf's public key must be this key's); the
    /// chain's validity and trust are the verifier's to judge.
    ///
    /// # Errors
    /// [`PublishError::BadCertificateChain`] naming `what` when the text holds
    /// no certificate, one that is not DER X.509, or a leaf for another key.
    pub fn with_certificate_chain(self, pem: &[u8], what: &Path) -> Result<Self, PublishError> {
        use p256::pkcs8::EncodePublicKey;
        use x509_cert::der::Encode;
        let bad = |reason: &'static str| PublishError::BadCertificateChain {
            path: what.to_path_buf(),
            reason,
        };
        let chain =
            pem_certificates(pem).ok_or_else(|| bad("not a PEM chain of X.509 certificates"))?;
        let leaf = chain
            .first()
            .ok_or_else(|| bad("it holds no certificate"))?;
        let ours = self
            .verifying_key()
            .to_public_key_der()
            .map_err(|_| bad("the signing key cannot be encoded"))?;
        let theirs = leaf
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|_| bad("the leaf certificate's key cannot be encoded"))?;
        if ours.as_bytes() != theirs.as_slice() {
            return Err(bad(
                "the first certificate is not for the signing key (the leaf must come first)",
            ));
        }
        // Re-encoded rather than cut out of the PEM text: what is sent is
        // exactly what was parsed.
        let x5c = chain
            .iter()
            .map(|c| c.to_der().map(|der| STANDARD.encode(der)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("a certificate cannot be encoded"))?;
        Ok(ServiceKey {
            x5c: Some(x5c.into()),
            ..self
        })
    }

    /// The certificate chain its tokens carry as `x5c`, if one was given.
    pub fn x5c(&self) -> Option<&[String]> {
        self.x5c.as_deref()
    }

    /// The key's `kid` (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public JWK, as published in the JWKS.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// The public half, for verification.
    pub fn verifying_key(&self) -> &VerifyingKey {
        self.signing.verifying_key()
    }

    /// The ES256 signature of `msg` (SHA-256, then ECDSA P-256), as the
    /// 64-byte `r || s` that JWS uses.
    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let sig: Signature = self.signing.sign(msg);
        sig.to_bytes().into()
    }
}

/// The certificates of the `CERTIFICATE` PEM blocks in `pem`, in order
/// (text around them, such as openssl's `subject=` lines, is skipped);
/// `None` when a block is not a DER X.509 certificate. Parsed block by
/// block here rather than by x509-cert's chain reader, which panics on an
/// empty input (0.2.5).
fn pem_certificates(pem: &[u8]) -> Option<Vec<x509_cert::Certificate>> {
    use x509_cert::der::Decode;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = std::str::from_utf8(pem).ok()?;
    let mut chain = Vec::new();
    while let Some(start) = rest.find(BEGIN) {
        let block = rest.get(start..)?;
        let end = block.find(END)? + END.len();
        let (label, der) = x509_cert::der::pem::decode_vec(block.get(..end)?.as_bytes()).ok()?;
        if label != "CERTIFICATE" {
            return None;
        }
        chain.push(x509_cert::Certificate::from_der(&der).ok()?);
        rest = block.get(end..)?;
    }
    Some(chain)
}

/// Generates a key and saves it as `<dir>/<kid>.pem`, creating `dir` if
/// needed. Naming the file by its `kid` lets one directory hold the current
/// and the previous keys during a rotation without a naming scheme to keep.
///
/// # Errors
/// [`PublishError::Io`] when the directory cannot be created or the file
/// cannot be written.
pub fn generate_into_dir(dir: &Path) -> Result<(ServiceKey, PathBuf), PublishError> {
    fs::create_dir_all(dir).map_err(|e| PublishError::io("cannot create directory", dir, e))?;
    let key = ServiceKey::generate();
    let path = dir.join(format!("{}.pem", key.kid()));
    key.save_pem(&path)?;
    Ok((key, path))
}

/// Loads the public key of a PEM file holding either a PKCS#8 private key
/// (a previous signing key kept on disk) or an SPKI public key
/// (`-----BEGIN PUBLIC KEY-----`).
///
/// # Errors
/// [`PublishError::Io`] when the file cannot be read,
/// [`PublishError::BadPem`] when it is neither kind of P-256 PEM.
pub fn load_public_pem(path: &Path) -> Result<VerifyingKey, PublishError> {
    let text = read_key_file(path)?;
    let bad = || PublishError::BadPem {
        what: path.display().to_string(),
        expected: "P-256 public or PKCS#8 private key",
    };
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        VerifyingKey::from_public_key_pem(&text).map_err(|_| bad())
    } else {
        SigningKey::from_pkcs8_pem(&text)
            .map(|k| *k.verifying_key())
            .map_err(|_| bad())
    }
}

fn read_key_file(path: &Path) -> Result<String, PublishError> {
    fs::read_to_string(path).map_err(|e| PublishError::io("cannot read key file", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwk_round_trips_to_the_same_verifying_key() {
        let key = ServiceKey::generate();
        let jwk = key.public_jwk();
        assert_eq!(jwk.to_verifying_key().unwrap(), *key.verifying_key());
        assert_eq!(jwk.x.len(), 43);
        assert_eq!(jwk.y.len(), 43);
        assert_eq!(jwk.kid, thumbprint(&jwk.x, &jwk.y));
    }

    #[test]
    fn bad_jwks_are_errors() {
        let good = ServiceKey::generate().public_jwk().clone();
        let cases = [
            (
                "wrong kty",
                PublicJwk {
                    kty: "RSA".into(),
                    ..good.clone()
                },
            ),
            (
                "wrong crv",
                PublicJwk {
                    crv: "P-384".into(),
                    ..good.clone()
                },
            ),
            (
                "short x",
                PublicJwk {
                    x: "AAAA".into(),
                    ..good.clone()
                },
            ),
            (
                "not base64",
                PublicJwk {
                    y: "!".repeat(43),
                    ..good.clone()
                },
            ),
            // x = y = 0 is not on the curve.
            (
                "off curve",
                PublicJwk {
                    x: "A".repeat(43),
                    y: "A".repeat(43),
                    ..good.clone()
                },
            ),
        ];
        for (why, jwk) in cases {
            assert!(
                matches!(jwk.to_verifying_key(), Err(PublishError::BadJwk(_))),
                "{why}"
            );
        }
    }

    #[test]
    fn pem_text_round_trip_and_garbage() {
        let key = ServiceKey::generate();
        let pem = key.signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(ServiceKey::from_pkcs8_pem(&pem).unwrap().kid(), key.kid());
        for garbage in [
            "",
            "hello",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(matches!(
                ServiceKey::from_pkcs8_pem(garbage),
                Err(PublishError::BadPem { .. })
            ));
        }
    }

    #[test]
    fn save_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        ServiceKey::generate().save_pem(&path).unwrap();
        let before = fs::read(&path).unwrap();
        let err = ServiceKey::generate().save_pem(&path).unwrap_err();
        assert!(matches!(err, PublishError::Io { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    /// A self-signed certificate for `key`, made by the
    /// `openssl` command (as an operator would make a CSR's key pair).
    fn certificate_for(dir: &Path, name: &str, key: &ServiceKey) -> Vec<u8> {
        let key_path = dir.join(format!("{name}.key.pem"));
        key.save_pem(&key_path).unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let out = std::process::Command::new("openssl")
            .args(["req", "-new", "-x509", "-days", "2", "-subj"])
            .arg(format!("/CN={name}"))
            .arg("-key")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .output()
            .expect("the openssl command runs (it makes the test certificates)");
        assert!(out.status.success(), "{out:?}");
        fs::read(&cert_path).unwrap()
    }

    #[test]
    fn a_certificate_chain_must_certify_the_key_and_rides_along_as_x5c() {
        use super::super::jws;
        let dir = tempfile::tempdir().unwrap();
        let key = ServiceKey::generate();
        let issuer = ServiceKey::generate();
        let leaf = certificate_for(dir.path(), "leaf", &key);
        let ca = certificate_for(dir.path(), "ca", &issuer);
        let what = Path::new("chain.pem");

        let chain = [leaf.clone(), ca.clone()].concat();
        let certified = key.clone().with_certificate_chain(&chain, what).unwrap();
        let x5c = certified.x5c().unwrap().to_vec();
        assert_eq!(x5c.len(), 2);
        let leaf_der = STANDARD.decode(&x5c[0]).unwrap();
        let parsed = pem_certificates(&leaf).unwrap();
        assert_eq!(
            leaf_der,
            x509_cert::der::Encode::to_der(&parsed[0]).unwrap(),
            "x5c is the DER of the leaf, standard base64"
        );
        let token = jws::sign("statuslist+jwt", &serde_json::json!({}), &certified).unwrap();
        let header = jws::decode_unverified(&token).unwrap().header;
        assert_eq!(header.x5c, Some(x5c));
        assert!(jws::verify(&token, key.verifying_key()).is_ok());
        let plain = jws::sign("statuslist+jwt", &serde_json::json!({}), &key).unwrap();
        assert_eq!(jws::decode_unverified(&plain).unwrap().header.x5c, None);

        let cases: [(&str, Vec<u8>); 7] = [
            (
                "the leaf is another key's",
                [ca.clone(), leaf.clone()].concat(),
            ),
            ("only another key's certificate", ca.clone()),
            ("an empty file", Vec::new()),
            ("only a newline", b"\n".to_vec()),
            (
                "a private key instead",
                key.signing
                    .to_pkcs8_pem(LineEnding::LF)
                    .unwrap()
                    .as_bytes()
                    .to_vec(),
            ),
            ("a block cut short", leaf[..leaf.len() / 2].to_vec()),
            (
                "not a certificate",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            ),
        ];
        for (why, pem) in cases {
            let err = key.clone().with_certificate_chain(&pem, what).unwrap_err();
            assert!(
                matches!(err, PublishError::BadCertificateChain { .. }),
                "{why}: {err}"
            );
            assert!(err.to_string().starts_with("chain.pem: "), "{why}: {err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn saved_key_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (_, path) = generate_into_dir(&dir.path().join("nested/keys")).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
