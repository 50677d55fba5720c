//! How soon a change made through one replica shows on another (issue 13,
//! target 6: p99 ≤ 50 ms over 1,000 changes).
//!
//! Two replicas (the real application, `Application::build` on port 0, with
//! the default `freshness_ms` of 250) on one private `redis-server`. For
//! each of N entries issued beforehand: replica B holds the list's token
//! (it was fetched), the entry is revoked through replica A, and from A's
//! 202 on, B is polled (`GET /t/{id}` back to back, each token decoded) until
//! it shows the entry revoked; that delay is one sample. Printed: p50, p99
//! and max in ms, first with `store.notify_changes = true` (pub/sub), then,
//! as the baseline from the same run, with `notify_changes = false` (B sees
//! a change only at its next version check, every `freshness_ms`).
//!
//! `cargo bench --bench propagation` (release). `PROPAGATION_CHANGES` sets N
//! with pub/sub (default 1000); `PROPAGATION_BASELINE_CHANGES` sets N for the
//! baseline (default 200: each of its samples costs up to `freshness_ms`).

#[path = "common/app.rs"]
mod app;
#[path = "../tests/common/json_toml.rs"]
mod json_toml;
#[path = "../tests/store/support/mod.rs"]
mod support;

use app::{settings, uptime};

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use statuslist::client::Issuer;
use statuslist::domain::codec::DEFAULT_DECODE_LIMIT;
use statuslist::http::handlers::unix_now;
use statuslist::publish::decode_token_list;
use statuslist::publish::keys::ServiceKey;
use statuslist::startup::Application;

/// The published value of a revoked entry.
const INVALID: u8 = 1;

/// A poll that has not seen the change after this long is a failure.
const GIVE_UP: Duration = Duration::from_secs(10);

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The status of `idx` in the token list served at `url` (the signature is
/// not checked: the bench measures when, not whether).
async fn status_at(http: &reqwest::Client, url: &str, idx: u64) -> u8 {
    let body = http
        .get(url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let payload = body.split('.').nth(1).expect("a compact JWS");
    let payload = URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    let list = decode_token_list(&payload, DEFAULT_DECODE_LIMIT)
        .expect("a token status list")
        .list;
    list.get(idx).expect("the entry")
}

async fn post(http: &reqwest::Client, url: String, jwt: String) -> serde_json::Value {
    let res = http
        .post(url)
        .header("content-type", "application/jwt")
        .body(jwt)
        .send()
        .await
        .expect("POST");
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.expect("json")
}

/// p50, p99 and max of `samples` (ms), sorted in place.
fn summary(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.99), samples[samples.len() - 1])
}

/// One measurement: replicas A and B on `redis_url` under `prefix`, `n`
/// revocations; the delays in ms.
async fn measure(
    dir: &Path,
    redis_url: &str,
    prefix: &str,
    notify: bool,
    n: usize,
    issuer: &Issuer,
    jwks: &serde_json::Value,
) -> Vec<f64> {
    let build = || async {
        let mut settings = settings(dir, redis_url, prefix, jwks);
        settings.store.notify_changes = notify;
        let app = Application::build(settings, None).await.expect("app");
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        (base, handle)
    };
    let (a, a_handle) = build().await;
    let (b, b_handle) = build().await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    // The entries, all in one list (default capacity 131,072).
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let now = unix_now();
        let jwt = issuer
            .issue_request(&uuid::Uuid::new_v4().to_string(), now, now + 86_400)
            .expect("sign");
        let answer = post(&http, format!("{a}/issue"), jwt).await;
        let uri = answer["uri"].as_str().expect("uri").to_owned();
        let idx = answer["idx"].as_u64().expect("idx");
        entries.push((uri, idx));
    }

    let mut samples = Vec::with_capacity(n);
    for (uri, idx) in &entries {
        let path = uri.trim_start_matches("http://127.0.0.1");
        let on_b = format!("{b}{path}");
        // B holds the list (after the first round it already does).
        assert_ne!(status_at(&http, &on_b, *idx).await, INVALID);
        let jwt = issuer
            .revoke_request(&uuid::Uuid::new_v4().to_string(), unix_now(), uri, *idx)
            .expect("sign");
        post(&http, format!("{a}/revoke"), jwt).await;
        let acknowledged = Instant::now();
        loop {
            if status_at(&http, &on_b, *idx).await == INVALID {
                break;
            }
            assert!(
                acknowledged.elapsed() < GIVE_UP,
                "B did not show a revocation within {GIVE_UP:?}"
            );
        }
        samples.push(acknowledged.elapsed().as_secs_f64() * 1000.0);
    }
    a_handle.stop(true).await;
    b_handle.stop(true).await;
    samples
}

fn main() {
    let changes = env_count("PROPAGATION_CHANGES", 1000);
    let baseline_changes = env_count("PROPAGATION_BASELINE_CHANGES", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = support::RedisServer::start();
    let client_key = ServiceKey::generate();
    let jwks = serde_json::json!({ "keys": [client_key.public_jwk()] });
    let issuer = Issuer::new("bench", client_key);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "propagation: two replicas on one private redis-server ({}), freshness_ms 250; \
         delay from A's 202 to the first GET on B that shows the revocation",
        redis.url()
    );
    println!("{}", uptime("before"));
    let mut pubsub = runtime.block_on(measure(
        dir.path(),
        &redis.url(),
        "pubsub:",
        true,
        changes,
        &issuer,
        &jwks,
    ));
    let (p50, p99, max) = summary(&mut pubsub);
    println!(
        "notify_changes = true  (pub/sub), {changes} revocations: p50 {p50:.2} ms, p99 {p99:.2} ms, \
         max {max:.2} ms (target p99 <= 50 ms)"
    );
    println!("{}", uptime("after pub/sub"));
    let mut baseline = runtime.block_on(measure(
        dir.path(),
        &redis.url(),
        "baseline:",
        false,
        baseline_changes,
        &issuer,
        &jwks,
    ));
    let (b50, b99, bmax) = summary(&mut baseline);
    println!(
        "notify_changes = false (baseline: freshness only), {baseline_changes} revocations: \
         p50 {b50:.2} ms, p99 {b99:.2} ms, max {bmax:.2} ms"
    );
    println!(
        "p99 ratio pub/sub / baseline: {:.3}; {}",
        p99 / b99,
        uptime("after baseline")
    );
    drop(redis);
}
