//! How the adapter reaches Redis: its settings, the connection, and the one
//! rule for failures.
//!
//! The connection is a [`ConnectionManager`] (a multiplexed connection that
//! reconnects by itself), one per thread that runs a current-thread runtime
//! (each actix worker), plus a shared one for everything else. A
//! multiplexed connection is driven by a task of the runtime that opened it:
//! shared, every call from a worker would wake the thread that drives it and
//! then be woken by it, two thread switches per call, on machines where the
//! workers already use every core. A worker's own connection is written and
//! read by the worker itself. Every command runs under a timeout (500 ms by
//! default); a timeout or a connection failure is
//! [`StoreError::Unavailable`], never a hang. A script that timed out on the
//! client may still have run on the server: the idempotency record written by
//! that same script is what makes a retry safe then (it gets the same
//! answer).
//!
//! A Redis Cluster (`redis+cluster://h:p,h:p,…`, `rediss+cluster://…`) is
//! one [`ClusterConnection`] of the redis crate, shared by every thread: it
//! keeps a multiplexed connection per node, routes each command, script and
//! pipeline by the slot of its first key, and follows `MOVED` and `ASK`
//! redirects and failovers by itself (refreshing its slot map, retrying a
//! few times with short waits). Our command timeout still bounds each call,
//! so while a master fails over, calls to its slots answer
//! [`StoreError::Unavailable`] (503) until a replica has taken over, and
//! then succeed again without a restart; a cluster that is down altogether
//! is reconnected from the seed nodes by the crate. Every script and
//! pipeline the adapter sends touches one slot (a client's hash tag), so
//! none is refused as cross-slot.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, ScriptInvocation, ServerErrorKind,
};

use crate::ports::StoreError;

/// How to reach Redis and how to name keys there.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://`, `rediss://` or `redis+unix://` URL, or a Redis Cluster's
    /// seed nodes (`redis+cluster://h:p,h:p,…`, `rediss+cluster://…`). May
    /// hold a password, so `Debug` hides it.
    pub url: String,
    /// Prepended to every key (default `statuslist:`); lets several
    /// deployments or tests share one Redis. No braces or whitespace.
    pub prefix: String,
    /// Upper bound for every command, connecting included (default 500 ms).
    pub command_timeout: Duration,
    /// Announce every change on the deployment's change channel and offer a
    /// change feed ([`super::RedisStore::change_feed`]), so that other
    /// replicas drop their cached token at once (default true). Off, changes
    /// made elsewhere show within the cache's `freshness`.
    pub notify_changes: bool,
    /// How many hash tags each client's keys are spread over (at least 1;
    /// default 1: `{client}` alone, the single-node layout). See "Shards"
    /// in the adapter's module doc.
    pub shards_per_client: u16,
    /// How many replicas every write must reach before it is acknowledged
    /// (`WAIT`); `None`: 1 on a Redis Cluster, 0 on one node. Without it a
    /// failover may lose acknowledged writes (replication is asynchronous).
    pub wait_replicas: Option<u16>,
    /// For `rediss://` and `rediss+cluster://`: a PEM file of the
    /// certificate authorities that may sign the server's certificate
    /// (`None`: the system's trusted roots). Read when connecting.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl RedisSettings {
    /// Settings for `url` with the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisSettings {
            url: url.into(),
            prefix: "statuslist:".to_owned(),
            command_timeout: Duration::from_millis(500),
            notify_changes: true,
            shards_per_client: 1,
            wait_replicas: None,
            tls_ca_file: None,
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The one redaction rule: user-info password and `pass` query.
        f.debug_struct("RedisSettings")
            .field("url", &crate::config::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("notify_changes", &self.notify_changes)
            .field("shards_per_client", &self.shards_per_client)
            .field("wait_replicas", &self.wait_replicas)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// Checks the command timeout before anything is connected.
///
/// # Errors
/// [`StoreError::Invalid`] for a zero timeout.
pub(super) fn check_timeout(t: Duration) -> Result<(), StoreError> {
    if t.is_zero() {
        return Err(StoreError::Invalid(
            "the Redis command timeout must be above zero".to_owned(),
        ));
    }
    Ok(())
}

/// The connection to Redis, with every call bounded by the command timeout.
/// Cheap to use from many tasks: each call clones a multiplexed handle (the
/// calling thread's own, see the module doc, or the shared one).
#[derive(Clone)]
pub(super) struct Connection {
    /// One node or a cluster.
    kind: Kind,
    /// One client per seed node (one for a single node), for connections
    /// of another kind: the change feed's subscription.
    seeds: Vec<::redis::Client>,
    /// Above zero ([`check_timeout`]).
    timeout: Duration,
    /// How many replicas a write must reach before it is acknowledged.
    wait_replicas: u16,
    /// On a cluster: how many replicas that could be promoted each slot's
    /// master has, as last seen.
    replicas: ReplicaCounts,
    /// Tells this connection's per-thread managers from those of other
    /// connections on the same thread (tests run many stores).
    id: u64,
}

/// What a [`Connection`] talks to.
#[derive(Clone)]
enum Kind {
    /// One Redis server.
    Node(Box<Node>),
    /// A Redis Cluster: one connection (a connection per node inside),
    /// shared by every thread.
    Cluster(ClusterConnection),
}

/// The connection to one Redis server.
#[derive(Clone)]
struct Node {
    /// Opened at start (so a Redis that does not answer is found then), and
    /// used from threads that have no connection of their own.
    shared: ConnectionManager,
    /// What the per-thread managers are built from.
    client: ::redis::Client,
    config: ConnectionManagerConfig,
}

/// The handle one call runs on.
enum Handle {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A thread's own manager for one [`Connection`].
struct ThreadManager {
    /// The [`Connection::id`] it serves.
    id: u64,
    manager: ConnectionManager,
    /// Held by a task of the runtime that drives the manager: gone once that
    /// runtime has shut down (a thread may run several runtimes in turn), and
    /// the manager with it.
    runtime: Weak<()>,
}

/// The error code of a script that needs other keys declared.
const STALE: &str = "STALE";

/// How many times the cluster client retries a command after a redirect,
/// a refused connection or a "not now" answer (each within the command
/// timeout).
const CLUSTER_RETRIES: u32 = 4;

/// At most this many per-thread managers are kept on one thread; the oldest
/// make way (only tests open that many stores).
const THREAD_MANAGERS: usize = 16;

thread_local! {
    static THREAD_MANAGERS_OF: RefCell<Vec<ThreadManager>> = const { RefCell::new(Vec::new()) };
}

/// Numbers [`Connection`]s.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `url`, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a bad URL; [`StoreError::Unavailable`]
    /// when Redis does not answer in time.
    pub(super) async fn open(
        url: &str,
        timeout: Duration,
        tls_ca_file: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let certs = tls_certificates(tls_ca_file)?;
        if let Some(nodes) = crate::config::cluster_nodes(url) {
            return Self::open_cluster(&nodes.map_err(StoreError::Invalid)?, timeout, certs).await;
        }
        let bad = |e: RedisError| StoreError::Invalid(format!("bad Redis URL ({:?})", e.kind()));
        let client = match certs {
            Some(certs) => ::redis::Client::build_with_tls(url, certs),
            None => ::redis::Client::open(url),
        }
        .map_err(bad)?;
        let t = timeout;
        // The manager's own timeouts bound each attempt; our timeout around
        // every call bounds the whole, reconnection back-off included. A
        // short back-off lets the store recover soon after Redis returns.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(t))
            .set_connection_timeout(Some(t))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        let shared = tokio::time::timeout(
            t,
            ConnectionManager::new_with_config(client.clone(), config.clone()),
        )
        .await
        .map_err(|_| timed_out(t))?
        .map_err(map_err)?;
        Ok(Connection {
            kind: Kind::Node(Box::new(Node {
                shared,
                client: client.clone(),
                config,
            })),
            seeds: vec![client],
            timeout,
            wait_replicas: 0,
            replicas: ReplicaCounts::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Connects to the Redis Cluster of the seed `nodes` (single-node
    /// URLs), waiting at most `timeout` for its slot map.
    async fn open_cluster(
        nodes: &[String],
        timeout: Duration,
        certs: Option<::redis::TlsCertificates>,
    ) -> Result<Self, StoreError> {
        let bad = |e: RedisError| StoreError::Invalid(format!("bad Redis URL ({:?})", e.kind()));
        let seeds = nodes
            .iter()
            .map(|n| match &certs {
                Some(certs) => ::redis::Client::build_with_tls(n.as_str(), certs.clone()),
                None => ::redis::Client::open(n.as_str()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        // Redirects and failovers are retried a few times with short
        // waits: a failover takes seconds, longer than any one call may
        // wait, so the call answers 503 and the next one tries again.
        let mut builder = ClusterClient::builder(nodes.iter().map(String::as_str));
        if let Some(certs) = certs {
            builder = builder.certs(certs);
        }
        let client = builder
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(bad)?;
        let conn = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| timed_out(timeout))?
            .map_err(map_err)?;
        Ok(Connection {
            kind: Kind::Cluster(conn),
            seeds,
            timeout,
            wait_replicas: 1,
            replicas: ReplicaCounts::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The manager for a call from here: this thread's own when it runs a
    /// current-thread runtime (opened on first use, connecting lazily, by
    /// the call itself), else the shared one.
    fn handle(&self) -> Handle {
        use tokio::runtime::{Handle as Runtime, RuntimeFlavor};
        let (shared, client, config) = match &self.kind {
            Kind::Cluster(conn) => return Handle::Cluster(conn.clone()),
            Kind::Node(node) => (&node.shared, &node.client, &node.config),
        };
        let local = Runtime::try_current()
            .is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if !local {
            return Handle::Node(shared.clone());
        }
        THREAD_MANAGERS_OF.with(|cell| {
            let mut managers = cell.borrow_mut();
            managers.retain(|m| m.runtime.strong_count() > 0);
            if let Some(m) = managers.iter().find(|m| m.id == self.id) {
                return Handle::Node(m.manager.clone());
            }
            let Ok(manager) =
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            else {
                return Handle::Node(shared.clone());
            };
            let alive = Arc::new(());
            let runtime = Arc::downgrade(&alive);
            tokio::spawn(async move {
                let _alive = alive;
                std::future::pending::<()>().await
            });
            if managers.len() >= THREAD_MANAGERS {
                managers.remove(0);
            }
            managers.push(ThreadManager {
                id: self.id,
                manager: manager.clone(),
                runtime,
            });
            Handle::Node(manager)
        })
    }

    /// A client per seed node (the one node, when not a cluster), for
    /// connections of another kind, such as a pub/sub subscription.
    pub(super) fn seeds(&self) -> &[::redis::Client] {
        &self.seeds
    }

    /// Makes every write wait for `replicas` replicas (see
    /// [`Connection::invoke_or_stale`]); `None` keeps the default: 1 on a
    /// cluster (whose failovers promote a replica), 0 on one node.
    pub(super) fn set_wait_replicas(&mut self, replicas: Option<u16>) {
        if let Some(n) = replicas {
            self.wait_replicas = n;
        }
    }

    /// How many replicas a write must reach before it is acknowledged.
    pub(super) fn wait_replicas(&self) -> u16 {
        self.wait_replicas
    }

    /// The bound on every call.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one command.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] on a timeout or a connection failure,
    /// [`StoreError::Backend`] for anything else Redis refuses.
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        match self.handle() {
            Handle::Node(mut conn) => self.bounded(cmd.query_async(&mut conn)).await,
            Handle::Cluster(mut conn) => self.bounded(cmd.query_async(&mut conn)).await,
        }
    }

    /// Every key matching `pattern` (a SCAN glob), perhaps some twice: on a
    /// cluster each master is scanned in turn, since a SCAN walks one node's
    /// keyspace only. Meant for rare, whole-store walks (the aggregation).
    ///
    /// # Errors
    /// As [`Connection::query`]; a failover during the walk fails it (the
    /// caller asks again later).
    pub(super) async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let scan = |cursor: u64| {
            let mut cmd = ::redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            cmd
        };
        let mut keys = Vec::new();
        match self.handle() {
            Handle::Node(mut conn) => {
                let mut cursor = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) =
                        self.bounded(scan(cursor).query_async(&mut conn)).await?;
                    keys.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Handle::Cluster(mut conn) => {
                use ::redis::cluster_routing::{
                    Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
                };
                let ranges: Vec<::redis::Value> = self
                    .bounded(::redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn))
                    .await?;
                // Each master once, routed by the first slot of one of its
                // ranges; a master is known by the address CLUSTER SLOTS
                // gives for it.
                let mut seen = std::collections::HashSet::new();
                for range in &ranges {
                    let ::redis::Value::Array(items) = range else {
                        continue;
                    };
                    let (Some(::redis::Value::Int(slot)), Some(master)) =
                        (items.first(), items.get(2))
                    else {
                        continue;
                    };
                    let Ok(slot) = u16::try_from(*slot) else {
                        continue;
                    };
                    if !seen.insert(format!("{master:?}")) {
                        continue;
                    }
                    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::new(slot, SlotAddr::Master),
                    ));
                    let mut cursor = 0;
                    loop {
                        let reply = self
                            .bounded(conn.route_command(scan(cursor), route.clone()))
                            .await?;
                        let (next, batch): (u64, Vec<String>) =
                            ::redis::from_redis_value(reply).map_err(|e| map_err(e.into()))?;
                        keys.extend(batch);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
        }
        Ok(keys)
    }

    /// Runs a pipeline (or a MULTI/EXEC transaction) in one round trip.
    ///
    /// # Errors
    /// As [`Connection::query`].
    pub(super) async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        match self.handle() {
            Handle::Node(mut conn) => self.bounded(pipe.query_async(&mut conn)).await,
            Handle::Cluster(mut conn) => self.bounded(pipe.query_async(&mut conn)).await,
        }
    }

    /// Runs a script (`EVALSHA`, and on `NOSCRIPT` a load and a retry).
    ///
    /// # Errors
    /// As [`Connection::query`].
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        match self.handle() {
            Handle::Node(mut conn) => self.bounded(script.invoke_async(&mut conn)).await,
            Handle::Cluster(mut conn) => self.bounded(script.invoke_async(&mut conn)).await,
        }
    }

    /// Runs a script that may answer `STALE <detail>` (it needs keys the
    /// call did not declare; it wrote nothing then): `Err(detail)` for that
    /// answer, the reply otherwise.
    ///
    /// # Errors
    /// As [`Connection::query`].
    ///
    /// A write is acknowledged only once [`Connection::wait_replicas`]
    /// replicas have it (`WAIT`, on the connection and node the script ran
    /// on, the master of the slot of `tag`, a key or key prefix of the
    /// script's hash tag): otherwise a failover right after could lose what
    /// the caller was told is done. Fewer replicas in time is
    /// [`StoreError::Unavailable`]: the write may or may not survive, and
    /// the idempotency record makes the caller's retry safe either way.
    pub(super) async fn invoke_or_stale<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
        tag: &str,
    ) -> Result<Result<T, String>, StoreError> {
        let wait = self.wait_replicas;
        // The server gives up waiting before our own timeout would.
        let wait_ms = u64::try_from(self.timeout.as_millis() / 2).unwrap_or(u64::MAX);
        let call = async {
            let mut handle = self.handle();
            let reply = match &mut handle {
                Handle::Node(conn) => script.invoke_async(conn).await,
                Handle::Cluster(conn) => script.invoke_async(conn).await,
            };
            let reply = match reply {
                Err(e) if e.code() == Some(STALE) => {
                    return Ok(Err(e.detail().unwrap_or_default().to_owned()));
                }
                other => other?,
            };
            if wait > 0 {
                let mut cmd = ::redis::cmd("WAIT");
                cmd.arg(wait).arg(wait_ms);
                // The script has run: whatever goes wrong from here (the
                // node became a replica that refuses WAIT, a topology read
                // failed) leaves the write applied but unconfirmed, which
                // the caller must hear as "retry" (503), never as failed.
                let confirmed: Result<(i64, i64), RedisError> = async {
                    Ok(match &mut handle {
                        Handle::Node(conn) => (cmd.query_async(conn).await?, i64::from(wait)),
                        Handle::Cluster(conn) => {
                            use ::redis::cluster_routing::{
                                Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
                            };
                            let slot = super::keys::slot(tag);
                            let route = || {
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                                    Route::new(slot, SlotAddr::Master),
                                ))
                            };
                            // Only a replica that could be promoted must have
                            // the write: a master left without one (its replica
                            // failed, or it is the replica promoted after its
                            // master died) writes alone, without waiting out a
                            // WAIT that cannot succeed (which would also hold up
                            // every other call on the connection meanwhile).
                            let promotable = match self.replicas.get(slot) {
                                Some(n) => n,
                                None => {
                                    let mut nodes = ::redis::cmd("CLUSTER");
                                    nodes.arg("NODES");
                                    let text: String = ::redis::from_redis_value(
                                        conn.route_command(nodes, route()).await?,
                                    )?;
                                    let n = promotable_replicas(&text);
                                    self.replicas.put(slot, n);
                                    n
                                }
                            };
                            let needed = i64::from(wait).min(promotable);
                            if needed == 0 {
                                (0, 0)
                            } else {
                                let acked: i64 = ::redis::from_redis_value(
                                    conn.route_command(cmd, route()).await?,
                                )?;
                                if acked < needed {
                                    // The next write looks at the replicas again.
                                    self.replicas.forget(slot);
                                }
                                (acked, needed)
                            }
                        }
                    })
                }
                .await;
                let (acked, needed) = confirmed.map_err(unconfirmed)?;
                if acked < needed {
                    return Err(RedisError::from((
                        ErrorKind::Io,
                        "a write reached fewer replicas than required in time",
                        format!("{acked} of {wait}"),
                    )));
                }
            }
            Ok(Ok(reply))
        };
        self.bounded(call).await
    }

    /// Runs one Redis call under the command timeout.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| timed_out(self.timeout))?
            .map_err(map_err)
    }

    /// What in the server's configuration puts acknowledged data at risk:
    /// today, a `maxmemory-policy` that may evict keys. An evicted list
    /// string would be refused (fail closed) rather than published as all
    /// VALID, but its revocations would be lost. A server that does not let
    /// us read its configuration (managed Redis often renames `CONFIG`) is
    /// given the benefit of the doubt.
    pub(super) async fn risky_settings(&self) -> Vec<String> {
        let reply: Result<Vec<String>, StoreError> = self
            .query(::redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
            .await;
        match reply.as_deref() {
            Ok([_, policy]) if policy != "noeviction" => vec![format!(
                "Redis maxmemory-policy is '{policy}', not 'noeviction': under memory pressure \
                 Redis may evict status lists and idempotency records, losing revocations \
                 (evicted lists are refused, never published as valid); set \
                 `maxmemory-policy noeviction`"
            )],
            _ => Vec::new(),
        }
    }
}

/// How long a master's count of replicas is trusted: a failover or a
/// replica that failed shows in the writes within this.
const REPLICAS_FRESH: Duration = Duration::from_secs(1);

/// Per slot, how many replicas that could be promoted its master had, and
/// when that was read (`CLUSTER NODES`). A std `Mutex`: the critical
/// sections are a lookup or an insert and never await.
#[derive(Debug, Clone, Default)]
struct ReplicaCounts(Arc<std::sync::Mutex<HashMap<u16, (tokio::time::Instant, i64)>>>);

impl ReplicaCounts {
    /// The count for `slot`, when read within [`REPLICAS_FRESH`].
    fn get(&self, slot: u16) -> Option<i64> {
        let map = self.0.lock().ok()?;
        map.get(&slot)
            .filter(|(at, _)| at.elapsed() < REPLICAS_FRESH)
            .map(|(_, n)| *n)
    }

    fn put(&self, slot: u16, n: i64) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(slot, (tokio::time::Instant::now(), n));
        }
    }

    fn forget(&self, slot: u16) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&slot);
        }
    }
}

/// How many replicas of the node that answered `CLUSTER NODES` (the line
/// flagged `myself`) could be promoted: those not flagged `fail` (a replica
/// only suspected, `fail?`, still counts: it may come back and win an
/// election).
fn promotable_replicas(nodes: &str) -> i64 {
    let fields = |line: &str| line.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let Some(me) = nodes
        .lines()
        .map(fields)
        .find(|f| {
            f.get(2)
                .is_some_and(|flags| flags.split(',').any(|x| x == "myself"))
        })
        .and_then(|f| f.first().cloned())
    else {
        return 0;
    };
    let replicas = nodes.lines().map(fields).filter(|f| {
        f.get(3).is_some_and(|master| *master == me)
            && f.get(2)
                .is_some_and(|flags| !flags.split(',').any(|x| x == "fail"))
    });
    i64::try_from(replicas.count()).unwrap_or(i64::MAX)
}

fn timed_out(t: Duration) -> StoreError {
    StoreError::Unavailable(format!("Redis did not answer within {} ms", t.as_millis()))
}

/// Connection-level failures (and the server's "not now" answers) are
/// retryable unavailability; everything else is a backend error.
/// An error met while confirming that a write reached its replicas, as a
/// connection-kind error: the write is applied but not known to be
/// replicated, so the caller retries (its idempotency record answers).
fn unconfirmed(e: RedisError) -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "a write's replication could not be confirmed",
        e.to_string(),
    ))
}

/// The trusted roots of a `tls_ca_file`, as the redis crate takes them
/// (`None` without a file: the system's roots).
///
/// # Errors
/// [`StoreError::Invalid`] naming the file when it cannot be read or holds
/// no certificate.
fn tls_certificates(
    file: Option<&std::path::Path>,
) -> Result<Option<::redis::TlsCertificates>, StoreError> {
    let Some(file) = file else { return Ok(None) };
    let invalid =
        |why: String| StoreError::Invalid(format!("store.tls_ca_file '{}': {why}", file.display()));
    let pem = std::fs::read(file).map_err(|e| invalid(e.to_string()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid("holds no PEM certificate".to_owned()));
    }
    Ok(Some(::redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

fn map_err(e: RedisError) -> StoreError {
    // A redirect or a refused write still standing after the crate's
    // retries means the cluster's topology is changing (a failover, a
    // resharding): retryable too.
    // NOREPLICAS: a master refusing writes until it has replicas
    // (`min-replicas-to-write`), which a failover or a returning replica
    // ends.
    let retryable = e.is_io_error()
        || e.code() == Some("NOREPLICAS")
        || e.is_timeout()
        || e.is_cluster_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    if retryable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfirmed_write_is_unavailable_not_failed() {
        // What a node that turned replica answers WAIT with: a plain ERR,
        // which on its own would be a backend failure (500).
        let refused = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WAIT cannot be used with replica instances",
        ));
        assert!(matches!(map_err(refused.clone()), StoreError::Backend(_)));
        assert!(matches!(
            map_err(unconfirmed(refused)),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn debug_hides_the_redis_password() {
        let s = RedisSettings::new("redis://user:s3cret@redis.example:6380/0");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis.example:6380"), "{shown}");
        let s = RedisSettings::new("s3cret nonsense");
        assert!(!format!("{s:?}").contains("s3cret"));
        let s = RedisSettings::new("redis+unix:///run/redis.sock?db=1&pass=s3cret");
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn replicas_that_could_be_promoted_are_counted() {
        let nodes = "\
aaa 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
bbb 127.0.0.1:7002@17002 slave aaa 0 0 1 connected
ccc 127.0.0.1:7003@17003 slave,fail? aaa 0 0 1 connected
ddd 127.0.0.1:7004@17004 slave,fail aaa 0 0 1 disconnected
eee 127.0.0.1:7005@17005 slave fff 0 0 2 connected
fff 127.0.0.1:7006@17006 master - 0 0 2 connected 5461-10922
";
        assert_eq!(promotable_replicas(nodes), 2);
        // A promoted replica whose master died: none.
        let alone = "\
bbb 127.0.0.1:7002@17002 myself,master - 0 0 3 connected 0-5460
aaa 127.0.0.1:7001@17001 master,fail - 0 0 1 disconnected
";
        assert_eq!(promotable_replicas(alone), 0);
        assert_eq!(promotable_replicas(""), 0);
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        assert!(matches!(
            check_timeout(Duration::ZERO),
            Err(StoreError::Invalid(_))
        ));
        assert!(check_timeout(Duration::from_millis(1)).is_ok());
    }
}
