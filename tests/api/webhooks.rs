//! `GET /webhooks/failed` and `POST /webhooks/redeliver` end to end: the
//! bearer JWT (refusals with their texts, single use), every malformed query
//! and body named, the 404 of a client without a webhook, and a dead letter
//! made for real (a webhook to a closed port with a one-second maximum age)
//! listed, paged, shown by the CLI, redelivered to a receiver that then
//! listens there, and gone.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use statuslist::client::{Batch, ChangeTarget, Issuer as CliIssuer};
use statuslist::domain::events::signature;
use statuslist::publish::keys::ServiceKey;

use crate::both_stores;
use crate::helpers::*;
use crate::receiver::Receiver;

const JTI_USED: &str = "JWT has already been used: sign a new one with a fresh jti";
const NO_WEBHOOK: &str = "No webhook is configured for this client";
const SECRET: &str = "whsec-test-0123456789abcdef";

/// An event id no store holds.
fn some_id(n: u32) -> String {
    statuslist::domain::events::EventId::new(1_700_000_000_000, 42, n).to_string()
}

/// `Authorization: Bearer <fresh listing JWT of who>`.
fn bearer(who: &Issuer) -> String {
    format!("Bearer {}", who.token(&who.listing_payload()))
}

/// `GET /webhooks/failed?{query}`.
async fn failed(app: &TestApp, authorization: Option<&str>, query: &str) -> Response {
    let mut req = app.http.get(app.url(&format!("/webhooks/failed?{query}")));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

/// `POST /webhooks/redeliver` of `body` as `content_type`.
async fn redeliver(
    app: &TestApp,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Response {
    let mut req = app.http.post(app.url("/webhooks/redeliver")).body(body);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.unwrap()
}

/// `POST /webhooks/redeliver` of `{"ids": ids}` as JSON.
async fn redeliver_ids(app: &TestApp, authorization: &str, ids: &[String]) -> Response {
    let body = json!({ "ids": ids }).to_string().into_bytes();
    redeliver(app, Some(authorization), Some("application/json"), body).await
}

/// Asserts 200 and `no-store`; the body.
async fn ok_json(res: Response) -> Value {
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

/// Asserts that openapi.yaml documents `(code, text)` for `status` of
/// `method path` (an `ids[N]` index may differ from the example's).
fn assert_documented(method: &str, path: &str, status: u16, code: &str, text: &str) {
    let index = |t: &str| {
        let mut out = String::new();
        let mut rest = t;
        while let Some(at) = rest.find("ids[") {
            out.push_str(&rest[..at + 4]);
            rest = rest[at + 4..].trim_start_matches(|c: char| c.is_ascii_digit());
            out.push('N');
        }
        out + rest
    };
    let documented =
        crate::openapi::documented_errors(&crate::openapi::spec(), method, path, status);
    assert!(
        documented
            .iter()
            .any(|(c, t)| c == code && index(t) == index(text)),
        "{method} {path} {status} {text:?} is not in openapi.yaml: {documented:?}"
    );
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Writes a webhook secret file (with the trailing newline editors leave)
/// into `dir`.
fn secret_file(dir: &Path) -> String {
    let path = dir.join("webhook-secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    path.display().to_string()
}

/// The lines that give a `[[clients]]` table a webhook to `port`.
fn webhook_lines(port: u16, secret_file: &str) -> String {
    format!(
        "allow_insecure_webhook = true\n\
         webhook = {{ url = \"http://127.0.0.1:{port}/hook\", secret_file = \"{secret_file}\" }}\n"
    )
}

async fn auth_failures_are_401_with_their_texts(store: StoreChoice) {
    let app = spawn_app(store).await;
    let body = || json!({ "ids": [some_id(1)] }).to_string().into_bytes();
    let json_ct = Some("application/json");
    let p = TOKEN.listing_payload();
    let h = TOKEN.header();
    let cases: Vec<(Option<String>, &str)> = vec![
        (
            None,
            "No Authorization header: send Authorization: Bearer <JWT>",
        ),
        (
            Some(format!("Basic {}", TOKEN.token(&p))),
            "Authorization header must be Bearer followed by a JWT",
        ),
        (
            Some(format!("Bearer {}", TOKEN.sign(&h, &without(&p, "aud")))),
            "No aud in Payload: it must be the service's public base URL",
        ),
        (
            Some(format!(
                "Bearer {}",
                TOKEN.sign(&h, &with(&p, "aud", json!("https://other.example")))
            )),
            "Invalid Audience in Payload",
        ),
        (
            Some(format!("Bearer {}", TOKEN2.sign(&h, &p))),
            "JWT has non-verified signature",
        ),
        (
            Some(format!(
                "Bearer {}",
                TOKEN.sign(&h, &with(&p, "iss", json!("client-unknown")))
            )),
            "JWT has non-matching Client ID",
        ),
    ];
    for (authorization, text) in cases {
        assert_documented("get", "/webhooks/failed", 401, "UNAUTHORIZED", text);
        assert_documented("post", "/webhooks/redeliver", 401, "UNAUTHORIZED", text);
        let res = failed(&app, authorization.as_deref(), "").await;
        assert_error(res, 401, "UNAUTHORIZED", text).await;
        let res = redeliver(&app, authorization.as_deref(), json_ct, body()).await;
        assert_error(res, 401, "UNAUTHORIZED", text).await;
    }
    // Authentication comes first: a bad body of an anonymous request is 401.
    let res = redeliver(&app, None, None, b"x".to_vec()).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Each path takes its one method: its 405 is checked in `errors.rs`.
}

/// Every malformed query and body is refused naming what is wrong, before
/// anything else is looked at (so these hold for a client without a webhook
/// too).
async fn bad_queries_and_bodies_are_400_naming_them(store: StoreChoice) {
    let app = spawn_app(store).await;
    for (query, text) in [
        ("page=2", "Unknown query parameter 'page'"),
        (
            "limit=0",
            "Query parameter 'limit' must be a whole number from 1 to 1000",
        ),
        (
            "limit=1001",
            "Query parameter 'limit' must be a whole number from 1 to 1000",
        ),
        (
            "limit=5&limit=5",
            "Query parameter 'limit' is given more than once",
        ),
        (
            "after=0123",
            "Query parameter 'after' must be an event id: 32 lowercase hexadecimal characters",
        ),
    ] {
        assert_documented("get", "/webhooks/failed", 400, "BAD_REQUEST", text);
        let res = failed(&app, Some(&bearer(&TOKEN)), query).await;
        assert_error(res, 400, "BAD_REQUEST", text).await;
    }
    let ok_id = some_id(1);
    let too_many: Vec<String> = (0..1001).map(some_id).collect();
    let object = "Request body must be a JSON object: {\"ids\": [\"<event id>\", …]}";
    let bad_ids = "'ids' must be an array of 1 to 1000 event ids";
    let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
        (
            None,
            json!({"ids": [ok_id]}).to_string().into_bytes(),
            "Content-Type header must be application/json",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"ids=x".to_vec(),
            "Content-Type header must be application/json",
        ),
        (Some("application/json"), b"".to_vec(), object),
        (Some("application/json"), b"{\"ids\": [".to_vec(), object),
        (Some("application/json"), b"[]".to_vec(), object),
        (
            Some("application/json"),
            b"{}".to_vec(),
            "No ids in the request body: send {\"ids\": [\"<event id>\", …]}",
        ),
        (
            Some("application/json"),
            json!({"ids": [ok_id], "all": true})
                .to_string()
                .into_bytes(),
            "Unknown member 'all' in the request body",
        ),
        (Some("application/json"), b"{\"ids\": []}".to_vec(), bad_ids),
        (
            Some("application/json"),
            b"{\"ids\": \"x\"}".to_vec(),
            bad_ids,
        ),
        (
            Some("application/json"),
            json!({ "ids": too_many }).to_string().into_bytes(),
            bad_ids,
        ),
        (
            Some("application/json; charset=utf-8"),
            json!({"ids": [ok_id, ok_id.to_uppercase()]})
                .to_string()
                .into_bytes(),
            "'ids[1]' must be an event id: 32 lowercase hexadecimal characters",
        ),
        (
            Some("application/json"),
            json!({"ids": [7]}).to_string().into_bytes(),
            "'ids[0]' must be an event id: 32 lowercase hexadecimal characters",
        ),
    ];
    for (content_type, body, text) in cases {
        assert_documented("post", "/webhooks/redeliver", 400, "BAD_REQUEST", text);
        let res = redeliver(&app, Some(&bearer(&TOKEN)), content_type, body).await;
        assert_error(res, 400, "BAD_REQUEST", text).await;
    }
    // 1,000 ids fit (about 35 KB); a body over 64 KiB does not.
    let too_large = "Request body must be at most 65536 bytes";
    assert_documented(
        "post",
        "/webhooks/redeliver",
        413,
        "PAYLOAD_TOO_LARGE",
        too_large,
    );
    let big = vec![b' '; 64 * 1024 + 1];
    let res = redeliver(&app, Some(&bearer(&TOKEN)), Some("application/json"), big).await;
    assert_error(res, 413, "PAYLOAD_TOO_LARGE", too_large).await;
}

/// Needs the dispatch wiring (`Service` told which clients have a webhook).
async fn clients_without_a_webhook_get_404(store: StoreChoice) {
    assert_documented("get", "/webhooks/failed", 404, "NOT_FOUND", NO_WEBHOOK);
    assert_documented("post", "/webhooks/redeliver", 404, "NOT_FOUND", NO_WEBHOOK);
    let app = spawn_app(store).await;
    let res = failed(&app, Some(&bearer(&TOKEN)), "").await;
    assert_error(res, 404, "NOT_FOUND", NO_WEBHOOK).await;
    let auth = bearer(&TOKEN);
    for _ in 0..2 {
        // Not used up by the 404: the same JWT gets the same answer.
        let res = redeliver_ids(&app, &auth, &[some_id(1)]).await;
        assert_error(res, 404, "NOT_FOUND", NO_WEBHOOK).await;
    }
}

/// Needs the webhook configuration, the outbox adapters and the dispatch
/// wiring.
async fn a_webhook_client_starts_with_nothing_failed(store: StoreChoice) {
    let dir = tempfile::tempdir().unwrap();
    let knobs = Knobs {
        token_client_toml: webhook_lines(closed_port(), &secret_file(dir.path())),
        ..Knobs::default()
    };
    let app = spawn_app_with(store, knobs).await;
    let auth = bearer(&TOKEN);
    // A malformed query does not use the JWT up…
    let res = failed(&app, Some(&auth), "limit=0").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = ok_json(failed(&app, Some(&auth), "").await).await;
    assert_eq!(body, json!({"events": [], "hasMore": false}));
    // …an answered request does.
    let res = failed(&app, Some(&auth), "").await;
    assert_error(res, 401, "UNAUTHORIZED", JTI_USED).await;
    let auth = bearer(&TOKEN);
    let (a, b) = (some_id(1), some_id(2));
    let body = ok_json(redeliver_ids(&app, &auth, &[a.clone(), b.clone(), a.clone()]).await).await;
    assert_eq!(body, json!({"redelivered": [], "unknown": [a, b]}));
    let res = redeliver_ids(&app, &auth, &[some_id(3)]).await;
    assert_error(res, 401, "UNAUTHORIZED", JTI_USED).await;
    // Another client's JWT is another client: it has no webhook.
    let res = failed(&app, Some(&bearer(&TOKEN2)), "").await;
    assert_error(res, 404, "NOT_FOUND", NO_WEBHOOK).await;
}

/// Runs the CLI with `args`; asserts success and returns its stdout.
async fn cli(args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_statuslist"))
        .args(args)
        .env_remove("STATUSLIST_URL")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "statuslist {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Needs everything of issue 15: the webhook configuration, both outbox
/// adapters, the dispatcher and its wiring.
///
/// A client registered like `keygen --client` makes one (so that the CLI
/// can sign for it) has a webhook to a port nothing listens on and a
/// maximum age of one second: its events are tried, fail, and are
/// dead-lettered within about a second. They are listed (HTTP, paged, and
/// by the CLI), a receiver then starts on that port, and the CLI
/// redelivers them: each arrives, signed, and the listing is empty again.
async fn a_dead_letter_is_listed_then_redelivered(store: StoreChoice) {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("client-w.key.pem");
    let jwks_path = dir.path().join("client-w.jwks.json");
    let key = ServiceKey::generate();
    key.save_pem(&key_path).unwrap();
    std::fs::write(
        &jwks_path,
        json!({ "keys": [key.public_jwk()] }).to_string(),
    )
    .unwrap();
    let port = closed_port();
    let knobs = Knobs {
        extra_toml: format!(
            "[webhooks]\ntimeout_ms = 1000\nretry_initial_ms = 20\nretry_max_secs = 1\n\
             max_age_secs = 1\npoll_interval_ms = 50\nlease_secs = 5\nrecheck_ms = 50\n\
             [[clients]]\nid = \"client-w\"\nformat = \"token\"\njwks_file = \"{}\"\n{}",
            jwks_path.display(),
            webhook_lines(port, &secret_file(dir.path()))
        ),
        ..Knobs::default()
    };
    let app = spawn_app_with(store, knobs).await;
    let who = CliIssuer::new("client-w", ServiceKey::load_pem(&key_path).unwrap());
    let listing = || {
        let token = who.listing_token(&jti(), now(), BASE).unwrap();
        format!("Bearer {token}")
    };

    // One `entries.issued` (a batch of 2 with a ref), then two
    // `entry.revoked` (the ref revoked).
    let started = now();
    let batch = Batch {
        issuance_ref: Some("order-1"),
        count: Some(2),
    };
    let jwt = who
        .batch_request(&jti(), now(), now() + 86_400, batch)
        .unwrap();
    let res = app.post_jwt("/issue", &jwt).await;
    assert_eq!(res.status(), StatusCode::OK);
    let issued = entries_of(&res.json().await.unwrap());
    let jwt = who
        .change_request(&jti(), now(), &ChangeTarget::Ref("order-1"))
        .unwrap();
    assert_eq!(
        app.post_jwt("/revoke", &jwt).await.status(),
        StatusCode::ACCEPTED
    );

    // Dead within about a second; wait for all three.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let body = ok_json(failed(&app, Some(&listing()), "").await).await;
        if body["events"].as_array().unwrap().len() == 3 {
            break body;
        }
        assert!(Instant::now() < deadline, "not dead-lettered: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listed["hasMore"], false);
    let events = listed["events"].as_array().unwrap().clone();
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "listed by id");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["entries.issued", "entry.revoked", "entry.revoked"]);
    for e in &events {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["attempts", "deadAt", "error", "event", "id", "type"],
            "{e}"
        );
        assert!(e["attempts"].as_u64().unwrap() >= 1, "{e}");
        let dead_at = e["deadAt"].as_u64().unwrap();
        assert!((started..=now()).contains(&dead_at), "{e}");
        assert!(!e["error"].as_str().unwrap().is_empty(), "{e}");
        // The body the webhook is sent.
        let ev = &e["event"];
        assert_eq!(ev["id"], e["id"]);
        assert_eq!(ev["type"], e["type"]);
        assert_eq!(ev["client"], "client-w");
        assert!(
            (started..=now()).contains(&ev["at"].as_u64().unwrap()),
            "{e}"
        );
        assert_eq!(ev["data"]["ref"], "order-1");
        assert!(!e["error"].as_str().unwrap().contains(SECRET));
    }
    assert_eq!(idx_uris(&events[0]["event"]["data"], "entries"), issued);
    assert_eq!(events[0]["event"]["data"]["status"], "VALID");
    let revoked: Vec<(u64, String)> = events[1..]
        .iter()
        .map(|e| {
            let d = &e["event"]["data"];
            assert_eq!(d["status"], "INVALID");
            (
                d["idx"].as_u64().unwrap(),
                d["uri"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(revoked, issued, "one event per entry, in allocation order");

    // Pages, by id.
    let page = ok_json(failed(&app, Some(&listing()), "limit=2").await).await;
    assert_eq!(page["events"].as_array().unwrap()[..], events[..2]);
    assert_eq!(page["hasMore"], true);
    let query = format!("after={}&limit=2", ids[1]);
    let page = ok_json(failed(&app, Some(&listing()), &query).await).await;
    assert_eq!(page, json!({"events": [events[2]], "hasMore": false}));

    // The CLI shows the same.
    let key_arg = key_path.display().to_string();
    let who_args = [
        "--client",
        "client-w",
        "--key",
        &key_arg,
        "--url",
        &app.address,
        "--aud",
        BASE,
    ];
    let out = cli(&[&["webhooks", "list", "--failed", "--json"][..], &who_args].concat()).await;
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown, json!({ "events": events }));
    let table = cli(&[&["webhooks", "list", "--failed"][..], &who_args].concat()).await;
    assert!(table.ends_with("3 failed events\n"), "{table}");
    assert!(ids.iter().all(|id| table.contains(id.as_str())), "{table}");

    // A receiver listens now; the CLI redelivers the three and one unknown.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("port {port} was taken meanwhile: {e}"));
    let receiver = Receiver::on(listener);
    let unknown = some_id(9);
    let mut args: Vec<&str> = vec!["webhooks", "redeliver", "--json"];
    args.extend(who_args);
    args.extend(ids.iter().map(String::as_str));
    args.push(&unknown);
    let out = cli(&args).await;
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer, json!({"redelivered": ids, "unknown": [unknown]}));

    let deliveries = receiver.wait_for(3).await;
    let mut delivered: Vec<String> = Vec::new();
    for d in &deliveries {
        let body: Value = serde_json::from_slice(&d.body).unwrap();
        let e = events.iter().find(|e| e["id"] == body["id"]).unwrap();
        assert_eq!(body, e["event"], "the listed body is the body sent");
        assert_eq!(d.event_id, body["id"].as_str().unwrap());
        assert_eq!(d.content_type, "application/json");
        let t: u64 = d
            .signature
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(d.signature, signature(SECRET.as_bytes(), t, &d.body));
        delivered.push(d.event_id.clone());
    }
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered, ids);

    // Gone from the dead letters; redelivering them again finds none.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = ok_json(failed(&app, Some(&listing()), "").await).await;
        if body["events"] == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "still listed: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = ok_json(redeliver_ids(&app, &listing(), &ids).await).await;
    assert_eq!(body, json!({"redelivered": [], "unknown": ids}));
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("statuslist_webhook_deliveries_total{")
                && l.contains("outcome=\"dead\"")
                && l.ends_with(" 3")),
        "{metrics}"
    );
}

both_stores!(
    auth_failures_are_401_with_their_texts,
    bad_queries_and_bodies_are_400_naming_them,
    clients_without_a_webhook_get_404,
    a_webhook_client_starts_with_nothing_failed,
    a_dead_letter_is_listed_then_redelivered,
);
