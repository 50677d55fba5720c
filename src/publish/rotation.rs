//! Signing-key rotation without downtime: the [`KeyRing`] holds the key set
//! in force and swaps it whole when the key changes, keeps every replaced
//! signing key in the JWKS until each token it signed has expired, and
//! records those keys in a small state file so that a restart keeps them.
//!
//! **Swap.** The ring holds an `Arc` of the set in force behind a lock that
//! is held only to clone or replace that `Arc`: a signing in flight finishes
//! with the key it started with, the next one takes the new key, and no
//! request waits for a rotation.
//!
//! **Retirement.** A replaced key last signed at the rotation, so every
//! token it signed has expired by the rotation plus the token lifetime; the
//! ring keeps it published for that plus `ttl` ([`RingOptions::retire_after`])
//! and then leaves it out of the JWKS by itself, by comparing with the time
//! the JWKS is asked for: no reload, no timer.
//!
//! **State file.** The retiring keys exist only in memory unless recorded,
//! and a restart (or a rotation done by restarting with another
//! `key_file`) would drop them while their tokens are still valid. So the
//! ring writes `{"signing": JWK, "retiring": [{"jwk", "retire_at"}]}` (public
//! keys only) to its state file, atomically (a temporary file renamed over
//! it), before a rotation takes effect. On start it reads the file back: the
//! keys still retiring stay published, and a `signing` key other than the one
//! loaded now is the previous key of a rotation made across the restart, so
//! it retires from now on. A rotation whose state cannot be written is
//! refused (the old key keeps signing), so memory never holds a retirement
//! that a restart would forget.
//!
//! Replicas each keep their own state file (a key directory is usually a
//! read-only mount, identical everywhere); each publishes the old key until
//! its own rotation plus the delay, so reloading every replica within `ttl`
//! of the first leaves no gap in any replica's JWKS.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::keys::PublicJwk;
use super::{KeySet, PublishError};
use crate::ports::{ListSigner, ListToSign, PublishedKeys, SignError};

/// How a [`KeyRing`] retires and records keys; fixed for the process's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingOptions {
    /// Where the retiring keys are recorded (`signing.state_file`); `None`
    /// keeps them in memory only.
    pub state_file: Option<PathBuf>,
    /// How long a replaced signing key stays published after the rotation:
    /// the token lifetime plus `ttl`, so that every token it signed has
    /// expired and left the verifiers' caches before it goes.
    pub retire_after: Duration,
}

/// A replaced signing key, published until `retire_at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiringKey {
    /// Its public JWK, as it was published while it signed.
    pub jwk: PublicJwk,
    /// Unix seconds: published while the time is before this, gone from
    /// then on.
    pub retire_at: u64,
}

/// The state file's document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDoc {
    /// The key signing when the file was written.
    signing: PublicJwk,
    /// The replaced keys not yet retired then.
    retiring: Vec<RetiringKey>,
}

/// What one rotation (or reload without a new key) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The `kid` that signed before.
    pub previous: String,
    /// The `kid` that signs now.
    pub signing: String,
    /// Whether the signing key changed (else only the published keys or
    /// the certificate chain may have).
    pub rotated: bool,
    /// Whether tokens must be signed again: a new key, or the same key with
    /// another certificate chain (`x5c`). The generation then grew by one.
    pub resign: bool,
    /// The signing key's generation now ([`ListSigner::key_generation`]).
    pub generation: u64,
    /// The replaced keys still published, with their retire times.
    pub retiring: Vec<(String, u64)>,
}

/// The JWKS as rendered for one span of time.
#[derive(Debug)]
struct Rendered {
    /// The first time at which a key leaves: render again from then on.
    until: u64,
    json: bytes::Bytes,
}

/// One immutable state of the ring.
#[derive(Debug)]
struct Ring {
    /// Bumped by each rotation that changes the signing key.
    generation: u64,
    /// The signing key and the configured published keys.
    keys: KeySet,
    /// Replaced signing keys, not yet past their retire time when this
    /// state was made (later ones are filtered out when rendering).
    retiring: Vec<RetiringKey>,
    /// The JWKS JSON, rendered once per span between retirements rather than
    /// per fetch.
    rendered: Mutex<Option<Rendered>>,
}

impl Ring {
    fn new(generation: u64, keys: KeySet, retiring: Vec<RetiringKey>) -> Self {
        Ring {
            generation,
            keys,
            retiring,
            rendered: Mutex::new(None),
        }
    }

    fn signing_jwk(&self) -> &PublicJwk {
        self.keys.signing_key().public_jwk()
    }

    /// The published keys at `now` and the time the set next changes.
    fn published_at(&self, now: u64) -> (Vec<&PublicJwk>, u64) {
        let mut keys: Vec<&PublicJwk> = self.keys.published().iter().collect();
        let mut until = u64::MAX;
        for r in self.retiring.iter().filter(|r| now < r.retire_at) {
            until = until.min(r.retire_at);
            if !keys.iter().any(|k| k.kid == r.jwk.kid) {
                keys.push(&r.jwk);
            }
        }
        (keys, until)
    }

    fn jwks_json(&self, now: u64) -> bytes::Bytes {
        let mut rendered = self
            .rendered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = rendered.as_ref().filter(|r| now < r.until) {
            return r.json.clone();
        }
        let (keys, until) = self.published_at(now);
        // Serializing plain strings cannot fail.
        let json = bytes::Bytes::from(
            serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap_or_default(),
        );
        *rendered = Some(Rendered {
            until,
            json: json.clone(),
        });
        json
    }

    fn doc(&self) -> StateDoc {
        StateDoc {
            signing: self.signing_jwk().clone(),
            retiring: self.retiring.clone(),
        }
    }
}

/// The service's signing keys across rotations: implements the signer port
/// with the key in force and the JWKS port with every key a verifier may
/// still need (see the module docs).
#[derive(Debug)]
pub struct KeyRing {
    current: RwLock<Arc<Ring>>,
    options: RingOptions,
    /// Held by a rotation from reading the ring in force to swapping in the
    /// next, so that two reloads cannot lose each other's retiring key.
    rotating: Mutex<()>,
}

impl KeyRing {
    /// A ring over `keys`, with the retiring keys of the state file (when
    /// there is one) that are not past their retire time at `now`. A
    /// previous signing key recorded there, other than the one of `keys`,
    /// retires from `now`. Nothing is written: see [`KeyRing::persist`].
    ///
    /// # Errors
    /// [`PublishError::Io`] when the state file exists but cannot be read,
    /// [`PublishError::BadJson`] or [`PublishError::BadJwk`] when it is not
    /// a state document with P-256 keys and their thumbprints as `kid`.
    pub fn open(keys: KeySet, options: RingOptions, now: u64) -> Result<Self, PublishError> {
        let recorded = match &options.state_file {
            Some(path) => read_state(path)?,
            None => None,
        };
        let mut retiring = Vec::new();
        if let Some(doc) = recorded {
            retiring = doc.retiring;
            if doc.signing.kid != keys.signing_key().kid() {
                retire(
                    &mut retiring,
                    doc.signing,
                    now.saturating_add(options.retire_after.as_secs()),
                );
            }
        }
        let retiring = prune(retiring, keys.signing_key().kid(), now);
        Ok(KeyRing {
            current: RwLock::new(Arc::new(Ring::new(0, keys, retiring))),
            options,
            rotating: Mutex::new(()),
        })
    }

    /// The options the ring was opened with.
    pub fn options(&self) -> &RingOptions {
        &self.options
    }

    fn current(&self) -> Arc<Ring> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The `kid` of the key signing now.
    pub fn signing_kid(&self) -> String {
        self.current().signing_jwk().kid.clone()
    }

    /// The replaced keys still published at `now`, with their retire times.
    pub fn retiring(&self, now: u64) -> Vec<(String, u64)> {
        retiring_at(&self.current(), now)
    }

    /// Writes the state file when its content differs from the ring's (so a
    /// read-only key directory that needs no change is never written).
    /// Returns whether it wrote.
    ///
    /// # Errors
    /// [`PublishError::Io`] when the file cannot be written.
    pub fn persist(&self) -> Result<bool, PublishError> {
        match &self.options.state_file {
            Some(path) => write_state(path, &self.current().doc()),
            None => Ok(false),
        }
    }

    /// Makes `keys` the set in force at `now`. When its signing key differs
    /// from the one in force, that one retires at `now` plus
    /// [`RingOptions::retire_after`] (a later retire time it already had is
    /// kept), the state file is written, and only then is the new set swapped
    /// in; a key that comes back from retirement signs again and is no longer
    /// retiring. A new key or a new certificate chain bumps the generation,
    /// so that cached tokens are signed again.
    ///
    /// # Errors
    /// [`PublishError::Io`] when the state of a rotation cannot be written:
    /// the ring is then unchanged and the previous key keeps signing.
    pub fn rotate(&self, keys: KeySet, now: u64) -> Result<Rotation, PublishError> {
        let _one = self
            .rotating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = self.current();
        let previous = old.signing_jwk().clone();
        let rotated = previous.kid != keys.signing_key().kid();
        let resign = rotated || old.keys.signing_key().x5c() != keys.signing_key().x5c();
        let mut retiring = old.retiring.clone();
        if rotated {
            retire(
                &mut retiring,
                previous.clone(),
                now.saturating_add(self.options.retire_after.as_secs()),
            );
        }
        let generation = old.generation + u64::from(resign);
        let retiring = prune(retiring, keys.signing_key().kid(), now);
        let next = Ring::new(generation, keys, retiring);
        if rotated && let Some(path) = &self.options.state_file {
            write_state(path, &next.doc())?;
        }
        let report = Rotation {
            previous: previous.kid,
            signing: next.signing_jwk().kid.clone(),
            rotated,
            resign,
            generation,
            retiring: retiring_at(&next, now),
        };
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
        Ok(report)
    }
}

impl ListSigner for KeyRing {
    /// Signs with the key in force when the call starts, start to end.
    fn sign(&self, list: &ListToSign<'_>) -> Result<String, SignError> {
        ListSigner::sign(&self.current().keys, list)
    }

    /// The CWT form, signed like [`KeyRing::sign`] with the key in force.
    fn sign_cwt(&self, list: &ListToSign<'_>) -> Result<Vec<u8>, SignError> {
        ListSigner::sign_cwt(&self.current().keys, list)
    }

    /// A ring always holds a signing key.
    fn has_key(&self) -> bool {
        true
    }

    fn key_generation(&self) -> u64 {
        self.current().generation
    }
}

impl PublishedKeys for KeyRing {
    fn jwks_json(&self, now: u64) -> bytes::Bytes {
        self.current().jwks_json(now)
    }
}

/// Adds `jwk` to `retiring` with `retire_at`, or moves its retire time
/// later if it is there already.
fn retire(retiring: &mut Vec<RetiringKey>, jwk: PublicJwk, retire_at: u64) {
    match retiring.iter_mut().find(|r| r.jwk.kid == jwk.kid) {
        Some(r) => r.retire_at = r.retire_at.max(retire_at),
        None => retiring.push(RetiringKey { jwk, retire_at }),
    }
}

/// `retiring` without the keys past their retire time at `now` and without
/// the key that signs (it is published as the signing key).
fn prune(retiring: Vec<RetiringKey>, signing_kid: &str, now: u64) -> Vec<RetiringKey> {
    retiring
        .into_iter()
        .filter(|r| now < r.retire_at && r.jwk.kid != signing_kid)
        .collect()
}

fn retiring_at(ring: &Ring, now: u64) -> Vec<(String, u64)> {
    ring.retiring
        .iter()
        .filter(|r| now < r.retire_at)
        .map(|r| (r.jwk.kid.clone(), r.retire_at))
        .collect()
}

/// The state document at `path`, `None` when there is no such file.
fn read_state(path: &Path) -> Result<Option<StateDoc>, PublishError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PublishError::io("cannot read the signing state", path, e)),
    };
    let doc: StateDoc =
        serde_json::from_slice(&text).map_err(|e| PublishError::json("signing state", &e))?;
    for jwk in std::iter::once(&doc.signing).chain(doc.retiring.iter().map(|r| &r.jwk)) {
        // Only keys this service made, so that an edited file cannot
        // publish a key under another key's `kid`.
        if PublicJwk::from_verifying_key(&jwk.to_verifying_key()?) != *jwk {
            return Err(PublishError::BadJwk(
                "a key in the signing state is not as this service publishes it (kid, use, alg)",
            ));
        }
    }
    Ok(Some(doc))
}

/// Writes `doc` to `path` unless the file already holds exactly that text:
/// to a temporary file beside it, flushed to disk, then renamed over it, so
/// that a crash leaves the old file or the new one, never half of one.
fn write_state(path: &Path, doc: &StateDoc) -> Result<bool, PublishError> {
    const ACTION: &str = "cannot write the signing state";
    let mut text =
        serde_json::to_vec_pretty(doc).map_err(|e| PublishError::json("signing state", &e))?;
    text.push(b'\n');
    if std::fs::read(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| PublishError::io(ACTION, dir, e))?;
    let name = path
        .file_name()
        .map_or_else(|| "signing-state".into(), |n| n.to_string_lossy());
    // The process id and a counter keep replicas (and applications in one
    // process, as in tests) that share a directory off each other's
    // temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let written = (|| {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced; not
        // every platform can open a directory, so this one is best effort.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    written.map(|()| true).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        PublishError::io(ACTION, path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Bits, CompressedList, Layout, ListFormat, StatusList};
    use crate::publish::{ServiceKey, jws};

    const T0: u64 = 1_800_000_000;
    const DELAY: u64 = 100;

    fn options(state_file: Option<PathBuf>) -> RingOptions {
        RingOptions {
            state_file,
            retire_after: Duration::from_secs(DELAY),
        }
    }

    fn kids(ring: &KeyRing, now: u64) -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_slice(&ring.jwks_json(now)).unwrap();
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    fn sign(ring: &KeyRing) -> String {
        with_list(|l| ring.sign(l)).unwrap()
    }

    fn sign_cwt(ring: &KeyRing) -> Vec<u8> {
        with_list(|l| ring.sign_cwt(l)).unwrap()
    }

    fn with_list<T>(f: impl FnOnce(&ListToSign<'_>) -> T) -> T {
        let list = StatusList::new(Layout::Ietf, Bits::Two, 16).unwrap();
        f(&ListToSign {
            format: ListFormat::Token,
            list: &list,
            compressed: &CompressedList::new(list.as_bytes()),
            iss: "https://s.example",
            uri: "https://s.example/t/ABCDEF012345",
            iat: T0,
            exp: T0 + 10,
            ttl: 5,
            aggregation_uri: None,
        })
    }

    fn header_kid(token: &str) -> String {
        use base64::Engine;
        let header = token.split('.').next().unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_old_key_is_published_until_its_retire_time_and_then_gone() {
        let (a, b) = (ServiceKey::generate(), ServiceKey::generate());
        let ring = KeyRing::open(KeySet::new(a.clone()), options(None), T0).unwrap();
        assert_eq!(kids(&ring, T0), [a.kid()]);
        assert_eq!(ring.key_generation(), 0);
        let before = sign(&ring);
        assert_eq!(header_kid(&before), a.kid());

        let r = ring.rotate(KeySet::new(b.clone()), T0 + 7).unwrap();
        assert!(r.rotated);
        assert_eq!(
            (r.previous.as_str(), r.signing.as_str()),
            (a.kid(), b.kid())
        );
        assert_eq!(r.retiring, [(a.kid().to_owned(), T0 + 7 + DELAY)]);
        assert_eq!(ring.key_generation(), 1);
        // The new key signs; the old token still verifies with the new JWKS.
        let after = sign(&ring);
        assert_eq!(header_kid(&after), b.kid());
        assert!(jws::verify(&after, b.verifying_key()).is_ok());
        // The CWT form follows the same key.
        let cwt = sign_cwt(&ring);
        assert!(crate::publish::cwt::verify(&cwt, b.verifying_key()).is_ok());
        assert!(crate::publish::cwt::verify(&cwt, a.verifying_key()).is_err());
        assert_eq!(kids(&ring, T0 + 7), [b.kid(), a.kid()]);
        // Published up to the last second before the retire time (the
        // rendering cached at T0 + 7 must not outlive it either).
        assert_eq!(kids(&ring, T0 + 7 + DELAY - 1), [b.kid(), a.kid()]);
        assert_eq!(kids(&ring, T0 + 7 + DELAY), [b.kid()]);
        assert_eq!(kids(&ring, T0 + 10 * DELAY), [b.kid()]);
        assert!(ring.retiring(T0 + 7 + DELAY).is_empty());
    }

    #[test]
    fn reloading_the_same_key_retires_nothing_and_keeps_the_generation() {
        let (a, extra) = (ServiceKey::generate(), ServiceKey::generate());
        let ring = KeyRing::open(KeySet::new(a.clone()), options(None), T0).unwrap();
        let mut with_extra = KeySet::new(a.clone());
        with_extra.add_public(extra.verifying_key());
        let r = ring.rotate(with_extra, T0 + 1).unwrap();
        assert!(!r.rotated);
        assert!(r.retiring.is_empty());
        assert_eq!(ring.key_generation(), 0);
        // A configured extra key (publish_key_files) is published, unretired.
        assert_eq!(kids(&ring, T0 + 10 * DELAY), [a.kid(), extra.kid()]);
    }

    #[test]
    fn a_key_coming_back_signs_and_a_second_rotation_keeps_both_old_keys() {
        let (a, b, c) = (
            ServiceKey::generate(),
            ServiceKey::generate(),
            ServiceKey::generate(),
        );
        let ring = KeyRing::open(KeySet::new(a.clone()), options(None), T0).unwrap();
        ring.rotate(KeySet::new(b.clone()), T0).unwrap();
        ring.rotate(KeySet::new(c.clone()), T0 + 50).unwrap();
        assert_eq!(kids(&ring, T0 + 50), [c.kid(), a.kid(), b.kid()]);
        assert_eq!(kids(&ring, T0 + DELAY), [c.kid(), b.kid()]);
        // Back to b: it signs, and c retires in its place.
        let r = ring.rotate(KeySet::new(b.clone()), T0 + 60).unwrap();
        assert_eq!(
            r.retiring,
            [
                (a.kid().to_owned(), T0 + DELAY),
                (c.kid().to_owned(), T0 + 60 + DELAY)
            ]
        );
        assert_eq!(kids(&ring, T0 + 60 + DELAY), [b.kid()]);
        assert_eq!(ring.key_generation(), 3);
    }

    #[test]
    fn the_state_file_carries_retiring_keys_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("keys/signing-state.json");
        let (a, b, c) = (
            ServiceKey::generate(),
            ServiceKey::generate(),
            ServiceKey::generate(),
        );
        let ring = KeyRing::open(KeySet::new(a.clone()), options(Some(state.clone())), T0).unwrap();
        assert!(ring.persist().unwrap(), "the first start records its key");
        assert!(
            !ring.persist().unwrap(),
            "an unchanged state is not rewritten"
        );
        ring.rotate(KeySet::new(b.clone()), T0 + 5).unwrap();
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(!text.contains("\"d\""), "public keys only: {text}");

        // Restart with the same key: a is still retiring, at the same time.
        let again =
            KeyRing::open(KeySet::new(b.clone()), options(Some(state.clone())), T0 + 9).unwrap();
        assert_eq!(
            again.retiring(T0 + 9),
            [(a.kid().to_owned(), T0 + 5 + DELAY)]
        );
        assert_eq!(kids(&again, T0 + 9), [b.kid(), a.kid()]);

        // Restart with another key (a rotation by configuration change): b
        // retires from the restart on, a keeps its time.
        let later = KeyRing::open(
            KeySet::new(c.clone()),
            options(Some(state.clone())),
            T0 + 20,
        )
        .unwrap();
        assert_eq!(
            later.retiring(T0 + 20),
            [
                (a.kid().to_owned(), T0 + 5 + DELAY),
                (b.kid().to_owned(), T0 + 20 + DELAY)
            ]
        );
        assert!(later.persist().unwrap());
        // Past every retire time the file holds the signing key only.
        let last = KeyRing::open(
            KeySet::new(c.clone()),
            options(Some(state.clone())),
            T0 + 20 + DELAY,
        )
        .unwrap();
        assert_eq!(kids(&last, T0 + 20 + DELAY), [c.kid()]);
        assert!(last.persist().unwrap());
        let doc: StateDoc = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert!(doc.retiring.is_empty());
        assert_eq!(doc.signing.kid, c.kid());
    }

    #[test]
    fn a_rotation_whose_state_cannot_be_written_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        let state = blocker.join("signing-state.json");
        let (a, b) = (ServiceKey::generate(), ServiceKey::generate());
        let ring = KeyRing::open(KeySet::new(a.clone()), options(Some(state)), T0).unwrap();
        // The state file's directory becomes a file: nothing can be written
        // there.
        std::fs::write(&blocker, "x").unwrap();
        let err = ring.rotate(KeySet::new(b.clone()), T0 + 1).unwrap_err();
        assert!(matches!(err, PublishError::Io { .. }), "{err}");
        assert_eq!(ring.signing_kid(), a.kid());
        assert_eq!(ring.key_generation(), 0);
        assert_eq!(header_kid(&sign(&ring)), a.kid());
        assert_eq!(kids(&ring, T0 + 1), [a.kid()]);
        // A reload without a new key needs no state and is not refused.
        assert!(!ring.rotate(KeySet::new(a.clone()), T0 + 2).unwrap().rotated);
    }

    #[test]
    fn a_damaged_or_edited_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("signing-state.json");
        let a = ServiceKey::generate();
        let open = || KeyRing::open(KeySet::new(a.clone()), options(Some(state.clone())), T0);
        std::fs::write(&state, "{not json").unwrap();
        assert!(matches!(open(), Err(PublishError::BadJson { .. })));
        // A key listed under another key's kid.
        let mut forged = ServiceKey::generate().public_jwk().clone();
        forged.kid = a.kid().to_owned();
        let doc = StateDoc {
            signing: forged,
            retiring: Vec::new(),
        };
        std::fs::write(&state, serde_json::to_vec(&doc).unwrap()).unwrap();
        assert!(matches!(open(), Err(PublishError::BadJwk(_))));
    }
}
