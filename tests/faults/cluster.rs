//! A cluster of real `statuslist serve` processes on one private Redis (a
//! single server, or a private Redis Cluster of six nodes): the
//! configuration (one file, one shared signing key, two registered clients
//! with their own keys), the replicas with their logs, and the clients that
//! sign request JWTs.
//!
//! Every child process is killed when its owner is dropped, however the test
//! ends; the temporary directories go with them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use statuslist::publish::keys::ServiceKey;

use crate::support::{RedisCluster, RedisServer};

const BIN: &str = env!("CARGO_BIN_EXE_statuslist");

/// The `public_base_url` of every replica: list URIs start with it, and the
/// tests fetch a list from any replica by the URI's path.
pub const BASE: &str = "http://127.0.0.1";

/// The Redis key prefix of every replica.
pub const PREFIX: &str = "faults:";

/// How many log lines of a replica are kept for failure messages.
const LOG_LINES: usize = 40;

/// Settings a scenario chooses.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    /// Entries per list: small, so that lists fill and new ones are opened
    /// by several replicas at once during the load.
    pub capacity: u64,
    /// How long a replica trusts its cached list version.
    pub freshness_ms: u64,
    /// The Redis command timeout.
    pub command_timeout_ms: u64,
}

/// Lines for a client's table, given its id and the cluster's directory.
pub type ClientLines = Box<dyn Fn(&str, &Path) -> String>;

/// Configuration a scenario adds to the cluster's file.
pub struct Extra {
    /// Lines added to the `[store]` table (e.g. `shards_per_client = 3`).
    pub store: String,
    /// Top-level sections (e.g. `[webhooks]`), written before the clients.
    pub global: String,
    /// Lines added to each client's `[[clients]]` table, given its id and
    /// the cluster's directory (for files the lines name).
    pub client: ClientLines,
}

impl Default for Extra {
    fn default() -> Self {
        Extra {
            store: String::new(),
            global: String::new(),
            client: Box::new(|_, _| String::new()),
        }
    }
}

/// A registered client: its id and signing key.
pub struct TestClient {
    pub id: &'static str,
    kid: String,
    key: EncodingKey,
}

impl TestClient {
    /// Makes a key pair in `dir`; returns the client and its JWKS file.
    fn create(id: &'static str, dir: &Path) -> (TestClient, PathBuf) {
        let key = ServiceKey::generate();
        let pem_path = dir.join(format!("{id}.key.pem"));
        key.save_pem(&pem_path).unwrap();
        let pem = std::fs::read(&pem_path).unwrap();
        let jwks_path = dir.join(format!("{id}.jwks.json"));
        std::fs::write(
            &jwks_path,
            json!({ "keys": [key.public_jwk()] }).to_string(),
        )
        .unwrap();
        // Signed with aws-lc through jsonwebtoken: fast even in a debug
        // build, so tens of thousands of requests cost little.
        let client = TestClient {
            id,
            kid: key.kid().to_owned(),
            key: EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        (client, jwks_path)
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// A signed `/issue` request with a fresh `iat`.
    pub fn issue_jwt(&self, jti: &str) -> String {
        let now = unix_now();
        self.sign(&json!({
            "iss": self.id, "iat": now, "jti": jti, "statusExpiry": now + 86_400
        }))
    }

    /// A signed `/issue` of `count` entries bound to `issuance_ref`.
    pub fn issue_ref_jwt(&self, jti: &str, issuance_ref: &str, count: u32) -> String {
        let now = unix_now();
        self.sign(&json!({
            "iss": self.id, "iat": now, "jti": jti, "statusExpiry": now + 86_400,
            "ref": issuance_ref, "count": count
        }))
    }

    /// A signed `/revoke`, `/suspend` or `/unsuspend` request.
    pub fn change_jwt(&self, jti: &str, idx: u64, uri: &str) -> String {
        self.sign(&json!({
            "iss": self.id, "iat": unix_now(), "jti": jti, "idx": idx, "uri": uri
        }))
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One `statuslist serve` process.
pub struct Replica {
    child: Mutex<Child>,
    /// The port it listens on (it binds port 0 and logs the real one).
    pub port: u16,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Replica {
    /// Starts the binary with `config` and waits until it answers
    /// `/health/ready`.
    fn start(config: &Path) -> Replica {
        Self::start_on(config, 0)
    }

    /// Starts the binary like [`Replica::start`], listening on `port` (0:
    /// any free port).
    fn start_on(config: &Path, port: u16) -> Replica {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            // The "listening" line (with the port) is logged at info.
            .env("RUST_LOG", "warn,statuslist=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Overrides from the environment the tests run in would change
        // what is being tested.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STATUSLIST_") {
                cmd.env_remove(name);
            }
        }
        if port != 0 {
            cmd.env("STATUSLIST_LISTEN", format!("127.0.0.1:{port}"));
        }
        let mut child = cmd.spawn().expect("the service binary starts");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        // Drain both pipes for the life of the process, so it never blocks
        // on a full pipe, and keep the last lines for failure messages.
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        drain(stdout, log.clone(), Some(tx));
        drain(stderr, log.clone(), None);
        let mut r = Replica {
            child: Mutex::new(child),
            port: 0,
            log,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => r.port = port,
            Err(_) => {
                r.kill();
                panic!("a replica never logged its port:\n{}", r.log_tail());
            }
        }
        let port = r.port;
        let deadline = Instant::now() + Duration::from_secs(60);
        while raw_get(port, "/health/ready") != Some(200) {
            if Instant::now() > deadline {
                panic!(
                    "replica on port {port} never became ready:\n{}",
                    r.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no shutdown, no flush, in-flight requests cut off.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }

    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    /// The last lines the process wrote.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads lines from a child's pipe until it closes; the first JSON log line
/// `{"message": "listening", "port": N}` sends N on `port`.
fn drain(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
    mut port: Option<mpsc::Sender<u16>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if port.is_some()
                && let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "listening"
                && let Some(p) = v["port"].as_u64().and_then(|p| u16::try_from(p).ok())
                && let Some(tx) = port.take()
            {
                let _ = tx.send(p);
            }
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == LOG_LINES {
                log.pop_front();
            }
            log.push_back(line);
        }
    });
}

/// The status code of a plain `GET` (no async runtime needed); `None` when
/// the connection fails.
pub fn raw_get(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.get(9..12)?.parse().ok()
}

/// Replicas on one private Redis, and what the tests need to talk to them.
pub struct Cluster {
    /// Dropped first: the replicas go before their Redis.
    pub replicas: Vec<Replica>,
    /// The private Redis; behind a lock so a fault task can kill and restart
    /// it while the load runs. `None` on the embedded store and on a Redis
    /// Cluster.
    pub redis: Mutex<Option<RedisServer>>,
    /// The private Redis Cluster, when the replicas run on one.
    pub redis_cluster: Option<RedisCluster>,
    /// The store URL (a Redis unix socket in the server's directory, or an
    /// embedded file in the cluster's directory).
    pub redis_url: String,
    /// The configuration every replica was started with.
    config_path: PathBuf,
    /// The service's signing key (shared by every replica).
    pub service_key: ServiceKey,
    /// `clients[0]` has token lists (`/t/`), `clients[1]` bitstring (`/b/`).
    pub clients: Vec<TestClient>,
    pub knobs: Knobs,
    /// The `[store]` lines the scenario added (`Extra::store`): a checker
    /// opening the store itself must read it with the same settings (the
    /// shard count places a client's hash tags).
    pub store_lines: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `replicas` service processes on `redis`.
    pub fn start(redis: RedisServer, replicas: usize, knobs: Knobs) -> Cluster {
        Self::start_with(Some(redis), replicas, knobs, &Extra::default())
    }

    /// Starts `replicas` service processes on `redis`, or on an embedded
    /// store file of their own when `None` (then one replica only: the file
    /// belongs to one process), with `extra` added to the configuration.
    pub fn start_with(
        redis: Option<RedisServer>,
        replicas: usize,
        knobs: Knobs,
        extra: &Extra,
    ) -> Cluster {
        let backend = match redis {
            Some(redis) => Backend::Redis(redis),
            None => Backend::Embedded,
        };
        Self::start_on(backend, replicas, knobs, extra)
    }

    /// Starts `replicas` service processes on the Redis Cluster `redis`
    /// (its `redis+cluster://` URL), with `extra` added to the
    /// configuration.
    pub fn start_on_redis_cluster(
        redis: RedisCluster,
        replicas: usize,
        knobs: Knobs,
        extra: &Extra,
    ) -> Cluster {
        Self::start_on(Backend::RedisCluster(redis), replicas, knobs, extra)
    }

    fn start_on(backend: Backend, replicas: usize, knobs: Knobs, extra: &Extra) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("statuslist-faults-")
            .tempdir()
            .unwrap();
        let key_file = dir.path().join("service-key.pem");
        let service_key = ServiceKey::generate();
        service_key.save_pem(&key_file).unwrap();
        let (token, token_jwks) = TestClient::create("faults-t", dir.path());
        let (bits, bits_jwks) = TestClient::create("faults-b", dir.path());
        let redis_url = match &backend {
            Backend::Redis(redis) => redis.url(),
            Backend::RedisCluster(redis) => redis.url(),
            Backend::Embedded => format!("embedded:{}", dir.path().join("store.redb").display()),
        };
        let client_extra = |id: &str| (extra.client)(id, dir.path());
        let config = format!(
            r#"public_base_url = "{BASE}"
listen = "127.0.0.1:0"

[store]
url = "{redis_url}"
redis_prefix = "{PREFIX}"
command_timeout_ms = {timeout}
{store}

[lists]
capacity = {capacity}

[signing]
key_file = "{key}"
freshness_ms = {freshness}

{global}

[[clients]]
id = "{t}"
format = "token"
jwks_file = "{t_jwks}"
{t_extra}

[[clients]]
id = "{b}"
format = "bitstring"
jwks_file = "{b_jwks}"
{b_extra}
"#,
            store = &extra.store,
            global = extra.global,
            t_extra = client_extra(token.id),
            b_extra = client_extra(bits.id),
            timeout = knobs.command_timeout_ms,
            capacity = knobs.capacity,
            key = key_file.display(),
            freshness = knobs.freshness_ms,
            t = token.id,
            t_jwks = token_jwks.display(),
            b = bits.id,
            b_jwks = bits_jwks.display(),
        );
        let config_path = dir.path().join("statuslist.toml");
        std::fs::write(&config_path, config).unwrap();
        // Started one after the other: each start is a few hundred
        // milliseconds, and a failing one is reported with its own log.
        let replicas = (0..replicas)
            .map(|_| Replica::start(&config_path))
            .collect();
        let (redis, redis_cluster) = match backend {
            Backend::Redis(redis) => (Some(redis), None),
            Backend::RedisCluster(redis) => (None, Some(redis)),
            Backend::Embedded => (None, None),
        };
        Cluster {
            replicas,
            redis: Mutex::new(redis),
            redis_cluster,
            redis_url,
            config_path,
            service_key,
            clients: vec![token, bits],
            knobs,
            store_lines: extra.store.clone(),
            _dir: dir,
        }
    }

    /// Kills replica `i` (SIGKILL) if it runs, and starts it again with the
    /// same configuration on the same port.
    pub fn restart_replica(&mut self, i: usize) {
        let port = self.replicas[i].port;
        self.replicas[i].kill();
        self.replicas[i] = Replica::start_on(&self.config_path, port);
    }

    /// The base addresses of all replicas, in order.
    pub fn addresses(&self) -> Vec<String> {
        self.replicas.iter().map(Replica::address).collect()
    }

    /// The indexes of the replicas still running.
    pub fn running(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|i| self.replicas[*i].is_running())
            .collect()
    }

    /// The last log lines of every replica, for a failure message.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("--- replica {i} (port {}):\n{}", r.port, r.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The store the replicas run on.
enum Backend {
    Redis(RedisServer),
    RedisCluster(RedisCluster),
    /// An embedded store file of their own (one replica only).
    Embedded,
}
