//! HTTP load figures, each next to a baseline measured in the same run:
//!
//! 1. `GET /t/{id}` of a 131,072-entry list with 64 connections, next to a
//!    minimal actix-web handler returning the same bytes from memory
//!    (target ≥ 0.8×).
//! 2. `POST /issue` requests per second and p99 with 64 connections on a
//!    private Redis, next to the ES256 verification ceiling of the same cores
//!    (bare `jsonwebtoken` verification on every core; target ≥ 0.5×,
//!    p99 ≤ 20 ms).
//!
//! The load comes from `wrk` (Debian package `wrk`) in a second process;
//! /issue bodies are pre-signed (one fresh `jti` each) and fed to wrk by a
//! Lua script. Run: `cargo bench --bench http_load` (release).
//! `HTTP_LOAD_SECS` sets the length of each wrk run (default 10).

#[path = "../tests/common/json_toml.rs"]
mod json_toml;
#[path = "../tests/store/support/mod.rs"]
mod support;

use json_toml::json_to_toml;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use statuslist::client::Issuer;
use statuslist::config::Settings;
use statuslist::http::handlers::unix_now;
use statuslist::publish::keys::ServiceKey;
use statuslist::startup::Application;

const CONNECTIONS: &str = "64";

fn secs() -> u64 {
    std::env::var("HTTP_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// Requests/s and p99 (ms) from wrk's `--latency` report; `args` go to the
/// script.
fn wrk(url: &str, script: Option<&Path>, args: &[String]) -> (f64, f64, String) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c", CONNECTIONS, "-d"])
        .arg(format!("{}s", secs()))
        .arg("--latency");
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(url);
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    let out = cmd
        .output()
        .expect("wrk runs (install it: apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_latency(v.trim()))
        .unwrap_or(f64::NAN);
    (rps, p99, text)
}

fn parse_latency(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
    let num: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => num / 1000.0,
        "ms" => num,
        "s" => num * 1000.0,
        _ => f64::NAN,
    }
}

fn settings(dir: &Path, store_url: &str, jwks: &serde_json::Value) -> Settings {
    let toml = format!(
        r#"
public_base_url = "http://127.0.0.1"
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
redis_prefix = "bench:"
command_timeout_ms = 2000
[signing]
key_file = "{key}"
generate_if_missing = true
[[clients]]
id = "bench"
format = "token"
jwks = {jwks}
"#,
        key = dir.join("service.pem").display(),
        jwks = json_to_toml(jwks),
    );
    Settings::from_toml_str(&toml).expect("bench settings")
}

/// Bare ES256 verifications per second on every core, with the backend the
/// service verifies with.
fn es256_ceiling(jwt: &str, jwk: &serde_json::Value) -> f64 {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key");
    let (message, signature) = jwt.rsplit_once('.').expect("jwt");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (stop, count, key) = (stop.clone(), count.clone(), &key);
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ok = jsonwebtoken::crypto::verify(
                        signature,
                        message.as_bytes(),
                        key,
                        jsonwebtoken::Algorithm::ES256,
                    );
                    assert!(matches!(ok, Ok(true)));
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs(secs().min(5)));
        stop.store(true, Ordering::Relaxed);
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("http_load: wrk is not installed (apt-get install wrk); skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = support::RedisServer::start();
    let client_key = ServiceKey::generate();
    let jwks = serde_json::json!({ "keys": [client_key.public_jwk()] });
    let issuer = Issuer::new("bench", client_key.clone());
    let settings = settings(dir.path(), &redis.url(), &jwks);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime
        .block_on(Application::build(settings, None))
        .expect("app");
    let port = app.port();
    let handle = app.handle();
    runtime.spawn(app.run_until_stopped());
    let base = format!("http://127.0.0.1:{port}");
    println!(
        "http_load: service on {base}, private redis-server at {}",
        redis.url()
    );
    let load = |cmd: &str| {
        Command::new("uptime")
            .output()
            .map(|o| format!("{cmd}: {}", String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_default()
    };
    println!("{}", load("before"));

    // Pre-sign enough /issue bodies for the run (each jti is used once).
    // Each round gets its own slice of bodies, so no round replays another's.
    let per_round = 160_000usize;
    let t = unix_now();
    let bodies: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..per_round * 3 / 4)
                        .map(|_| {
                            issuer
                                .issue_request(&uuid::Uuid::new_v4().to_string(), t, t + 86_400)
                                .expect("sign")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("signer"))
            .collect()
    });
    let bodies_path = dir.path().join("bodies.txt");
    std::fs::write(&bodies_path, bodies.join("\n")).expect("bodies");
    let script = dir.path().join("issue.lua");
    let mut f = std::fs::File::create(&script).expect("script");
    write!(
        f,
        r#"
local bodies = {{}}
for line in io.lines("{}") do bodies[#bodies + 1] = line end
local counter = 0
local threads = 0
local offset = 0
setup = function(thread) thread:set("id", threads); threads = threads + 1 end
init = function(args) counter = id; offset = tonumber(args[1]) or 0 end
request = function()
  counter = counter + 2
  local body = bodies[offset + (counter % {per_round}) + 1]
  return wrk.format("POST", "/issue", {{ ["Content-Type"] = "application/jwt" }}, body)
end
"#,
        bodies_path.display(),
        per_round = per_round,
    )
    .expect("script");

    // One list with some revocations, as a verifier would fetch it.
    let (list_path, list_body) = runtime.block_on(async {
        let http = reqwest::Client::new();
        let mut uri = String::new();
        for _ in 0..2_000 {
            let jwt = issuer
                .issue_request(
                    &uuid::Uuid::new_v4().to_string(),
                    unix_now(),
                    unix_now() + 86_400,
                )
                .expect("sign");
            let answer: serde_json::Value = http
                .post(format!("{base}/issue"))
                .header("content-type", "application/jwt")
                .body(jwt)
                .send()
                .await
                .expect("issue")
                .json()
                .await
                .expect("json");
            uri = answer["uri"].as_str().expect("uri").to_owned();
            if answer["idx"].as_u64().unwrap_or(0).is_multiple_of(10) {
                let jwt = issuer
                    .revoke_request(
                        &uuid::Uuid::new_v4().to_string(),
                        unix_now(),
                        &uri,
                        answer["idx"].as_u64().unwrap_or(0),
                    )
                    .expect("sign");
                let _ = http
                    .post(format!("{base}/revoke"))
                    .header("content-type", "application/jwt")
                    .body(jwt)
                    .send()
                    .await;
            }
        }
        let path = uri.trim_start_matches("http://127.0.0.1").to_owned();
        let body = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        (path, body)
    });
    println!(
        "list {list_path}: {} bytes of statuslist+jwt",
        list_body.len()
    );

    // Baseline: the same bytes from memory in a minimal actix-web handler.
    let baseline_port = {
        let body = web::Bytes::from(list_body.to_vec());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            let body = body.clone();
            App::new().route(
                "/t/{id}",
                web::get().to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/statuslist+jwt")
                            .body(body)
                    }
                }),
            )
        })
        .listen(listener)
        .expect("listen")
        .run();
        runtime.spawn(server);
        port
    };

    // Alternate baseline and service runs, and report medians, so that load
    // from elsewhere on the machine hits both alike.
    let rounds = 3;
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let (base_rps, base_p99, _) = wrk(
            &format!("http://127.0.0.1:{baseline_port}{list_path}"),
            None,
            &[],
        );
        let (get_rps, get_p99, get_text) = wrk(&format!("{base}{list_path}"), None, &[]);
        if get_text.contains("Non-2xx") {
            println!("warning: non-2xx answers during GET load:\n{get_text}");
        }
        println!(
            "round {round}: GET /t/{{id}} (131,072 entries): {get_rps:.0} req/s, p99 {get_p99:.2} ms; \
             minimal actix handler, same bytes: {base_rps:.0} req/s, p99 {base_p99:.2} ms; ratio {:.2}",
            get_rps / base_rps
        );
        ratios.push(get_rps / base_rps);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "GET median ratio {:.2} (target >= 0.8)",
        ratios[ratios.len() / 2]
    );
    println!("{}", load("after GET"));

    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let ceiling = es256_ceiling(&bodies[0], &jwks["keys"][0]);
        let (issue_rps, issue_p99, issue_text) = wrk(
            &format!("{base}/issue"),
            Some(&script),
            &[((round - 1) * per_round).to_string()],
        );
        if issue_text.contains("Non-2xx") {
            println!("warning: non-2xx answers during /issue load:\n{issue_text}");
        }
        println!(
            "round {round}: POST /issue on Redis: {issue_rps:.0} req/s, p99 {issue_p99:.2} ms; \
             bare ES256 verification on all cores: {ceiling:.0}/s; ratio {:.2}",
            issue_rps / ceiling
        );
        ratios.push(issue_rps / ceiling);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "/issue median ratio {:.2} (target >= 0.5, p99 <= 20 ms)",
        ratios[ratios.len() / 2]
    );
    println!("{}", load("after /issue"));
    runtime.block_on(handle.stop(true));
    drop(redis);
}
