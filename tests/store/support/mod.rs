//! A private `redis-server` per test: started in a temporary directory on a
//! unix socket (never the machine's shared Redis), stopped on drop, and able
//! to be killed and restarted on the same socket for fault tests.
//!
//! Also used by `benches/redis_alloc.rs` (through `#[path]`), so it depends
//! only on std, tempfile and the redis crate.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Redis binary the tests run.
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A running private Redis. Dropping it kills the server and removes its
/// directory.
pub struct RedisServer {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Option<Child>,
    /// More `redis-server` arguments, given after the defaults so that they
    /// override them (e.g. `--appendonly yes`); kept for every restart.
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server in a fresh temporary directory and waits until it
    /// answers PING.
    pub fn start() -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("statuslist-redis-")
            .tempdir()
            .expect("temporary directory");
        let socket = dir.path().join("redis.sock");
        let mut server = RedisServer {
            dir,
            socket,
            child: None,
            extra_args: Vec::new(),
        };
        server.spawn();
        server
    }

    /// Starts a server like [`RedisServer::start`] with `args` added after
    /// the defaults (a later argument overrides an earlier one). The
    /// arguments and the directory are kept by [`RedisServer::restart`].
    pub fn start_with_args(args: &[&str]) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("statuslist-redis-")
            .tempdir()
            .expect("temporary directory");
        let socket = dir.path().join("redis.sock");
        let mut server = RedisServer {
            dir,
            socket,
            child: None,
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    /// Starts a server that persists every write before answering it
    /// (`appendonly yes`, `appendfsync always`): after [`RedisServer::kill`]
    /// (SIGKILL) a [`RedisServer::restart`] on the same socket and directory
    /// reloads every acknowledged write from the append-only file.
    pub fn start_durable() -> RedisServer {
        Self::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    /// The server's data directory (kept across restarts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL the redis crate connects with.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// The unix socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Kills the server (SIGKILL, no shutdown) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same socket and directory (with an
    /// empty data set, unless started with persistence such as
    /// [`RedisServer::start_durable`]).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends one inline command over a fresh connection and returns the raw
    /// reply (for assertions that must not go through the adapter).
    pub fn command(&self, line: &str) -> String {
        let mut stream = UnixStream::connect(&self.socket).expect("connect to private redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let child = Command::new(REDIS_SERVER)
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&self.socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(dir)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.answers_ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "private redis-server did not come up"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
