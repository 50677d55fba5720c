//! Tests of process-wide state: `STATUSLIST_*` environment overrides and the
//! `SIGHUP` reload. They live in their own test binary so that setting
//! variables and raising a signal cannot disturb other tests, and they take a
//! lock so that they never run at the same time as each other.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use statuslist::auth::{Authenticator, spawn_reload_on_sighup};
use statuslist::config::Settings;

static PROCESS: Mutex<()> = Mutex::new(());

const KEY: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fn client(dir: &std::path::Path, id: &str) -> String {
    let file = dir.join(format!("{id}.jwks.json"));
    std::fs::write(&file, KEY).unwrap();
    format!(
        "[[clients]]\nid = \"{id}\"\nformat = \"token\"\njwks_file = \"{}\"\n",
        file.display()
    )
}

fn set(vars: &[(&str, &str)]) {
    for (k, v) in vars {
        // SAFETY: this binary's tests hold PROCESS while touching the
        // environment, and no other thread reads it meanwhile.
        unsafe { std::env::set_var(k, v) };
    }
}

fn unset(vars: &[(&str, &str)]) {
    for (k, _) in vars {
        // SAFETY: as in `set`.
        unsafe { std::env::remove_var(k) };
    }
}

#[test]
fn environment_overrides_the_file() {
    let _g = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statuslist.toml");
    let toml = format!(
        "public_base_url = \"https://file.example\"\n[jwks]\ntimeout_ms = 900\n{}",
        client(dir.path(), "file-client")
    );
    std::fs::write(&path, toml).unwrap();

    let vars = [
        ("STATUSLIST_PUBLIC_BASE_URL", "https://env.example"),
        ("STATUSLIST_JWKS__TIMEOUT_MS", "1234"),
        ("STATUSLIST_IDEMPOTENCY_WINDOW_SECS", "600"),
        ("STATUSLIST_LISTEN", "0.0.0.0:9999"),
        // The config path variable itself is not a setting.
        ("STATUSLIST_CONFIG", "/elsewhere.toml"),
    ];
    set(&vars);
    let s = Settings::load(&path);
    unset(&vars);
    let s = s.unwrap();
    assert_eq!(s.public_base_url.as_str(), "https://env.example");
    assert_eq!(s.jwks.timeout, std::time::Duration::from_millis(1234));
    assert_eq!(s.idempotency_window, std::time::Duration::from_secs(600));
    assert_eq!(s.listen.to_string(), "0.0.0.0:9999");
    assert_eq!(s.clients.len(), 1);
    assert_eq!(s.clients[0].id.as_str(), "file-client");

    // The client list itself can come from the environment.
    let vars = [(
        "STATUSLIST_CLIENTS",
        r#"[{id="env-client", format="bitstring", jwks_uri="https://issuer.example/jwks"}]"#,
    )];
    set(&vars);
    let s = Settings::load(&path);
    unset(&vars);
    let s = s.unwrap();
    assert_eq!(s.clients.len(), 1);
    assert_eq!(s.clients[0].id.as_str(), "env-client");

    // A bad override is reported with its field.
    let vars = [("STATUSLIST_JWKS__MAX_TTL_SECS", "soon")];
    set(&vars);
    let err = Settings::load(&path);
    unset(&vars);
    let err = err.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("jwks.max_ttl_secs"), "{err}");
}

#[test]
fn environment_overrides_the_webhook_settings() {
    let _g = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statuslist.toml");
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let toml = format!(
        "[webhooks]\ntimeout_ms = 900\n{}webhook = {{ url = \"http://127.0.0.1:9/h\", secret_file = \"{}\" }}\n",
        client(dir.path(), "hooked"),
        secret.display()
    );
    std::fs::write(&path, toml).unwrap();

    // The file's http:// webhook needs the client's flag; the client list
    // is one variable, so the section settings are what env overrides here.
    let vars = [
        ("STATUSLIST_WEBHOOKS__TIMEOUT_MS", "1234"),
        ("STATUSLIST_WEBHOOKS__LEASE_SECS", "5"),
        ("STATUSLIST_WEBHOOKS__CONCURRENCY", "2"),
    ];
    set(&vars);
    let err = Settings::load(&path);
    unset(&vars);
    let err = err.unwrap_err().to_string();
    assert!(
        err.starts_with("clients[0].webhook.url: 'http://127.0.0.1:9/h' is not https"),
        "{err}"
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("webhook = {", "allow_insecure_webhook = true\nwebhook = {");
    std::fs::write(&path, text).unwrap();
    set(&vars);
    let s = Settings::load(&path);
    unset(&vars);
    let s = s.unwrap();
    assert_eq!(s.webhooks.timeout, Duration::from_millis(1234));
    assert_eq!(s.webhooks.lease, Duration::from_secs(5));
    assert_eq!(s.webhooks.concurrency.get(), 2);
    assert_eq!(
        s.clients[0].webhook.as_ref().unwrap().secret.expose(),
        b"s3cret"
    );

    // An override that breaks a rule is reported with its field.
    let vars = [
        ("STATUSLIST_WEBHOOKS__TIMEOUT_MS", "1234"),
        ("STATUSLIST_WEBHOOKS__LEASE_SECS", "1"),
    ];
    set(&vars);
    let err = Settings::load(&path);
    unset(&vars);
    let err = err.unwrap_err().to_string();
    assert!(
        err.starts_with("webhooks.lease_secs: must exceed webhooks.timeout_ms (1234 ms)"),
        "{err}"
    );
    let vars = [("STATUSLIST_WEBHOOKS__TIMEOUT", "5")];
    set(&vars);
    let err = Settings::load(&path);
    unset(&vars);
    let err = err.unwrap_err().to_string();
    assert!(
        err.starts_with("webhooks.timeout: unknown key")
            && err.ends_with("(in environment variable STATUSLIST_WEBHOOKS__TIMEOUT)"),
        "{err}"
    );
}

#[test]
fn sighup_reloads_the_registry() {
    let _g = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statuslist.toml");
        std::fs::write(&path, client(dir.path(), "client-a")).unwrap();
        let auth = Arc::new(Authenticator::new(&Settings::load(&path).unwrap()).unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = spawn_reload_on_sighup(auth.clone(), path.clone(), async {
            let _ = stopped.await;
        })
        .unwrap();

        let before = auth.registry();
        let v2 = format!(
            "{}{}",
            client(dir.path(), "client-a"),
            client(dir.path(), "client-b")
        );
        std::fs::write(&path, v2).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());

        // Wait for the reload task (bounded; the assertion is on the outcome,
        // not on how fast it came).
        let reloaded = tokio::time::timeout(Duration::from_secs(30), async {
            while auth.generation() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(reloaded.is_ok(), "SIGHUP did not reload the configuration");
        assert!(auth.registry().client("client-b").is_some());
        // A request holding the old generation is unaffected.
        assert!(before.client("client-b").is_none());
        assert!(before.client("client-a").is_some());

        stop.send(()).unwrap();
        task.await.unwrap();
    });
}

#[test]
fn an_unknown_variable_is_refused_by_name() {
    let _g = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statuslist.toml");
    std::fs::write(&path, client(dir.path(), "file-client")).unwrap();

    // A misspelt override is not silently ignored.
    let vars = [("STATUSLIST_STORE__LEASE_SEC", "3")];
    set(&vars);
    let err = Settings::load(&path);
    unset(&vars);
    let err = err.unwrap_err().to_string();
    assert!(
        err.starts_with("store.lease_sec: unknown key")
            && err.ends_with("(in environment variable STATUSLIST_STORE__LEASE_SEC)"),
        "{err}"
    );

    // The CLI's service URL and the config path are not settings.
    let vars = [
        ("STATUSLIST_URL", "http://127.0.0.1:9"),
        ("STATUSLIST_CONFIG", "/elsewhere.toml"),
    ];
    set(&vars);
    let s = Settings::load(&path);
    unset(&vars);
    assert_eq!(s.unwrap().clients[0].id.as_str(), "file-client");
}
