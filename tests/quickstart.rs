//! The README's quick start, step by step, with the built binary: start the
//! service in development mode (no configuration, fresh directory), issue
//! with the demo client, check, revoke, check again. Keeps the README true.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_statuslist");

/// Kills the service when the test ends, however it ends.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(dir: &Path, port: u16) -> Service {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env_remove("STATUSLIST_CONFIG")
        .env("STATUSLIST_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "STATUSLIST_PUBLIC_BASE_URL",
            format!("http://127.0.0.1:{port}"),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the service starts");
    // Wait for the development banner, which is printed once the port is
    // bound; keep draining stderr so the child never blocks on it.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("DEVELOPMENT MODE")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(());
            }
        }
    });
    let service = Service(child);
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the service prints its development banner");
    // Serving requests means the server task runs, and with it the handlers
    // for SIGTERM/SIGINT.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_live(port) {
        assert!(Instant::now() < deadline, "the service never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
    service
}

/// `GET /health/live` answers 200, over a plain socket (this test has no
/// async runtime).
fn is_live(port: u16) -> bool {
    http(
        port,
        "GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

/// One raw HTTP/1.1 exchange; `None` when the connection fails.
fn http(port: u16, request: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// `POST /issue` with a signed body; the JSON answer of a 200, else `None`.
fn post_issue(port: u16, jwt: &str) -> Option<serde_json::Value> {
    let request = format!(
        "POST /issue HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jwt\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwt}",
        jwt.len()
    );
    let response = http(port, &request)?;
    if !response.starts_with("HTTP/1.1 200") {
        return None;
    }
    let body = response.split("\r\n\r\n").nth(1)?;
    serde_json::from_str(body).ok()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("STATUSLIST_URL")
        .output()
        .expect("the CLI runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn quick_start_from_issue_to_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _service = start(dir.path(), port);
    assert!(
        dir.path().join("data/service-key.pem").is_file(),
        "development mode keeps its signing key under ./data"
    );

    // statuslist issue --demo
    let issued = run(&["issue", "--demo", "--url", &url, "--json"]);
    assert!(issued.status.success(), "issue: {issued:?}");
    let answer: serde_json::Value = serde_json::from_slice(&issued.stdout).unwrap();
    let uri = answer["uri"].as_str().expect("uri").to_owned();
    let idx = answer["idx"].as_u64().expect("idx").to_string();
    assert!(uri.starts_with(&format!("{url}/t/")), "{uri}");

    // statuslist check URI IDX → VALID, exit 0
    let checked = run(&["check", &uri, &idx]);
    assert_eq!(checked.status.code(), Some(0), "check: {checked:?}");
    assert!(
        stdout(&checked).starts_with("VALID"),
        "{}",
        stdout(&checked)
    );

    // statuslist revoke --demo --uri URI --idx IDX
    let revoked = run(&[
        "revoke", "--demo", "--url", &url, "--uri", &uri, "--idx", &idx,
    ]);
    assert!(revoked.status.success(), "revoke: {revoked:?}");
    assert!(
        stdout(&revoked).starts_with("Request processed for revocation"),
        "{}",
        stdout(&revoked)
    );
    let again = run(&[
        "revoke", "--demo", "--url", &url, "--uri", &uri, "--idx", &idx, "--json",
    ]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["message"], "Credential already revoked");

    // statuslist check again → INVALID, exit 1 (visible at once: the service
    // that made the change does not wait for its cache to age).
    let checked = run(&["check", &uri, &idx, "--json"]);
    assert_eq!(checked.status.code(), Some(1), "check: {checked:?}");
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(report["status"], "INVALID");
    assert_eq!(report["uri"], uri.as_str());
    assert_eq!(report["media_type"], "application/statuslist+jwt");
    // The same list as its CWT, read and verified by the same command.
    let checked = run(&["check", &uri, &idx, "--json", "--cwt"]);
    assert_eq!(checked.status.code(), Some(1), "check --cwt: {checked:?}");
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(report["status"], "INVALID");
    assert_eq!(report["media_type"], "application/statuslist+cwt");
    assert_eq!(report["format"], "token");

    // The bitstring demo client publishes under /b/, read by the same check.
    let issued = run(&[
        "issue",
        "--client",
        "demo-bitstring",
        "--key",
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-client.key.pem"),
        "--url",
        &url,
        "--json",
    ]);
    assert!(issued.status.success(), "issue: {issued:?}");
    let answer: serde_json::Value = serde_json::from_slice(&issued.stdout).unwrap();
    let uri = answer["uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with(&format!("{url}/b/")), "{uri}");
    let checked = run(&["check", &uri, &answer["idx"].to_string(), "--json"]);
    assert_eq!(checked.status.code(), Some(0), "check: {checked:?}");
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(report["format"], "bitstring");
}

/// The README's issuer-platform example, with the built binary: a batch
/// bound to a ref, one more entry for the same ref, a suspension by ref, an
/// entry unsuspended on its own, the listing (JSON and table), and a
/// revocation by ref that the independent `check` sees.
#[test]
fn issuer_platform_example() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _service = start(dir.path(), port);
    let json = |out: &Output| -> serde_json::Value {
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let batch = json(&run(&[
        "issue",
        "--demo",
        "--url",
        &url,
        "--ref",
        "order-4711",
        "--count",
        "3",
        "--json",
    ]));
    assert_eq!(batch["ref"], "order-4711");
    let entries = batch["entries"].as_array().expect("entries").clone();
    assert_eq!(entries.len(), 3);
    let text = stdout(&run(&[
        "issue",
        "--demo",
        "--url",
        &url,
        "--ref",
        "order-4711",
    ]));
    assert!(text.starts_with("ref order-4711\nidx "), "{text}");

    let suspended = json(&run(&[
        "suspend",
        "--demo",
        "--url",
        &url,
        "--ref",
        "order-4711",
        "--json",
    ]));
    assert_eq!(suspended["entries"], 4);
    assert_eq!(suspended["message"], "Request processed for suspension");
    let (uri, idx) = (
        entries[1]["uri"].as_str().unwrap().to_owned(),
        entries[1]["idx"].to_string(),
    );
    let back = stdout(&run(&[
        "unsuspend",
        "--demo",
        "--url",
        &url,
        "--uri",
        &uri,
        "--idx",
        &idx,
    ]));
    assert!(
        back.starts_with("Request processed for unsuspension"),
        "{back}"
    );

    let listed = json(&run(&[
        "entries",
        "--demo",
        "--url",
        &url,
        "--ref",
        "order-4711",
        "--json",
    ]));
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 4);
    assert_eq!(listed["pagination"]["totalItems"], 4);
    // Newest change first (ties, within one second, in allocation order).
    let updated: Vec<u64> = items
        .iter()
        .map(|i| i["updatedAt"].as_u64().unwrap())
        .collect();
    assert!(updated.windows(2).all(|w| w[0] >= w[1]), "{updated:?}");
    for item in items {
        let want = if item["idx"] == entries[1]["idx"] {
            "VALID"
        } else {
            "SUSPENDED"
        };
        assert_eq!(item["status"], want, "{item}");
        assert_eq!(item["ref"], "order-4711");
    }
    let suspended_only = json(&run(&[
        "entries",
        "--demo",
        "--url",
        &url,
        "--status",
        "SUSPENDED",
        "--json",
    ]));
    assert_eq!(suspended_only["pagination"]["totalItems"], 3);
    let table = stdout(&run(&["entries", "--demo", "--url", &url, "--limit", "2"]));
    assert!(table.starts_with("IDX "), "{table}");
    assert!(table.ends_with("page 1 of 2, 4 entries\n"), "{table}");

    let revoked = stdout(&run(&[
        "revoke",
        "--demo",
        "--url",
        &url,
        "--ref",
        "order-4711",
    ]));
    assert!(
        revoked.starts_with("Request processed for revocation: 4 entries changed"),
        "{revoked}"
    );
    let checked = run(&["check", &uri, &idx]);
    assert_eq!(checked.status.code(), Some(1), "check: {checked:?}");
    // Unknown refs are refused with the CRS text.
    let out = run(&["suspend", "--demo", "--url", &url, "--ref", "no-such-ref"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Entry not found in status list table"),
        "{err}"
    );
}

#[test]
fn cli_errors_say_what_to_do() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // Nothing listens there: the message asks whether the service runs.
    let out = run(&["issue", "--demo", "--url", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the service running"), "{err}");

    let out = run(&["check", &format!("{url}/t/AAAAAAAAAAAA"), "0"]);
    assert_eq!(out.status.code(), Some(2), "check errors exit with 2");

    let out = run(&["issue", "--client", "x", "--key", "/nonexistent/key.pem"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/key.pem"), "{err}");

    let out = run(&["issue", "--demo", "--jti", "NOT-A-UUID", "--url", &url]);
    assert_eq!(out.status.code(), Some(1));

    // A malformed event id is refused before anything is sent.
    let out = run(&[
        "webhooks",
        "redeliver",
        "--demo",
        "--url",
        &url,
        "NOT-AN-ID",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'NOT-AN-ID' is not an event id"), "{err}");

    for cmd in ["serve", "keygen", "issue", "revoke", "check", "webhooks"] {
        let out = run(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
    }
}

/// The demo clients of development mode have no webhook: the webhook
/// commands say so (the service's 404) instead of listing nothing. Needs
/// the dispatch wiring (`Service` told which clients have a webhook).
#[test]
fn webhook_commands_of_a_client_without_a_webhook_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _service = start(dir.path(), port);
    let id = "019af7a565735e21c1d2e3f400000000";
    for args in [
        &["webhooks", "list", "--failed", "--demo", "--url", &url][..],
        &["webhooks", "redeliver", "--demo", "--url", &url, id],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("answered 404")
                && err.contains("No webhook is configured for this client"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn keygen_client_writes_a_key_pair_and_a_config_entry() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "keygen",
        "--client",
        "issuer-1",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let entry = stdout(&out);
    assert!(
        entry.contains("[[clients]]") && entry.contains("id = \"issuer-1\""),
        "{entry}"
    );
    let jwks: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("issuer-1.jwks.json")).unwrap(),
    )
    .unwrap();
    let key = statuslist::publish::keys::ServiceKey::load_pem(&dir.path().join("issuer-1.key.pem"))
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], key.kid());
    // Registering it works: the entry's jwks_file parses as a client JWKS.
    let toml = format!(
        "[[clients]]\nid = \"issuer-1\"\nformat = \"token\"\njwks_file = \"{}\"\n",
        dir.path().join("issuer-1.jwks.json").display()
    );
    statuslist::config::Settings::from_toml_str(&toml).expect("the printed entry registers");
    // A second run never overwrites.
    let again = run(&[
        "keygen",
        "--client",
        "issuer-1",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!again.status.success());
}

#[test]
fn sigterm_under_load_loses_nothing_acknowledged() {
    use statuslist::client::Issuer;
    use statuslist::publish::keys::ServiceKey;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut service = start(dir.path(), port);
    let key = ServiceKey::from_pkcs8_pem(statuslist::config::DEMO_CLIENT_KEY_PEM).unwrap();
    let issuer = Issuer::new(statuslist::config::DEMO_CLIENT, key);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bodies: Vec<String> = (0..200)
        .map(|_| {
            issuer
                .issue_request(&uuid::Uuid::new_v4().to_string(), now, now + 86_400)
                .unwrap()
        })
        .collect();

    // Requests race with SIGTERM: some are answered, later ones are refused.
    let answered = std::thread::scope(|scope| {
        let workers: Vec<_> = bodies
            .chunks(25)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|jwt| (jwt.clone(), post_issue(port, jwt)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30));
        let pid = service.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .filter_map(|(jwt, answer)| answer.map(|a| (jwt, a)))
            .collect::<Vec<_>>()
    });
    let status = service.0.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    drop(service);
    assert!(
        !answered.is_empty(),
        "some requests were answered before the signal"
    );

    // Every acknowledged allocation survived: after a restart on the same
    // data, each request replays to exactly the answer it was given.
    let _service = start(dir.path(), port);
    for (jwt, answer) in &answered {
        let replayed = post_issue(port, jwt).expect("an acknowledged request replays");
        assert_eq!(&replayed, answer, "acknowledged answer lost or changed");
    }
    eprintln!(
        "{} of {} requests were answered before shutdown",
        answered.len(),
        bodies.len()
    );
}

#[test]
fn the_service_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut service = start(dir.path(), port);
    let pid = service.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = service.0.try_wait().unwrap() {
            assert!(status.success(), "graceful shutdown exits 0: {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the service did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Key rotation, as the README's "Key rotation" tells it: keygen, point
// `signing.key_file` at the new file, SIGHUP.

/// A service started with `--config`, its log lines (stdout) sent to
/// `log`.
struct Configured {
    service: Service,
    log: std::sync::mpsc::Receiver<String>,
}

impl Configured {
    fn start(config: &Path, port: u16) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("STATUSLIST_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the service starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let service = Service(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_live(port) {
            assert!(Instant::now() < deadline, "the service never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        Configured { service, log }
    }

    fn hangup(&self) {
        let pid = self.service.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits (bounded) for a log line containing `text`; returns it.
    fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {text:?}"),
            }
        }
    }
}

/// `GET path`: the whole response.
fn get_raw(port: u16, path: &str) -> String {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
    .expect("the service answers")
}

/// `GET path`: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let response = get_raw(port, path);
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn jwks(port: u16) -> statuslist::publish::Jwks {
    let (status, body) = get(port, "/.well-known/jwks.json");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("a JWKS")
}

fn kids(jwks: &statuslist::publish::Jwks) -> Vec<&str> {
    jwks.keys.iter().map(|k| k.kid.as_str()).collect()
}

/// What a verifier does: the token's `kid` looked up in the JWKS it holds,
/// then the signature. Returns the `kid`.
fn verify(token: &str, jwks: &statuslist::publish::Jwks) -> Result<String, String> {
    use statuslist::publish::jws;
    let parts = jws::decode_unverified(token).map_err(|e| e.to_string())?;
    let kid = parts.header.kid.ok_or("no kid")?;
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let key = jwk.to_verifying_key().map_err(|e| e.to_string())?;
    jws::verify(token, &key).map_err(|e| e.to_string())?;
    Ok(kid)
}

fn rotation_config(dir: &Path, port: u16, key_file: &Path) -> String {
    let keys = dir.join("keys");
    format!(
        r#"public_base_url = "http://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"

[store]
url = "embedded:{data}"

[signing]
key_file = "{key}"
token_lifetime_secs = 30
ttl_secs = 1

[[clients]]
id = "issuer-1"
format = "token"
jwks_file = "{jwks}"
"#,
        data = dir.join("data/s.redb").display(),
        key = key_file.display(),
        jwks = keys.join("issuer-1.jwks.json").display(),
    )
}

/// Rotation without downtime, with the built binary: a bad new key is
/// refused and the old one keeps signing; a good one signs after SIGHUP,
/// the list is re-signed at once, a token fetched before verifies with the
/// JWKS a verifier held before and with the one after; the old key survives
/// a restart in the state file, and leaves the JWKS by itself after the
/// token lifetime plus ttl (30 s + 1 s here).
#[test]
fn key_rotation_by_sighup_keeps_old_tokens_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let keys_arg = keys.to_str().unwrap();
    let out = run(&["keygen", "--out", keys_arg]);
    assert!(out.status.success(), "{out:?}");
    let old_kid = stdout(&out).trim().to_owned();
    let out = run(&["keygen", "--client", "issuer-1", "--out", keys_arg]);
    assert!(out.status.success(), "{out:?}");

    let port = free_port();
    let config = dir.path().join("statuslist.toml");
    let write_config = |key_file: &Path| {
        std::fs::write(&config, rotation_config(dir.path(), port, key_file)).unwrap();
    };
    write_config(&keys.join(format!("{old_kid}.pem")));
    let service = Configured::start(&config, port);
    let url = format!("http://127.0.0.1:{port}");

    let client_key = keys.join("issuer-1.key.pem");
    let issued = run(&[
        "issue",
        "--client",
        "issuer-1",
        "--key",
        client_key.to_str().unwrap(),
        "--url",
        &url,
        "--json",
    ]);
    assert!(issued.status.success(), "issue: {issued:?}");
    let answer: serde_json::Value = serde_json::from_slice(&issued.stdout).unwrap();
    let uri = answer["uri"].as_str().unwrap();
    let path = uri.strip_prefix(&url).unwrap().to_owned();

    // The verifier that fetched before the rotation.
    let (status, before) = get(port, &path);
    assert_eq!(status, 200, "{before}");
    let old_jwks = jwks(port);
    assert_eq!(kids(&old_jwks), [old_kid.as_str()]);
    assert_eq!(verify(&before, &old_jwks).unwrap(), old_kid);

    // A key file that is no key: the reload is refused, the old key signs.
    let broken = keys.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    write_config(&broken);
    service.hangup();
    let refused = service.wait_for_log("configuration reload refused");
    assert!(refused.contains("signing.key_file"), "{refused}");
    assert!(
        !refused.contains("AAAA"),
        "no key material in logs: {refused}"
    );
    assert_eq!(kids(&jwks(port)), [old_kid.as_str()]);
    let (_, still) = get(port, &path);
    assert_eq!(verify(&still, &old_jwks).unwrap(), old_kid);

    // The rotation: keygen, point key_file at the new file, SIGHUP.
    let out = run(&["keygen", "--out", keys_arg]);
    let new_kid = stdout(&out).trim().to_owned();
    write_config(&keys.join(format!("{new_kid}.pem")));
    service.hangup();
    service.wait_for_log("signing key rotated");

    let new_jwks = jwks(port);
    assert_eq!(kids(&new_jwks), [new_kid.as_str(), old_kid.as_str()]);
    // A verifier may keep the JWKS no longer than a list (ttl_secs = 1).
    let head = get_raw(port, "/.well-known/jwks.json").to_ascii_lowercase();
    assert!(
        head.contains("\r\ncache-control: public, max-age=1\r\n"),
        "{head}"
    );
    // The list is re-signed with the new key at once, not at its half-life.
    let (_, after) = get(port, &path);
    assert_eq!(verify(&after, &new_jwks).unwrap(), new_kid);
    // The token fetched before verifies with the old JWKS and the new one.
    assert_eq!(verify(&before, &old_jwks).unwrap(), old_kid);
    assert_eq!(verify(&before, &new_jwks).unwrap(), old_kid);
    // A verifier still holding the old JWKS cannot know the new key: that
    // is what its max-age bounds (and pre-publishing avoids; README).
    assert!(verify(&after, &old_jwks).is_err());

    // A restart keeps the old key published (the state file beside the keys).
    assert!(keys.join("signing-state.json").is_file());
    drop(service);
    let service = Configured::start(&config, port);
    assert_eq!(kids(&jwks(port)), [new_kid.as_str(), old_kid.as_str()]);

    // And it leaves by itself after token lifetime + ttl: no reload.
    let deadline = Instant::now() + Duration::from_secs(120);
    while kids(&jwks(port)).contains(&old_kid.as_str()) {
        assert!(Instant::now() < deadline, "the old key never retired");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(kids(&jwks(port)), [new_kid.as_str()]);
    let (_, last) = get(port, &path);
    assert_eq!(verify(&last, &jwks(port)).unwrap(), new_kid);
    drop(service);
}
