//! A private Redis Cluster for tests: six `redis-server` processes (three
//! masters, one replica each) on free local TCP ports, each in its own
//! temporary directory, joined with `redis-cli --cluster create`, and
//! stopped (SIGKILL, then reaped) when the [`RedisCluster`] is dropped.
//!
//! Every node persists each write before answering it (`appendonly yes`,
//! `appendfsync always`) and declares a peer failed after
//! [`NODE_TIMEOUT_MS`], so a killed master's replica takes over within a few
//! seconds. Fault tests kill a master with [`RedisCluster::kill_master`] and
//! wait for its replica with [`RedisCluster::wait_promoted`].
//!
//! The nodes are started by one long-lived thread with the parent-death
//! signal set (Linux `PR_SET_PDEATHSIG`, which fires when the *thread* that
//! forked a child ends, hence one thread that never does): if the test
//! binary dies without running destructors — an abort, a SIGKILL, or the
//! end of a binary that shares one cluster through [`RedisCluster::shared`]
//! — the kernel kills the nodes with it.
//!
//! The binaries are `$REDIS_SERVER` (see [`super::redis_server`]) and
//! `$REDIS_CLI`, else `redis-cli` next to `redis-server`, else on the
//! `PATH`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use super::redis_server;

/// The variable that names `redis-cli`, overriding the search.
pub const REDIS_CLI_VAR: &str = "REDIS_CLI";

/// `cluster-node-timeout` of every node: how long a peer may be silent
/// before it is suspected. Small, so that a failover takes seconds; large
/// enough that two busy cores do not make a live node look dead.
pub const NODE_TIMEOUT_MS: u64 = 1_500;

/// Masters in a cluster (each with one replica).
pub const MASTERS: usize = 3;

/// Redis Cluster hash slots.
const SLOTS: u32 = 16_384;

/// How long start-up and recovery waits may take before a test fails.
const PATIENCE: Duration = Duration::from_secs(90);

/// `redis-cli`, looked up once per process; a missing one ends the run with
/// one message, like a missing `redis-server`.
pub fn redis_cli() -> &'static Path {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(|| {
        let executable = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        let given = std::env::var_os(REDIS_CLI_VAR).filter(|v| !v.is_empty());
        let found = match given {
            Some(given) => Some(PathBuf::from(given)).filter(|p| executable(p)),
            None => redis_server()
                .parent()
                .map(|dir| dir.join("redis-cli"))
                .into_iter()
                .chain(
                    std::env::var_os("PATH")
                        .into_iter()
                        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                        .map(|dir| dir.join("redis-cli")),
                )
                .find(|p| executable(p)),
        };
        found.unwrap_or_else(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "\nerror: the Redis Cluster tests need redis-cli, but it is not on the PATH \
                 (or REDIS_CLI is not an executable file): install it (Debian/Ubuntu: \
                 `sudo apt-get install redis-tools`; macOS: `brew install redis`) or set \
                 REDIS_CLI to its path.\n"
            );
            let _ = err.flush();
            std::process::exit(1);
        })
    })
}

/// A child to start, and where to send it once started.
type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Starts `cmd` from the one thread that lives as long as the process, with
/// the parent-death signal set to SIGKILL (see the module comment).
fn spawn_tied_to_process(mut cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("redis-cluster-spawner".into())
            .spawn(move || {
                // Ends only with the process: the children's death signal
                // is tied to this thread.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls
        // (prctl, getppid, _exit) and no allocation.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the signal was armed.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .expect("spawner thread alive");
    rx.recv().expect("spawner thread answers")
}

/// A port that is free now, with its cluster bus port (`port + 10000`) free
/// too. Another process may take it before the node binds it: the start
/// retries with another port when a node fails to come up.
pub fn free_port_pair() -> u16 {
    loop {
        // The kernel's choice, shifted below 55536 so the bus port fits.
        let probe = TcpListener::bind(("127.0.0.1", 0)).expect("bind a probe port");
        let port = probe.local_addr().expect("probe address").port() % 30_000 + 20_000;
        drop(probe);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// One master as the cluster sees it: where it listens, its node id, the
/// hash slots it serves (inclusive ranges) and its replicas' ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub port: u16,
    pub id: String,
    pub slots: Vec<(u16, u16)>,
    pub replicas: Vec<u16>,
}

impl Shard {
    /// Whether `slot` is one of this master's.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }

    /// How many slots it serves.
    pub fn slot_count(&self) -> u32 {
        self.slots.iter().map(|&(a, b)| u32::from(b - a) + 1).sum()
    }
}

/// One node of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    port: u16,
    myself: bool,
    master: bool,
    failed: bool,
    /// The master's id, for a replica.
    master_id: Option<String>,
    slots: Vec<(u16, u16)>,
}

/// Parses `CLUSTER NODES` (`id ip:port@bus flags master ping pong epoch link
/// slot…`); slots being migrated (`[…]`) are left out.
fn parse_nodes(text: &str) -> Result<Vec<NodeLine>, String> {
    let mut nodes = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return Err(format!("short CLUSTER NODES line: {line}"));
        }
        let address = fields[1].split(['@', ',']).next().unwrap_or("");
        let Some(port) = address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
        else {
            // A node still in handshake has no address yet.
            return Err(format!("node without a port: {line}"));
        };
        let flags: HashSet<&str> = fields[2].split(',').collect();
        let mut slots = Vec::new();
        for token in fields[8..].iter().filter(|t| !t.starts_with('[')) {
            let (a, b) = token.split_once('-').unwrap_or((token, token));
            match (a.parse(), b.parse()) {
                (Ok(a), Ok(b)) => slots.push((a, b)),
                _ => return Err(format!("bad slot range {token} in: {line}")),
            }
        }
        slots.sort_unstable();
        nodes.push(NodeLine {
            id: fields[0].to_owned(),
            port,
            myself: flags.contains("myself"),
            master: flags.contains("master"),
            failed: flags.contains("fail") || flags.contains("fail?"),
            master_id: Some(fields[3]).filter(|m| *m != "-").map(str::to_owned),
            slots,
        });
    }
    Ok(nodes)
}

/// The masters serving slots in one node's view, by first slot.
fn shards(view: &[NodeLine]) -> Vec<Shard> {
    let mut shards: Vec<Shard> = view
        .iter()
        .filter(|n| n.master && !n.failed && !n.slots.is_empty())
        .map(|n| Shard {
            port: n.port,
            id: n.id.clone(),
            slots: n.slots.clone(),
            replicas: {
                let mut r: Vec<u16> = view
                    .iter()
                    .filter(|r| !r.failed && r.master_id.as_deref() == Some(&n.id))
                    .map(|r| r.port)
                    .collect();
                r.sort_unstable();
                r
            },
        })
        .collect();
    shards.sort_by_key(|s| s.slots.first().copied());
    shards
}

/// The value of `name` in an `INFO`-style `name:value` text.
fn info_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    /// The TLS port, for a cluster started with [`RedisCluster::start_tls`].
    tls_port: Option<u16>,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl Node {
    fn running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` to the node's process, if it runs.
    fn signal(&self, signal: libc::c_int) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = child.as_ref()
            && let Ok(pid) = libc::pid_t::try_from(c.id())
        {
            // SAFETY: a plain kill(2) on our own, not yet reaped child.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// The last lines of the node's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// A running private Redis Cluster: three masters, three replicas.
/// Dropping it kills every node and removes their directories.
pub struct RedisCluster {
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every node
    /// says `cluster_state:ok`, all agree on which master serves which
    /// slots, and every replica is in sync with its master.
    pub fn start() -> RedisCluster {
        Self::start_with_args(&[])
    }

    /// Like [`RedisCluster::start`], with `args` added to every node's
    /// command line after the defaults (e.g. `--min-replicas-to-write 1`).
    pub fn start_with_args(args: &[&str]) -> RedisCluster {
        Self::start_nodes(args, None)
    }

    /// Like [`RedisCluster::start`], with TLS on each node's second port and
    /// on the cluster bus and replication links (`tls-cluster`,
    /// `tls-replication`), the certificate `tls.cert`/`tls.key` signed by
    /// `tls.ca`; the plain ports stay for the harness's own checks.
    /// [`RedisCluster::tls_url`] is the `rediss+cluster://` URL.
    pub fn start_tls(tls: &TlsFiles) -> RedisCluster {
        Self::start_nodes(&[], Some(tls))
    }

    fn start_nodes(args: &[&str], tls: Option<&TlsFiles>) -> RedisCluster {
        let nodes: Vec<Node> = (0..MASTERS * 2).map(|_| start_node(args, tls)).collect();
        let cluster = RedisCluster { nodes };
        let mut create = Command::new(redis_cli());
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", redis_cli().display()));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains("[OK] All 16384 slots covered"),
            "redis-cli --cluster create failed ({}):\n{said}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_healthy(MASTERS, true);
        cluster
    }

    /// One cluster for the whole test binary, started on first use and
    /// never stopped by a destructor: its nodes die with the process (the
    /// parent-death signal) and an exit handler removes their directories.
    /// Tests that share it must each use their own key prefix and must not
    /// kill its nodes.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(cluster) = SHARED.get() {
                cluster.stop();
            }
        }
        SHARED.get_or_init(|| {
            let cluster = RedisCluster::start();
            // SAFETY: registers a plain function that only kills children
            // and removes directories; it runs at normal process exit.
            unsafe {
                libc::atexit(stop_shared);
            }
            cluster
        })
    }

    /// The store URL: `redis+cluster://127.0.0.1:P1,…` with every node as a
    /// seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The TLS store URL of a cluster started with
    /// [`RedisCluster::start_tls`]: `rediss+cluster://127.0.0.1:Q1,…`.
    pub fn tls_url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.tls_port.map(|p| format!("127.0.0.1:{p}")))
            .collect();
        format!("rediss+cluster://{}", seeds.join(","))
    }

    /// `redis://127.0.0.1:P` of every node, for the redis crate's
    /// `ClusterClient`.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The ports of every node, started order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The nodes' data directories, started order.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.dir.path().to_owned()).collect()
    }

    /// Whether the node on `port` is running.
    pub fn is_running(&self, port: u16) -> bool {
        self.node(port).running()
    }

    /// Runs `cmd` on the node at `port` alone (no redirection followed).
    ///
    /// # Errors
    ///
    /// When the node cannot be reached or answers with an error.
    pub fn query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        query(port, cmd)
    }

    /// The masters serving slots, by first slot, as a running node sees
    /// them now.
    pub fn masters(&self) -> Vec<Shard> {
        let mut last = String::from("no node running");
        for node in self.nodes.iter().filter(|n| n.running()) {
            match view(node.port) {
                Ok(v) => return shards(&v),
                Err(e) => last = e,
            }
        }
        panic!("no node answered CLUSTER NODES: {last}");
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`, so hash tags count).
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.running_port();
        query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT on {port}: {e}"))
    }

    /// The master that serves `key` now.
    pub fn master_of(&self, key: &str) -> Shard {
        let slot = self.slot_of(key);
        self.masters()
            .into_iter()
            .find(|s| s.serves(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// Kills master `i` of [`RedisCluster::masters`] with SIGKILL (no
    /// shutdown, no last write) and returns it as it was.
    pub fn kill_master(&self, i: usize) -> Shard {
        let masters = self.masters();
        let shard = masters
            .get(i)
            .unwrap_or_else(|| panic!("there are {} masters, not {}", masters.len(), i + 1))
            .clone();
        self.node(shard.port).kill();
        shard
    }

    /// Kills the node on `port` with SIGKILL.
    pub fn kill_node(&self, port: u16) {
        self.node(port).kill();
    }

    /// Freezes the node on `port` (SIGSTOP): it keeps its connections but
    /// answers nothing, as a replica that lags far behind.
    pub fn pause_node(&self, port: u16) {
        self.node(port).signal(libc::SIGSTOP);
    }

    /// Lets a node frozen by [`RedisCluster::pause_node`] run again.
    pub fn resume_node(&self, port: u16) {
        self.node(port).signal(libc::SIGCONT);
    }

    /// Waits until a replica of `killed` serves all its slots and the
    /// cluster is healthy again (every running node `cluster_state:ok` and
    /// agreeing on the masters); returns the new master. Panics after a
    /// generous bound, with every node's log tail.
    pub fn wait_promoted(&self, killed: &Shard) -> Shard {
        let masters = self.wait_healthy(MASTERS, false);
        let promoted = masters
            .iter()
            .find(|m| m.slots == killed.slots)
            .cloned()
            .unwrap_or_else(|| panic!("no master took over {killed:?}: {masters:?}"));
        assert_ne!(promoted.port, killed.port, "the killed master still serves");
        assert!(
            killed.replicas.contains(&promoted.port),
            "{promoted:?} was not a replica of {killed:?}"
        );
        promoted
    }

    /// Keys matching `pattern` on each master now (a `SCAN` per master), as
    /// (master port, count), by first slot.
    pub fn keys_per_master(&self, pattern: &str) -> Vec<(u16, u64)> {
        self.masters()
            .iter()
            .map(|m| (m.port, count_keys(m.port, pattern)))
            .collect()
    }

    /// Keys matching `pattern` on the node at `port` (a master or a
    /// replica).
    pub fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        scan(port, pattern)
    }

    /// The last log lines of every node, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- redis node {} ({}):\n{}",
                    n.port,
                    if n.running() { "running" } else { "stopped" },
                    n.log_tail()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until the cluster serves every slot through `masters` running
    /// masters that every running node agrees on (and, when `complete`,
    /// every master has a replica in sync); returns the masters.
    fn wait_healthy(&self, masters: usize, complete: bool) -> Vec<Shard> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.health(masters, complete) {
                Ok(shards) => return shards,
                Err(why) if Instant::now() > deadline => {
                    panic!(
                        "the Redis Cluster did not become healthy within {PATIENCE:?}: {why}\n{}",
                        self.logs()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// One health check: `Ok(masters)` or why not.
    fn health(&self, masters: usize, complete: bool) -> Result<Vec<Shard>, String> {
        let running: Vec<&Node> = self.nodes.iter().filter(|n| n.running()).collect();
        let mut agreed: Option<(u16, Vec<Shard>)> = None;
        for node in &running {
            let info: String = query(node.port, redis::cmd("CLUSTER").arg("INFO"))
                .map_err(|e| format!("CLUSTER INFO on {}: {e}", node.port))?;
            for (field, want) in [
                ("cluster_state", "ok".to_owned()),
                ("cluster_slots_ok", SLOTS.to_string()),
            ] {
                let got = info_field(&info, field);
                if got != Some(want.as_str()) {
                    return Err(format!("node {}: {field} is {got:?}", node.port));
                }
            }
            if complete && info_field(&info, "cluster_known_nodes") != Some("6") {
                return Err(format!("node {} does not know all six nodes", node.port));
            }
            let lines = view(node.port)?;
            let mine = shards(&lines);
            // Slot owners and ids; replica lists may lag a moment.
            let key = |s: &[Shard]| -> Vec<Shard> {
                s.iter()
                    .map(|m| Shard {
                        replicas: Vec::new(),
                        ..m.clone()
                    })
                    .collect()
            };
            match &agreed {
                None => agreed = Some((node.port, mine.clone())),
                Some((other, theirs)) if key(theirs) != key(&mine) => {
                    return Err(format!(
                        "nodes {other} and {} disagree: {theirs:?} vs {mine:?}",
                        node.port
                    ));
                }
                Some(_) => {}
            }
            let me = lines.iter().find(|l| l.myself);
            if me.is_some_and(|m| !m.master) {
                let replication: String = query(node.port, redis::cmd("INFO").arg("replication"))
                    .map_err(|e| format!("INFO on {}: {e}", node.port))?;
                if info_field(&replication, "master_link_status") != Some("up") {
                    return Err(format!("replica {} is not in sync yet", node.port));
                }
            }
        }
        let Some((_, shards)) = agreed else {
            return Err("no node is running".to_owned());
        };
        if shards.len() != masters {
            return Err(format!(
                "{} masters, not {masters}: {shards:?}",
                shards.len()
            ));
        }
        let total: u32 = shards.iter().map(Shard::slot_count).sum();
        if total != SLOTS {
            return Err(format!("masters serve {total} slots: {shards:?}"));
        }
        for shard in &shards {
            if !running.iter().any(|n| n.port == shard.port) {
                return Err(format!("master {} is not running", shard.port));
            }
            if complete && shard.replicas.is_empty() {
                return Err(format!("master {} has no replica yet", shard.port));
            }
        }
        Ok(shards)
    }

    fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn running_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.running())
            .map(|n| n.port)
            .expect("a running node")
    }

    /// Kills every node and removes their directories (the exit handler of
    /// [`RedisCluster::shared`], which has no destructor).
    fn stop(&self) {
        for node in &self.nodes {
            node.kill();
            let _ = std::fs::remove_dir_all(node.dir.path());
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            node.kill();
        }
    }
}

/// Starts one cluster-enabled node on a free port in its own directory and
/// waits until it answers PING; tries other ports if one is taken meanwhile.
/// A TLS certificate and key for the nodes, and the CA that signed it.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl TlsFiles {
    /// Makes, with the `openssl` command, a P-256 CA and a certificate it
    /// signs for `127.0.0.1` and `localhost`, in `dir`.
    pub fn make(dir: &Path) -> TlsFiles {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("the openssl command runs (it makes the TLS test certificates)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
        ca.extend(["-subj", "/CN=statuslist test CA"]);
        openssl(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "redis.key",
            "-out",
            "redis.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(&csr);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write ext.cnf");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "redis.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "redis.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        TlsFiles {
            cert: dir.join("redis.pem"),
            key: dir.join("redis.key"),
            ca: dir.join("ca.pem"),
        }
    }
}

fn start_node(args: &[&str], tls: Option<&TlsFiles>) -> Node {
    let mut failures = Vec::new();
    for _ in 0..5 {
        let port = free_port_pair();
        let tls_port = tls.map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port")
        });
        let dir = tempfile::Builder::new()
            .prefix("statuslist-redis-cluster-")
            .tempdir()
            .expect("temporary directory");
        let mut cmd = Command::new(redis_server());
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .args(["--logfile", "redis.log"])
            .args(args)
            .args(
                tls.zip(tls_port)
                    .map_or_else(Vec::<std::ffi::OsString>::new, |(t, p)| {
                        vec![
                            "--tls-port".into(),
                            p.to_string().into(),
                            "--tls-cluster".into(),
                            "yes".into(),
                            "--tls-replication".into(),
                            "yes".into(),
                            "--tls-auth-clients".into(),
                            "no".into(),
                            "--tls-cert-file".into(),
                            t.cert.clone().into_os_string(),
                            "--tls-key-file".into(),
                            t.key.clone().into_os_string(),
                            "--tls-ca-cert-file".into(),
                            t.ca.clone().into_os_string(),
                        ]
                    }),
            )
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_tied_to_process(cmd)
            .unwrap_or_else(|e| panic!("start {}: {e}", redis_server().display()));
        let node = Node {
            port,
            tls_port,
            dir,
            child: Mutex::new(Some(child)),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if query::<String>(port, &redis::cmd("PING")).is_ok_and(|p| p == "PONG") {
                return node;
            }
            if !node.running() || Instant::now() > deadline {
                failures.push(format!("port {port}:\n{}", node.log_tail()));
                node.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("a cluster node did not come up:\n{}", failures.join("\n"));
}

/// Runs `cmd` on the node at `port` over a fresh connection.
fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    cmd.query(&mut conn)
}

/// The node's `CLUSTER NODES`, parsed.
fn view(port: u16) -> Result<Vec<NodeLine>, String> {
    let text: String = query(port, redis::cmd("CLUSTER").arg("NODES"))
        .map_err(|e| format!("CLUSTER NODES on {port}: {e}"))?;
    parse_nodes(&text)
}

/// Every key matching `pattern` on one node.
fn scan(port: u16, pattern: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = query(
            port,
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000),
        )
        .unwrap_or_else(|e| panic!("SCAN on {port}: {e}"));
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

fn count_keys(port: u16, pattern: &str) -> u64 {
    scan(port, pattern).len() as u64
}

/// Masters by port with the number of keys of `pattern` each holds, for
/// failure messages.
pub fn describe(counts: &[(u16, u64)]) -> String {
    let by_port: BTreeMap<u16, u64> = counts.iter().copied().collect();
    format!("{by_port:?}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_nodes_lines_are_parsed_into_masters_with_their_replicas() {
        use super::*;
        let text = "\
a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:30002@40002 master - 0 1 2 connected 5461-10922 [5461->-c3]
c3 127.0.0.1:30003@40003,host master,fail - 0 1 3 disconnected
d4 127.0.0.1:30004@40004 slave a1 0 1 1 connected
e5 127.0.0.1:30005@40005 master - 0 1 7 connected 10923 10924-16383
f6 127.0.0.1:30006@40006 slave,fail? b2 0 1 2 connected
";
        let lines = parse_nodes(text).unwrap();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].myself && lines[0].master);
        assert!(lines[2].failed && lines[5].failed);
        let got = shards(&lines);
        assert_eq!(
            got,
            vec![
                Shard {
                    port: 30001,
                    id: "a1".into(),
                    slots: vec![(0, 5460)],
                    replicas: vec![30004]
                },
                Shard {
                    port: 30002,
                    id: "b2".into(),
                    slots: vec![(5461, 10922)],
                    replicas: vec![]
                },
                Shard {
                    port: 30005,
                    id: "e5".into(),
                    slots: vec![(10923, 10923), (10924, 16383)],
                    replicas: vec![]
                },
            ]
        );
        assert_eq!(got.iter().map(Shard::slot_count).sum::<u32>(), SLOTS);
        assert!(got[2].serves(10923) && !got[2].serves(5460));
        assert!(parse_nodes("x 127.0.0.1:1@2 master - 0 0 1 connected 9-x").is_err());
        assert_eq!(
            info_field("a:1\r\ncluster_state:ok\r\n", "cluster_state"),
            Some("ok")
        );
    }
}
