//! The Redis change feed: the [`ChangeFeed`] port over Redis pub/sub.
//!
//! `set_status.lua` publishes a list's id on the deployment's change channel
//! (`<prefix>changes`) in the same atomic step as the change, after the
//! version bump, so a message exists if and only if a change was applied and
//! a replica that hears it reads the new version. Each replica subscribes on
//! a dedicated connection (a subscribed connection can run nothing else).
//!
//! The channel is not `{client}`-tagged: it is not a key, and in a Redis
//! Cluster a `PUBLISH` reaches the subscribers on every node whatever slot
//! the publishing script ran in. So on a cluster the feed subscribes on one
//! node, with a plain connection, and when that node dies (or cannot be
//! reached) the next attempt goes to the next seed node of the URL, in
//! turn.
//!
//! Pub/sub is at-most-once: a message sent while a replica is not subscribed
//! is lost. So the feed reports [`ChangeNotice::Lost`] when the connection
//! drops (or stops answering the keepalive `PING`), reconnects with
//! exponential back-off and jitter, and reports [`ChangeNotice::Resumed`]
//! once subscribed again, so that the replica re-checks everything it holds.
//! In between, the cache's version check every `freshness` is what shows
//! changes made elsewhere.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{PubSubSink, PubSubStream};
use ::redis::{Client, Msg, RedisError, Value};
use futures::StreamExt;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::domain::ListId;
use crate::ports::{ChangeFeed, ChangeNotice};

/// The first wait before reconnecting after a failed attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between attempts: how late, at most, the feed is back
/// after Redis is.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often an idle subscription is checked with a `PING`, so that a
/// connection that died without closing (a lost peer, a dropped NAT entry)
/// is noticed and replaced.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// A subscribed connection.
struct Subscribed {
    /// Sends the keepalive `PING`s.
    sink: PubSubSink,
    /// The messages; ends when the connection closes.
    stream: PubSubStream,
    keepalive: Interval,
}

/// The change feed of one Redis deployment (one key prefix). Connects on the
/// first [`ChangeFeed::next`], which then also reports
/// [`ChangeNotice::Resumed`].
pub struct RedisChangeFeed {
    /// The node(s) to subscribe on: one, or a cluster's seed nodes; never
    /// empty.
    seeds: Vec<Client>,
    /// The seed the next attempt goes to.
    next_seed: usize,
    channel: String,
    /// Bounds connecting and subscribing, and each keepalive `PING`.
    timeout: Duration,
    conn: Option<Subscribed>,
    /// Failed attempts since the feed was last subscribed (0: the next
    /// attempt is made at once).
    failures: u32,
    /// Whether the feed has been subscribed before (a later subscription is
    /// a recovery, worth an `info` line).
    was_up: bool,
}

impl fmt::Debug for RedisChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisChangeFeed")
            .field("channel", &self.channel)
            .field("subscribed", &self.conn.is_some())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl RedisChangeFeed {
    /// A feed of `channel` on the server of the first of `seeds` that
    /// answers (a single node, or a cluster's seed nodes); connecting and
    /// each keepalive are bounded by `timeout`. `None` without a seed.
    pub(super) fn new(seeds: Vec<Client>, channel: String, timeout: Duration) -> Option<Self> {
        if seeds.is_empty() {
            return None;
        }
        Some(RedisChangeFeed {
            seeds,
            next_seed: 0,
            channel,
            timeout,
            conn: None,
            failures: 0,
            was_up: false,
        })
    }

    /// The channel this feed listens on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Opens a dedicated connection and subscribes to the channel.
    async fn subscribe(&mut self) -> Result<Subscribed, String> {
        let client = self
            .seeds
            .get(self.next_seed % self.seeds.len().max(1))
            .cloned()
            .ok_or_else(|| "no node to subscribe on".to_owned())?;
        // Whatever happens, a later attempt goes to the next seed: the
        // node this one reaches may be the one that died.
        self.next_seed = (self.next_seed + 1) % self.seeds.len();
        let attempt = async {
            let (mut sink, stream) = client.get_async_pubsub().await?.split();
            sink.subscribe(&self.channel).await?;
            Ok::<_, RedisError>((sink, stream))
        };
        let (sink, stream) = tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))?
            .map_err(|e| e.to_string())?;
        let mut keepalive = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
        keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Subscribed {
            sink,
            stream,
            keepalive,
        })
    }

    /// Connects, waiting out the back-off of earlier failures first; `None`
    /// when this attempt failed too.
    async fn reconnect(&mut self) -> Option<ChangeNotice> {
        if let Some(wait) = backoff(self.failures, rand::random::<f64>()) {
            tokio::time::sleep(wait).await;
        }
        match self.subscribe().await {
            Ok(conn) => {
                if self.was_up {
                    tracing::info!(
                        channel = %self.channel,
                        "change feed subscribed again; re-checking every cached list"
                    );
                } else {
                    tracing::debug!(channel = %self.channel, "change feed subscribed");
                }
                self.conn = Some(conn);
                self.failures = 0;
                self.was_up = true;
                Some(ChangeNotice::Resumed)
            }
            Err(error) => {
                // One warning per outage, not one per attempt.
                if self.failures == 0 {
                    tracing::warn!(
                        channel = %self.channel,
                        %error,
                        "cannot subscribe to the change feed; retrying with back-off, \
                         changes made through other replicas show within freshness_ms meanwhile"
                    );
                } else {
                    tracing::debug!(channel = %self.channel, %error, "change feed retry failed");
                }
                self.failures = self.failures.saturating_add(1);
                None
            }
        }
    }

    /// Drops the connection and says so.
    fn lost(&mut self, why: &str) -> ChangeNotice {
        tracing::warn!(
            channel = %self.channel,
            "change feed {why}; reconnecting, changes made through other replicas show within \
             freshness_ms meanwhile"
        );
        self.conn = None;
        ChangeNotice::Lost
    }
}

impl ChangeFeed for RedisChangeFeed {
    async fn next(&mut self) -> Option<ChangeNotice> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                if let Some(notice) = self.reconnect().await {
                    return Some(notice);
                }
                continue;
            };
            tokio::select! {
                msg = conn.stream.next() => match msg {
                    Some(msg) => match list_of(&msg) {
                        Some(list) => return Some(ChangeNotice::Changed(list)),
                        None => tracing::debug!(
                            channel = %self.channel,
                            "ignoring a change message that is not a list id"
                        ),
                    },
                    None => return Some(self.lost("connection closed")),
                },
                _ = conn.keepalive.tick() => {
                    let timeout = self.timeout;
                    let pong = tokio::time::timeout(timeout, conn.sink.ping::<Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return Some(self.lost("connection stopped answering"));
                    }
                }
            }
        }
    }
}

/// The list a change message names: its payload is the list id.
fn list_of(msg: &Msg) -> Option<ListId> {
    let id = std::str::from_utf8(msg.get_payload_bytes()).ok()?;
    ListId::parse(id).ok()
}

/// How long to wait before the next attempt after `failures` failed ones:
/// none after none, then [`MIN_BACKOFF`] doubling up to [`MAX_BACKOFF`],
/// scaled by `jitter` in `[0, 1)` into its upper half, so that replicas that
/// lost Redis together do not all come back in the same instant.
fn backoff(failures: u32, jitter: f64) -> Option<Duration> {
    if failures == 0 {
        return None;
    }
    let full = MIN_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    Some(full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_maximum() {
        assert_eq!(backoff(0, 0.9), None);
        assert_eq!(backoff(1, 1.0), Some(MIN_BACKOFF));
        assert_eq!(backoff(1, 0.0), Some(MIN_BACKOFF / 2));
        assert_eq!(backoff(2, 1.0), Some(MIN_BACKOFF * 2));
        assert_eq!(backoff(30, 1.0), Some(MAX_BACKOFF));
        assert_eq!(backoff(u32::MAX, 0.0), Some(MAX_BACKOFF / 2));
    }
}
