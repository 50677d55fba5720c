//! Error answers end to end, with exact bodies: every 400/401 example of
//! `/issue` and `/revoke` in the vendored CRS spec, body limits (413, also
//! chunked), unknown paths (404) and wrong methods (405).

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_stores;
use crate::helpers::*;

#[path = "../common/crs_examples.rs"]
mod crs_examples;
use crs_examples::examples;

const JWT: Option<&str> = Some("application/jwt");

/// Sends the request that must produce the example `name` on `path`.
/// `list` is an (idx, uri) issued to TOKEN.
async fn send(app: &TestApp, path: &str, name: &str, list: &(u64, String)) -> reqwest::Response {
    let k = &*TOKEN;
    let p = if path == "/issue" {
        k.issue_payload()
    } else {
        k.change_payload(list.0, &list.1)
    };
    let h = k.header();
    let post = |ct: Option<&'static str>, body: String| app.post(path, ct, body.into_bytes());
    let tok = |h: &Value, p: &Value| post(JWT, k.sign(h, p));
    match name {
        "missing_content_type" => post(None, k.sign(&h, &p)).await,
        "jwt_decode_error" => post(JWT, "not-a-jwt".into()).await,
        "missing_iat" => tok(&h, &without(&p, "iat")).await,
        "invalid_iat" => tok(&h, &with(&p, "iat", json!("yesterday"))).await,
        "missing_jti" => tok(&h, &without(&p, "jti")).await,
        "invalid_jti" => {
            tok(
                &h,
                &with(&p, "jti", json!("BCEA4E51-6ECA-4547-8D18-4B971B72C146")),
            )
            .await
        }
        "missing_status_expiry" => tok(&h, &without(&p, "statusExpiry")).await,
        "invalid_status_expiry" => {
            tok(
                &h,
                &with(&p, "statusExpiry", json!(now() + 2 * 365 * 86_400)),
            )
            .await
        }
        "missing_idx" => tok(&h, &without(&p, "idx")).await,
        "invalid_idx" => tok(&h, &with(&p, "idx", json!(-1))).await,
        "missing_uri" => tok(&h, &without(&p, "uri")).await,
        "invalid_uri_format" => {
            tok(
                &h,
                &with(&p, "uri", json!("https://elsewhere.example/t/A671FED3E9AD")),
            )
            .await
        }
        "missing_kid" => tok(&without(&h, "kid"), &p).await,
        "invalid_kid" => tok(&with(&h, "kid", json!("no-such-kid")), &p).await,
        "missing_typ" => tok(&without(&h, "typ"), &p).await,
        "invalid_typ" => tok(&with(&h, "typ", json!("JOSE")), &p).await,
        "missing_alg" => tok(&without(&h, "alg"), &p).await,
        "invalid_alg" => tok(&with(&h, "alg", json!("RS256")), &p).await,
        "missing_iss" => tok(&h, &without(&p, "iss")).await,
        "non_matching_client_id" => tok(&h, &with(&p, "iss", json!("client-unknown"))).await,
        // Right kid and iss, signed by another client's key.
        "non_verified_signature" => post(JWT, TOKEN2.sign(&h, &p)).await,
        // Service layer: the same jti again with another statusExpiry.
        "invalid_idempotent_request" => {
            let first = app.post_jwt("/issue", &k.token(&p)).await;
            assert_eq!(first.status(), StatusCode::OK);
            tok(&h, &with(&p, "statusExpiry", json!(now() + 1000))).await
        }
        // Service layer: another client revokes TOKEN's entry.
        "client_mismatch" => {
            let p = TOKEN2.change_payload(list.0, &list.1);
            app.post_jwt(path, &TOKEN2.token(&p)).await
        }
        _ => panic!("no test request for the CRS example {path} {name}"),
    }
}

async fn every_crs_400_and_401_example_is_answered_verbatim(store: StoreChoice) {
    let app = spawn_app(store).await;
    let list = app.issue(&TOKEN).await;
    let all = examples();
    let mut checked = 0;
    for (path, status, name, error, desc) in &all {
        if !["/issue", "/revoke"].contains(&path.as_str()) || !matches!(status, 400 | 401) {
            continue;
        }
        let res = send(&app, path, name, &list).await;
        assert_eq!(res.status().as_u16(), *status, "{path} {name}");
        assert_error(res, *status, error, desc).await;
        checked += 1;
    }
    // 7 + 9 for /issue, 10 + 10 for /revoke.
    assert_eq!(checked, 16 + 20, "examples found: {all:?}");
    // None of them changed the entry.
    assert_eq!(app.status_at(&list.1, list.0).await, VALID);
}

async fn bodies_over_16_kib_are_413(store: StoreChoice) {
    let app = spawn_app(store).await;
    let want = |res| {
        assert_error(
            res,
            413,
            "PAYLOAD_TOO_LARGE",
            "Request body must be at most 16384 bytes",
        )
    };
    for path in ["/issue", "/revoke", "/suspend", "/unsuspend"] {
        let res = app.post(path, JWT, vec![b'a'; 17 * 1024]).await;
        want(res).await;
    }
    // Exactly 16 KiB is read (and refused as a JWT, not as too large).
    let res = app.post("/issue", JWT, vec![b'a'; 16 * 1024]).await;
    assert_error(
        res,
        400,
        "BAD_REQUEST",
        "Error decoding JWT or converting to JSON",
    )
    .await;

    // Chunked, without Content-Length: refused once the limit is passed.
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req = format!(
        "POST /issue HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/jwt\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..17 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b'a'; 1024]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything.
    let _ = sock.write_all(&req).await;
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(
            r#"{"error":"PAYLOAD_TOO_LARGE","error_description":"Request body must be at most 16384 bytes"}"#
        ),
        "{answer}"
    );
}

async fn unknown_paths_are_404_and_wrong_methods_405(store: StoreChoice) {
    let app = spawn_app(store).await;
    for path in ["/", "/nope", "/t", "/t/", "/issue/x", "/.well-known/other"] {
        let res = app.get(path).await;
        assert_error(
            res,
            404,
            "NOT_FOUND",
            "No endpoint at this path; see openapi.yaml",
        )
        .await;
    }
    let cases = [
        (reqwest::Method::GET, "/issue"),
        (reqwest::Method::PUT, "/revoke"),
        (reqwest::Method::GET, "/suspend"),
        (reqwest::Method::DELETE, "/unsuspend"),
        (reqwest::Method::POST, "/entries"),
        (reqwest::Method::POST, "/t/A671FED3E9AD"),
        (reqwest::Method::POST, "/b/A671FED3E9AD"),
        (reqwest::Method::POST, "/.well-known/jwks.json"),
        (reqwest::Method::DELETE, "/health/live"),
        (reqwest::Method::POST, "/health/ready"),
        (reqwest::Method::POST, "/metrics"),
        (reqwest::Method::POST, "/webhooks/failed"),
        (reqwest::Method::GET, "/webhooks/redeliver"),
    ];
    for (method, path) in cases {
        let res = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 405, "{method} {path}");
        assert_error(
            res,
            405,
            "METHOD_NOT_ALLOWED",
            "This endpoint does not accept that method",
        )
        .await;
    }
}

both_stores!(
    every_crs_400_and_401_example_is_answered_verbatim,
    bodies_over_16_kib_are_413,
    unknown_paths_are_404_and_wrong_methods_405,
);
