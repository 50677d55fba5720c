//! How the adapter reaches Redis: its settings, the connection, and the one
//! rule for failures.
//!
//! The connection is a [`ConnectionManager`] (one multiplexed connection that
//! reconnects by itself). Every command runs under a timeout (500 ms by
//! default); a timeout or a connection failure is
//! [`StoreError::Unavailable`], never a hang. A script that timed out on the
//! client may still have run on the server: the idempotency record written by
//! that same script is what makes a retry safe then (it gets the same
//! answer).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, ScriptInvocation, ServerErrorKind,
};

use crate::ports::StoreError;

/// How to reach Redis and how to name keys there.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://`, `rediss://` or `redis+unix://` URL. May hold a password,
    /// so `Debug` hides it.
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
}

impl RedisSettings {
    /// Settings for `url` with the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisSettings {
            url: url.into(),
            prefix: "statuslist:".to_owned(),
            command_timeout: Duration::from_millis(500),
            notify_changes: true,
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
/// Cheap to use from many tasks: each call clones the multiplexed handle.
#[derive(Clone)]
pub(super) struct Connection {
    manager: ConnectionManager,
    /// What the manager was built from; also opens the change feed's own
    /// connection.
    client: ::redis::Client,
    /// Above zero ([`check_timeout`]).
    timeout: Duration,
}

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
    pub(super) async fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(url)
            .map_err(|e| StoreError::Invalid(format!("bad Redis URL ({:?})", e.kind())))?;
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
        let manager = tokio::time::timeout(
            t,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| timed_out(t))?
        .map_err(map_err)?;
        Ok(Connection {
            manager,
            client,
            timeout,
        })
    }

    /// The client the connection was opened with (for connections of
    /// another kind, such as a pub/sub subscription).
    pub(super) fn client(&self) -> &::redis::Client {
        &self.client
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
        let mut conn = self.manager.clone();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    /// Runs a pipeline (or a MULTI/EXEC transaction) in one round trip.
    ///
    /// # Errors
    /// As [`Connection::query`].
    pub(super) async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, StoreError> {
        let mut conn = self.manager.clone();
        self.bounded(pipe.query_async(&mut conn)).await
    }

    /// Runs a script (`EVALSHA`, and on `NOSCRIPT` a load and a retry).
    ///
    /// # Errors
    /// As [`Connection::query`].
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.manager.clone();
        self.bounded(script.invoke_async(&mut conn)).await
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

fn timed_out(t: Duration) -> StoreError {
    StoreError::Unavailable(format!("Redis did not answer within {} ms", t.as_millis()))
}

/// Connection-level failures (and the server's "not now" answers) are
/// retryable unavailability; everything else is a backend error.
fn map_err(e: RedisError) -> StoreError {
    let retryable = e.is_io_error()
        || e.is_timeout()
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
    fn a_zero_timeout_is_refused() {
        assert!(matches!(
            check_timeout(Duration::ZERO),
            Err(StoreError::Invalid(_))
        ));
        assert!(check_timeout(Duration::from_millis(1)).is_ok());
    }
}
