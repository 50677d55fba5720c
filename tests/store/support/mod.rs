//! A private `redis-server` per test: started in a temporary directory on a
//! unix socket (never the machine's shared Redis), stopped on drop, and able
//! to be killed and restarted on the same socket for fault tests.
//!
//! The binary is `$REDIS_SERVER` when set, else `redis-server` on the
//! `PATH`. When there is none, the first test that needs it prints one
//! message saying how to install it and ends the whole run (exit status 1),
//! rather than every Redis test failing with its own panic.
//!
//! A private Redis Cluster (six nodes) is in [`redis_cluster`].
//!
//! Also used by `benches/redis_alloc.rs` and `benches/http_load.rs` (through
//! `#[path]`), so it depends only on std, tempfile, libc and the redis crate.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod redis_cluster;
// Unused by the benches that include this file.
#[allow(unused_imports)]
pub use redis_cluster::RedisCluster;

/// The variable that names the Redis binary, overriding the `PATH` search.
pub const REDIS_SERVER_VAR: &str = "REDIS_SERVER";

/// Whether `path` is a file someone may execute.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where `redis-server` is, given the values of `REDIS_SERVER` and `PATH`;
/// otherwise the message to show, which says how to get it.
pub fn find_redis_server(
    redis_server: Option<&OsStr>,
    path: Option<&OsStr>,
) -> Result<PathBuf, String> {
    const HOW: &str = "install it (Debian/Ubuntu: `sudo apt-get install redis-server`; \
                       macOS: `brew install redis`) or set REDIS_SERVER to its path";
    if let Some(given) = redis_server.filter(|v| !v.is_empty()) {
        let given = PathBuf::from(given);
        return if is_executable(&given) {
            Ok(given)
        } else {
            Err(format!(
                "REDIS_SERVER={} is not an executable file: {HOW}",
                given.display()
            ))
        };
    }
    path.into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("redis-server is not on the PATH: {HOW}"))
}

/// The Redis binary the tests run, looked up once per process. When there
/// is none, prints why (once, past the test harness's output capture) and
/// exits with status 1.
pub fn redis_server() -> &'static Path {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(|| {
        match find_redis_server(
            std::env::var_os(REDIS_SERVER_VAR).as_deref(),
            std::env::var_os("PATH").as_deref(),
        ) {
            Ok(path) => path,
            Err(message) => {
                // Straight to the stream: `eprintln!` inside a test is
                // captured, and the capture dies with the process.
                let mut err = std::io::stderr().lock();
                let _ = writeln!(
                    err,
                    "\nerror: the Redis tests need a private redis-server, but {message}.\n"
                );
                let _ = err.flush();
                std::process::exit(1);
            }
        }
    })
}

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
        Self::start_with_args(&[])
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
        let child = Command::new(redis_server())
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
            .unwrap_or_else(|e| panic!("start {}: {e}", redis_server().display()));
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

#[cfg(test)]
mod tests {
    // Imports inside the tests: benches include this file with cfg(test) set
    // but without the test harness, where a module-level import is unused.

    #[test]
    fn redis_server_is_found_on_the_path_or_in_the_variable() {
        use super::*;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let fake = bin.join("redis-server");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([dir.path().join("empty"), bin.clone()]).unwrap();
        assert_eq!(find_redis_server(None, Some(&path)).unwrap(), fake);
        // REDIS_SERVER wins over the PATH; an empty one is no choice.
        let other = dir.path().join("my-redis");
        std::fs::copy(&fake, &other).unwrap();
        assert_eq!(
            find_redis_server(Some(other.as_os_str()), Some(&path)).unwrap(),
            other
        );
        assert_eq!(
            find_redis_server(Some(OsStr::new("")), Some(&path)).unwrap(),
            fake
        );
        // Missing: one message that says how to get it.
        for (var, path) in [
            (None, Some(dir.path().join("empty").into_os_string())),
            (None, None),
            (
                Some(OsStr::new("/nonexistent/redis-server")),
                Some(path.clone()),
            ),
        ] {
            let err = find_redis_server(var, path.as_deref()).unwrap_err();
            assert!(err.contains("apt-get install redis-server"), "{err}");
            assert!(err.contains("REDIS_SERVER"), "{err}");
        }
        // A file that cannot be run is not a binary.
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(find_redis_server(None, Some(&path)).is_err());
    }

    #[test]
    fn without_redis_server_the_run_stops_at_once_with_one_message() {
        use super::*;
        // This test binary again, with an empty PATH, running its Redis
        // tests: they must not each fail, the first must end the run.
        let empty = tempfile::tempdir().unwrap();
        // Output to a file, not a pipe: a run that fails test by test writes
        // more than a pipe holds, and would block instead of ending.
        let log = empty.path().join("out.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["redis", "--skip", "support::", "--test-threads", "4"])
            .env("PATH", empty.path())
            .env_remove(REDIS_SERVER_VAR)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the run without redis-server did not stop within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(1), "{out}");
        assert_eq!(
            out.matches("sudo apt-get install redis-server").count(),
            1,
            "{out}"
        );
        assert!(!out.contains("panicked"), "{out}");
        assert!(!out.contains("test result"), "{out}");
    }
}
