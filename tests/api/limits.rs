//! Connection limits and bounded metrics end to end: a request body that
//! trickles in is cut off with 408 after `http.body_timeout_ms`, and request
//! methods outside the standard set are counted as `other`.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// An app on an embedded store with `body_timeout_ms`, and the directory
/// that holds its store and key.
async fn app_with_body_timeout(body_timeout_ms: u64) -> (TestApp, tempfile::TempDir) {
    let (dir, spec, _) = fresh_store(StoreChoice::Embedded);
    let mut settings = settings(&spec, &Knobs::default(), dir.path());
    settings.http.body_timeout = Duration::from_millis(body_timeout_ms);
    (start(settings).await, dir)
}

/// Sends the head of a `POST /issue` announcing 1,000 body bytes and the
/// first `sent` of them, then one more byte every `every` (if any) while
/// reading; returns the whole answer (the server closes the connection after
/// it) and how long it took from the end of the head.
async fn slow_post(app: &TestApp, sent: usize, every: Option<Duration>) -> (String, Duration) {
    let addr = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = "POST /issue HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jwt\r\n\
                Content-Length: 1000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'e'; sent]).await.unwrap();
    let started = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let trickle = tokio::spawn(async move {
        if let Some(every) = every {
            for _ in sent..1000 {
                tokio::time::sleep(every).await;
                if wr.write_all(b"e").await.is_err() {
                    return;
                }
            }
        }
        // Keep the writing half open: the client is slow, not finished.
        std::future::pending::<()>().await;
    });
    // Liveness bound: without a body timeout the server waits for the
    // missing bytes for as long as the client likes.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut answer))
        .await
        .expect("no answer within 10 s to a body that never completes")
        .unwrap();
    trickle.abort();
    (String::from_utf8(answer).unwrap(), started.elapsed())
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_with_408() {
    let (app, _dir) = app_with_body_timeout(300).await;
    for (sent, every) in [(3, None), (1, Some(Duration::from_millis(50)))] {
        let (answer, took) = slow_post(&app, sent, every).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 408"), "{answer}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("cache-control: no-store"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "REQUEST_TIMEOUT", "{body}");
        assert_eq!(
            body["error_description"],
            "Request body was not received within 300 ms"
        );
        assert!(
            took >= Duration::from_millis(250),
            "cut off early: {took:?}"
        );
    }
    // A body that arrives in time is read as before.
    let res = app
        .post_jwt("/issue", &TOKEN.token(&TOKEN.issue_payload()))
        .await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn unknown_methods_are_counted_as_other() {
    let app = spawn_app(StoreChoice::Embedded).await;
    for method in ["FOO", "BAR-1", "PURGE", "FOO"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for path in ["/t/ABCDEF012345", "/issue", "/no/such/path"] {
            let res = app
                .http
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_client_error(), "{method} {path}");
        }
    }
    let get = app.get("/health/live").await;
    assert_eq!(get.status(), reqwest::StatusCode::OK);
    let metrics = app.metrics().await;
    let requests: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .collect();
    for name in ["FOO", "BAR-1", "PURGE"] {
        assert!(
            !metrics.contains(&format!("method=\"{name}\"")),
            "{name} became a label:\n{}",
            requests.join("\n")
        );
    }
    let other: u64 = requests
        .iter()
        .filter(|l| l.contains("method=\"other\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(other, 12, "{}", requests.join("\n"));
    assert!(
        requests
            .iter()
            .any(|l| l.contains("route=\"/health/live\"") && l.contains("method=\"GET\"")),
        "{}",
        requests.join("\n")
    );
}
