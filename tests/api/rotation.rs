//! Signing-key rotation through the reloader (what `SIGHUP` runs), in
//! process: a reload with a bad key file, a missing one or an unwritable
//! state file is refused and the old key keeps signing; a good one makes
//! the new key sign the lists at once while tokens signed before keep
//! verifying with the JWKS. The real signal, a restart and the retirement by
//! the clock are in `tests/quickstart.rs`; the retirement rules with an
//! injected clock in `statuslist::publish::rotation`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use statuslist::config::Settings;
use statuslist::publish::ServiceKey;
use statuslist::startup::{Application, ReloadError, Reloader};

use crate::helpers::*;

/// An app built from a configuration file, as `serve --config` builds it.
struct Configured {
    app: TestApp,
    reloader: Arc<Reloader>,
    config: PathBuf,
    dir: tempfile::TempDir,
}

/// The configuration text: `signing` is the body of `[signing]`.
fn config_text(dir: &Path, signing: &str) -> String {
    format!(
        "public_base_url = \"{BASE}\"\nlisten = \"127.0.0.1:0\"\n\
         [store]\nurl = \"embedded:{}\"\n\
         [signing]\nstate_file = \"{}\"\n{signing}\n{}",
        dir.join("store.redb").display(),
        dir.join("state/signing-state.json").display(),
        TOKEN.toml(),
    )
}

fn key_line(path: &Path) -> String {
    format!("key_file = \"{}\"\n", path.display())
}

async fn start_configured() -> (Configured, ServiceKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = ServiceKey::generate();
    let key_path = dir.path().join("first.pem");
    key.save_pem(&key_path).unwrap();
    let config = dir.path().join("statuslist.toml");
    std::fs::write(&config, config_text(dir.path(), &key_line(&key_path))).unwrap();
    let settings = Settings::load(&config).unwrap();
    let app = Application::build(settings, Some(config.clone()))
        .await
        .unwrap();
    let reloader = app.reloader().expect("built with a configuration file");
    (
        Configured {
            app: attach(app),
            reloader,
            config,
            dir,
        },
        key,
    )
}

impl Configured {
    fn write(&self, signing: &str) {
        std::fs::write(&self.config, config_text(self.dir.path(), signing)).unwrap();
    }

    /// Reloads on a blocking thread, as the signal task does.
    async fn reload(&self) -> Result<statuslist::startup::Reloaded, ReloadError> {
        let reloader = self.reloader.clone();
        tokio::task::spawn_blocking(move || reloader.reload(now()))
            .await
            .unwrap()
    }

    async fn kids(&self) -> Vec<String> {
        let res = self.app.get("/.well-known/jwks.json").await;
        assert_eq!(res.headers()["cache-control"], "public, max-age=300");
        let doc: Value = res.json().await.unwrap();
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn a_reload_with_an_unusable_key_is_refused_and_the_old_key_signs() {
    let (c, key) = start_configured().await;
    let (_, uri) = c.app.issue(&TOKEN).await;
    assert_eq!(kid_of(&c.app.fetch_list(&uri).await.body), key.kid());

    let garbage = "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n";
    let broken = c.dir.path().join("broken.pem");
    std::fs::write(&broken, garbage).unwrap();
    let missing = c.dir.path().join("missing.pem");
    let cases = [
        (
            "a key file that is no key",
            key_line(&broken),
            "signing.key_file",
        ),
        (
            "a missing key file, even with generate_if_missing",
            format!("{}generate_if_missing = true\n", key_line(&missing)),
            "signing.key_file",
        ),
        (
            "a published key file that is no key",
            format!(
                "{}publish_key_files = [\"{}\"]\n",
                key_line(&c.dir.path().join("first.pem")),
                broken.display()
            ),
            "signing.publish_key_files[0]",
        ),
    ];
    for (why, signing, field) in cases {
        c.write(&signing);
        let err = c.reload().await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, ReloadError::Keys { field: f, .. } if f == field),
            "{why}: {text}"
        );
        assert!(!text.contains("SECRET"), "{why}: no key material: {text}");
        assert_eq!(c.kids().await, [key.kid()], "{why}");
        assert_eq!(
            kid_of(&c.app.fetch_list(&uri).await.body),
            key.kid(),
            "{why}"
        );
    }
    assert!(!missing.exists(), "a reload never generates a key");

    // A new key whose rotation cannot be recorded: refused too.
    let next = ServiceKey::generate();
    let next_path = c.dir.path().join("next.pem");
    next.save_pem(&next_path).unwrap();
    let state_dir = c.dir.path().join("state");
    assert!(
        state_dir.join("signing-state.json").is_file(),
        "the start recorded its key"
    );
    std::fs::remove_dir_all(&state_dir).unwrap();
    std::fs::write(&state_dir, "a file where the directory goes").unwrap();
    c.write(&key_line(&next_path));
    let err = c.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::Keys { field, .. } if field == "signing.state_file"),
        "{err}"
    );
    assert_eq!(c.kids().await, [key.kid()]);
    assert_eq!(kid_of(&c.app.fetch_list(&uri).await.body), key.kid());
}

#[tokio::test]
async fn after_a_rotation_lists_are_signed_by_the_new_key_and_old_tokens_still_verify() {
    let (c, old) = start_configured().await;
    let (_, uri) = c.app.issue(&TOKEN).await;
    let before = c.app.fetch_list(&uri).await;
    assert_eq!(kid_of(&before.body), old.kid());

    let new = ServiceKey::generate();
    let new_path = c.dir.path().join("new.pem");
    new.save_pem(&new_path).unwrap();
    c.write(&key_line(&new_path));
    let done = c.reload().await.unwrap();
    assert!(done.keys.rotated);
    assert_eq!(done.keys.signing, new.kid());
    assert_eq!(c.kids().await, [new.kid(), old.kid()]);

    // Re-signed at once (the token lifetime is a day), with a new tag.
    let after = c.app.fetch_list(&uri).await;
    assert_eq!(kid_of(&after.body), new.kid());
    assert_ne!(after.etag, before.etag);
    // The token fetched before still verifies with the JWKS served now.
    c.app.verify(&before.body, "statuslist+jwt", &uri).await;

    // Reloading the same configuration changes nothing.
    let again = c.reload().await.unwrap();
    assert!(!again.keys.rotated);
    assert_eq!(c.kids().await, [new.kid(), old.kid()]);
    let same = c.app.fetch_list(&uri).await;
    assert_eq!(same.body, after.body);
}

/// A self-signed certificate for `key` (the `openssl` command), as PEM.
fn certificate_for(dir: &Path, key: &ServiceKey) -> PathBuf {
    let key_path = dir.join(format!("{}.cert-key.pem", key.kid()));
    key.save_pem(&key_path).unwrap();
    let cert = dir.join(format!("{}.crt", key.kid()));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=statuslist",
        ])
        .arg("-key")
        .arg(&key_path)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command runs (it makes the test certificates)");
    assert!(out.status.success(), "{out:?}");
    cert
}

fn x5c_of(token: &str) -> Option<Vec<String>> {
    statuslist::publish::jws::decode_unverified(token)
        .unwrap()
        .header
        .x5c
}

#[tokio::test]
async fn a_certificate_chain_is_sent_as_x5c_and_must_change_with_the_key() {
    let (c, old) = start_configured().await;
    let (_, uri) = c.app.issue(&TOKEN).await;
    assert_eq!(x5c_of(&c.app.fetch_list(&uri).await.body), None);
    let old_path = c.dir.path().join("first.pem");
    let old_chain = certificate_for(c.dir.path(), &old);
    let chain_line = |p: &Path| format!("certificate_chain_file = \"{}\"\n", p.display());

    // The same key with a chain: no rotation, but the lists are re-signed
    // with the chain in their header at once.
    c.write(&format!(
        "{}{}",
        key_line(&old_path),
        chain_line(&old_chain)
    ));
    let done = c.reload().await.unwrap();
    assert!(!done.keys.rotated && done.keys.resign);
    let body = c.app.fetch_list(&uri).await.body;
    assert_eq!(kid_of(&body), old.kid());
    let x5c = x5c_of(&body).expect("x5c");
    assert_eq!(x5c.len(), 1);
    assert_eq!(c.kids().await, [old.kid()]);

    // A new key with the old key's chain: refused, nothing changes.
    let new = ServiceKey::generate();
    let new_path = c.dir.path().join("new.pem");
    new.save_pem(&new_path).unwrap();
    c.write(&format!(
        "{}{}",
        key_line(&new_path),
        chain_line(&old_chain)
    ));
    let err = c.reload().await.unwrap_err();
    assert!(
        matches!(&err, ReloadError::Keys { field, .. } if field == "signing.certificate_chain_file"),
        "{err}"
    );
    let body = c.app.fetch_list(&uri).await.body;
    assert_eq!(
        (kid_of(&body), x5c_of(&body)),
        (old.kid().to_owned(), Some(x5c.clone()))
    );

    // With its own chain: the new key signs, with the new chain.
    let new_chain = certificate_for(c.dir.path(), &new);
    c.write(&format!(
        "{}{}",
        key_line(&new_path),
        chain_line(&new_chain)
    ));
    assert!(c.reload().await.unwrap().keys.rotated);
    let body = c.app.fetch_list(&uri).await.body;
    assert_eq!(kid_of(&body), new.kid());
    let new_x5c = x5c_of(&body).expect("x5c");
    assert_ne!(new_x5c, x5c);
}
