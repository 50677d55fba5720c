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
