//! HTTP load figures, each next to the ceiling users compare with, measured
//! in the same run on the same cores (issue 13):
//!
//! 1. `GET /t/{id}` of a 131,072-entry list with 1 % of its entries set,
//!    64 connections, next to nginx serving the same bytes from a file
//!    (target ≥ 0.9×), and next to a minimal actix-web handler returning the
//!    same bytes from memory (the framework's own ceiling).
//! 2. `POST /issue` requests per second and p99 with 64 connections on a
//!    private Redis, next to the ES256 verify rate of OpenSSL on every core
//!    (`openssl speed -multi N -seconds 3 ecdsap256`, its verify/s column;
//!    target ≥ 0.5×, p99 ≤ 20 ms), and next to bare `jsonwebtoken`
//!    verification on every core (the backend the service verifies with).
//!
//! The load comes from `wrk -t2 -c64` (Debian package `wrk`) in a second
//! process; /issue bodies are pre-signed (one fresh `jti` each) and fed to
//! wrk by a Lua script. nginx is looked up on the `PATH`, then at
//! `/usr/sbin/nginx`; when it or `openssl` is missing the bench says how to
//! get it and skips that ratio.
//!
//! Run: `cargo bench --bench http_load` (release). Knobs:
//! `HTTP_LOAD_SECS` (length of each wrk run, default 10),
//! `HTTP_LOAD_ROUNDS` (rounds per scenario, default 3; medians are
//! reported), `HTTP_LOAD_ONLY` (`get` or `issue`: run one scenario). The
//! service runs in the bench's process, whose pid is printed first (for
//! `perf record -g -p PID` during a run).

#[path = "common/app.rs"]
mod app;
#[path = "../tests/common/json_toml.rs"]
mod json_toml;
#[path = "../tests/store/support/mod.rs"]
mod support;

use app::{settings, uptime};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use futures::StreamExt;
use statuslist::client::Issuer;
use statuslist::http::handlers::unix_now;
use statuslist::publish::keys::ServiceKey;
use statuslist::startup::Application;

const CONNECTIONS: &str = "64";
/// Entries of the list the GET scenario fetches (the default capacity).
const ENTRIES: usize = 131_072;
/// Entries set in that list: 1 % of them.
const SET: usize = ENTRIES / 100 + 1;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn secs() -> u64 {
    env_u64("HTTP_LOAD_SECS", 10).max(1)
}

/// One wrk run's figures.
struct Run {
    rps: f64,
    p99_ms: f64,
    requests: u64,
    text: String,
}

/// Runs `wrk -t2 -c64 -d<secs>s --latency [-s script] url [-- args]`.
fn wrk(url: &str, script: Option<&Path>, args: &[String]) -> Run {
    wrk_with(url, script, args, None)
}

/// [`wrk`] with one extra request header (`-H`).
fn wrk_with(url: &str, script: Option<&Path>, args: &[String], header: Option<&str>) -> Run {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c", CONNECTIONS, "-d"])
        .arg(format!("{}s", secs()))
        .arg("--latency");
    if let Some(h) = header {
        cmd.arg("-H").arg(h);
    }
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
    let p99_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_latency(v.trim()))
        .unwrap_or(f64::NAN);
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(0);
    Run {
        rps,
        p99_ms,
        requests,
        text,
    }
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

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Bare ES256 verifications per second on every core, with the backend the
/// service verifies with (jsonwebtoken on aws-lc-rs).
fn jsonwebtoken_ceiling(jwt: &str, jwk: &serde_json::Value) -> f64 {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key");
    let (message, signature) = jwt.rsplit_once('.').expect("jwt");
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores() {
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

/// The command whose verify/s column is the /issue ceiling.
fn openssl_command() -> Vec<String> {
    [
        "openssl",
        "speed",
        "-multi",
        &cores().to_string(),
        "-seconds",
        "3",
        "ecdsap256",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// OpenSSL's ES256 verifications per second on every core, or why not.
fn openssl_verify_rate() -> Result<f64, String> {
    let cmd = openssl_command();
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run openssl ({e}): install it (Debian/Ubuntu: apt-get install openssl)")
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The summary line: ` 256 bits ecdsa (nistp256)   0.0000s   0.0000s  82572.7  26713.3`;
    // the last column is verify/s.
    text.lines()
        .find(|l| l.contains("ecdsa (nistp256)"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| {
            format!(
                "no `ecdsa (nistp256)` line in the output of {}",
                cmd.join(" ")
            )
        })
}

/// Whether this process runs as root (`id -u` is 0).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// nginx on the PATH, else where Debian installs it.
fn find_nginx() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nginx"))
        .chain(std::iter::once(PathBuf::from("/usr/sbin/nginx")))
        .find(|p| p.is_file())
}

/// A private nginx serving one file, stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    config: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (a SIGKILL would leave
        // them running).
        let stopped = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts nginx (a master and two workers, one per core, as nginx is
/// deployed) on a free port serving `body` at `path` (`/t/{id}`) with the
/// service's media type, and `gzip` at `/gz{path}` with
/// `Content-Encoding: gzip`, or says why not.
fn start_nginx(dir: &Path, path: &str, body: &[u8], gzip: &[u8]) -> Result<Nginx, String> {
    let bin = find_nginx().ok_or(
        "nginx is not on the PATH nor at /usr/sbin/nginx: install it \
         (Debian/Ubuntu: apt-get install nginx-light, or nginx)",
    )?;
    let root = dir.join("nginx");
    let file = root.join("www").join(path.trim_start_matches('/'));
    std::fs::create_dir_all(file.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
    std::fs::write(&file, body).map_err(|e| e.to_string())?;
    let gz_file = root
        .join("www")
        .join("gz")
        .join(path.trim_start_matches('/'));
    std::fs::create_dir_all(gz_file.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
    std::fs::write(&gz_file, gzip).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let r = root.display();
    // Workers started by root drop to `nobody`, who cannot read a private
    // temporary directory: keep them as the user running the bench.
    let user = if is_root() { "user root; " } else { "" };
    let config = format!(
        "daemon off; master_process on; worker_processes 2; {user}pid {r}/nginx.pid; \
         error_log {r}/error.log; events {{ worker_connections 1024; }} \
         http {{ access_log off; types {{ }} default_type application/statuslist+jwt; \
         client_body_temp_path {r}/tmp; proxy_temp_path {r}/tmp; fastcgi_temp_path {r}/tmp; \
         uwsgi_temp_path {r}/tmp; scgi_temp_path {r}/tmp; \
         server {{ listen 127.0.0.1:{port}; root {r}/www; \
         location /gz/ {{ add_header Content-Encoding gzip; }} }} }}"
    );
    std::fs::write(root.join("nginx.conf"), &config).map_err(|e| e.to_string())?;
    let child = Command::new(&bin)
        .arg("-p")
        .arg(&root)
        .arg("-e")
        .arg(root.join("error.log"))
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let nginx = Nginx {
        child,
        port,
        config,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(nginx);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "nginx did not listen on {port} within 5 s (see {r}/error.log)"
    ))
}

/// The minimal actix-web handler returning `body` at `/t/{id}`; its port.
fn start_minimal_actix(runtime: &tokio::runtime::Runtime, body: Vec<u8>) -> u16 {
    let body = web::Bytes::from(body);
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
}

/// Issues `SET + 100` indexes and revokes `SET` of them (1 % of the list),
/// then fetches the list: its path and bytes.
async fn build_list(base: &str, issuer: &Issuer) -> (String, Vec<u8>) {
    let http = reqwest::Client::new();
    let now = unix_now();
    let issued: Vec<(String, u64)> = futures::stream::iter(0..SET + 100)
        .map(|_| {
            let jwt = issuer
                .issue_request(&uuid::Uuid::new_v4().to_string(), now, now + 86_400)
                .expect("sign");
            let http = &http;
            async move {
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
                (
                    answer["uri"].as_str().expect("uri").to_owned(),
                    answer["idx"].as_u64().expect("idx"),
                )
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let uri = issued[0].0.clone();
    let revoked: Vec<bool> =
        futures::stream::iter(issued.iter().filter(|(u, _)| *u == uri).take(SET))
            .map(|(uri, idx)| {
                let jwt = issuer
                    .revoke_request(&uuid::Uuid::new_v4().to_string(), now, uri, *idx)
                    .expect("sign");
                let http = &http;
                async move {
                    http.post(format!("{base}/revoke"))
                        .header("content-type", "application/jwt")
                        .body(jwt)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
    let set = revoked.iter().filter(|ok| **ok).count();
    let path = uri.trim_start_matches("http://127.0.0.1").to_owned();
    let body = http
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    println!(
        "list {path}: {ENTRIES} entries, {set} revoked ({:.2} %), {} bytes of statuslist+jwt",
        set as f64 * 100.0 / ENTRIES as f64,
        body.len()
    );
    (path, body.to_vec())
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("http_load: wrk is not installed (apt-get install wrk); skipping");
        return;
    }
    let rounds = env_u64("HTTP_LOAD_ROUNDS", 3).max(1);
    let only = std::env::var("HTTP_LOAD_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = support::RedisServer::start();
    let client_key = ServiceKey::generate();
    let jwks = serde_json::json!({ "keys": [client_key.public_jwk()] });
    let issuer = Issuer::new("bench", client_key.clone());
    let settings = settings(dir.path(), &redis.url(), "bench:", &jwks);

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
        "http_load: service (pid {}) on {base}, private redis-server at {}; {} cores; \
         each run: wrk -t2 -c{CONNECTIONS} -d{}s --latency; {rounds} rounds, medians reported",
        std::process::id(),
        redis.url(),
        cores(),
        secs()
    );
    println!("{}", uptime("at start"));

    if only.is_empty() || only == "get" {
        let (list_path, list_body) = runtime.block_on(build_list(&base, &issuer));
        let actix_port = start_minimal_actix(&runtime, list_body.clone());
        let gzip_body = runtime.block_on(async {
            reqwest::Client::new()
                .get(format!("{base}{list_path}"))
                .header("accept-encoding", "gzip")
                .send()
                .await
                .expect("get gzip")
                .bytes()
                .await
                .expect("gzip body")
                .to_vec()
        });
        println!(
            "gzip representation: {} bytes ({:.1} % of the identity body)",
            gzip_body.len(),
            gzip_body.len() as f64 * 100.0 / list_body.len() as f64
        );
        let nginx = match start_nginx(dir.path(), &list_path, &list_body, &gzip_body) {
            Ok(n) => {
                println!("nginx on port {} with: {}", n.port, n.config);
                Some(n)
            }
            Err(why) => {
                println!("nginx baseline skipped: {why}");
                None
            }
        };
        // Alternate baselines and service runs, and report medians, so that
        // load from elsewhere on the machine hits all alike.
        let (mut vs_nginx, mut vs_actix, mut ours) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let nginx_run = nginx.as_ref().map(|n| {
                wrk(
                    &format!("http://127.0.0.1:{}{list_path}", n.port),
                    None,
                    &[],
                )
            });
            let get = wrk(&format!("{base}{list_path}"), None, &[]);
            if get.text.contains("Non-2xx") {
                println!("warning: non-2xx answers during GET load:\n{}", get.text);
            }
            let actix = wrk(
                &format!("http://127.0.0.1:{actix_port}{list_path}"),
                None,
                &[],
            );
            let mut line = format!(
                "round {round}: GET /t/{{id}}: {:.0} req/s, p99 {:.2} ms",
                get.rps, get.p99_ms
            );
            if let Some(n) = &nginx_run {
                line += &format!(
                    "; nginx, same bytes from a file: {:.0} req/s, p99 {:.2} ms, ratio {:.2}",
                    n.rps,
                    n.p99_ms,
                    get.rps / n.rps
                );
                vs_nginx.push(get.rps / n.rps);
            }
            line += &format!(
                "; minimal actix handler, same bytes: {:.0} req/s, ratio {:.2}",
                actix.rps,
                get.rps / actix.rps
            );
            println!("{line}");
            ours.push(get.rps);
            vs_actix.push(get.rps / actix.rps);
        }
        let nginx_summary = if nginx.is_some() {
            format!("{:.2} (target >= 0.9)", median(vs_nginx))
        } else {
            "skipped (no nginx)".to_owned()
        };
        println!(
            "GET median: {:.0} req/s; ratio to nginx {nginx_summary}; ratio to minimal actix {:.2}",
            median(ours),
            median(vs_actix)
        );
        // The same with `Accept-Encoding: gzip`: the service negotiates and
        // sends its prebuilt gzip body; nginx sends the same gzip bytes from
        // a file.
        let gz_header = Some("Accept-Encoding: gzip");
        let (mut gz_ours, mut gz_vs_nginx) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let nginx_run = nginx.as_ref().map(|n| {
                wrk_with(
                    &format!("http://127.0.0.1:{}/gz{list_path}", n.port),
                    None,
                    &[],
                    gz_header,
                )
            });
            let get = wrk_with(&format!("{base}{list_path}"), None, &[], gz_header);
            let mut line = format!(
                "round {round}: GET /t/{{id}} gzip: {:.0} req/s, p99 {:.2} ms",
                get.rps, get.p99_ms
            );
            if let Some(n) = &nginx_run {
                line += &format!(
                    "; nginx, same gzip bytes from a file: {:.0} req/s, p99 {:.2} ms, ratio {:.2}",
                    n.rps,
                    n.p99_ms,
                    get.rps / n.rps
                );
                gz_vs_nginx.push(get.rps / n.rps);
            }
            println!("{line}");
            gz_ours.push(get.rps);
        }
        let gz_summary = if nginx.is_some() {
            format!("{:.2} (target >= 0.9)", median(gz_vs_nginx))
        } else {
            "skipped (no nginx)".to_owned()
        };
        println!(
            "GET gzip median: {:.0} req/s; ratio to nginx {gz_summary}",
            median(gz_ours)
        );
        println!("{}", uptime("after GET"));
    }

    if only.is_empty() || only == "issue" {
        // Pre-sign enough /issue bodies for every round: each jti is used
        // once, so no request is an idempotent replay (a cheaper path).
        let per_round = usize::try_from(secs() * 25_000).unwrap_or(usize::MAX);
        let total = per_round * usize::try_from(rounds).unwrap_or(1);
        let t = unix_now();
        let signers = cores().max(1);
        let bodies: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..signers)
                .map(|_| {
                    s.spawn(|| {
                        (0..total.div_ceil(signers))
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
-- Each thread formats its share of this round's requests once, at start:
-- formatting per request (wrk.format) costs the load generator more CPU
-- than the service spends on some requests, on the same cores.
local threads = 0
local requests = {{}}
local n = 0
local i = 0
setup = function(thread) thread:set("id", threads); threads = threads + 1 end
init = function(args)
  local offset = tonumber(args[1]) or 0
  local headers = {{ ["Content-Type"] = "application/jwt" }}
  local line_no = 0
  for line in io.lines("{}") do
    if line_no >= offset and line_no < offset + {per_round} and line_no % 2 == id then
      n = n + 1
      requests[n] = wrk.format("POST", "/issue", headers, line)
    end
    line_no = line_no + 1
  end
end
request = function()
  i = i % n + 1
  return requests[i]
end
"#,
            bodies_path.display(),
        )
        .expect("script");
        println!(
            "/issue: {total} pre-signed ES256 bodies ({per_round} per round); \
             ceiling: {}",
            openssl_command().join(" ")
        );

        let (mut vs_openssl, mut vs_jwt, mut ours, mut p99s) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut openssl_missing = None;
        for round in 1..=rounds {
            let openssl = openssl_verify_rate();
            let jwt = jsonwebtoken_ceiling(&bodies[0], &jwks["keys"][0]);
            let run = wrk(
                &format!("{base}/issue"),
                Some(&script),
                &[((round - 1) as usize * per_round).to_string()],
            );
            if run.text.contains("Non-2xx") {
                println!("warning: non-2xx answers during /issue load:\n{}", run.text);
            }
            if run.requests > per_round as u64 {
                println!(
                    "warning: {} requests for {per_round} bodies: some were idempotent replays",
                    run.requests
                );
            }
            let mut line = format!(
                "round {round}: POST /issue on Redis: {:.0} req/s, p99 {:.2} ms",
                run.rps, run.p99_ms
            );
            match openssl {
                Ok(rate) => {
                    line += &format!(
                        "; OpenSSL ES256 verify on {} cores: {rate:.0}/s, ratio {:.2}",
                        cores(),
                        run.rps / rate
                    );
                    vs_openssl.push(run.rps / rate);
                }
                Err(why) => openssl_missing = Some(why),
            }
            line += &format!(
                "; jsonwebtoken ES256 verify on {} cores: {jwt:.0}/s, ratio {:.2}",
                cores(),
                run.rps / jwt
            );
            println!("{line}");
            ours.push(run.rps);
            p99s.push(run.p99_ms);
            vs_jwt.push(run.rps / jwt);
        }
        let openssl_summary = match openssl_missing {
            Some(why) => format!("skipped ({why})"),
            None => format!("{:.2} (target >= 0.5)", median(vs_openssl)),
        };
        println!(
            "/issue median: {:.0} req/s, p99 {:.2} ms (target <= 20 ms); ratio to OpenSSL verify \
             {openssl_summary}; ratio to jsonwebtoken verify {:.2}",
            median(ours),
            median(p99s),
            median(vs_jwt)
        );
        println!("{}", uptime("after /issue"));
    }
    runtime.block_on(handle.stop(true));
    drop(redis);
}
