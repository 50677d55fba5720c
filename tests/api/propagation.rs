//! Changes reach every replica at once (issue 13, target 6): replicas on one
//! Redis hear of each change on the deployment's change channel and drop
//! their cached token, instead of serving it until their `freshness` window
//! ends. Every scenario sets `freshness_ms` to 60 s, so a replica that sees
//! a change within the generous deadlines below can only have heard of it;
//! a replica with `notify_changes = false` on the same Redis shows the
//! contrast. Deadlines are liveness bounds, never speed assertions.

use std::time::Duration;

use reqwest::StatusCode;
use statuslist::config::Settings;
use statuslist::domain::ListId;
use statuslist::ports::{ChangeFeed, ChangeNotice};

use crate::helpers::*;
use crate::support::RedisServer;

/// Far longer than any deadline here: a version check never explains what
/// a replica shows.
const FRESHNESS_MS: u64 = 60_000;

/// How long a change may take to show on another replica before the test
/// fails (pub/sub takes milliseconds; `freshness` alone would take 60 s).
const DEADLINE: Duration = Duration::from_secs(5);

/// Replicas on one private Redis, sharing a prefix and a key directory.
struct Cluster {
    redis: RedisServer,
    spec: StoreSpec,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Self {
        let (dir, spec, redis) = fresh_store(StoreChoice::Redis);
        Cluster {
            redis: redis.expect("a private redis-server"),
            spec,
            dir,
        }
    }

    fn settings(&self, notify_changes: bool) -> Settings {
        let knobs = Knobs {
            freshness_ms: FRESHNESS_MS,
            // Nothing here is about timeouts: room for a loaded machine.
            command_timeout_ms: 2_000,
            ..Knobs::default()
        };
        let mut settings = settings(&self.spec, &knobs, self.dir.path());
        settings.store.notify_changes = notify_changes;
        settings
    }

    /// Waits until `n` replicas listen on the change channel. A replica
    /// subscribes in the background once built; a change made before its
    /// subscription is in place is, by design, caught only by its freshness
    /// check (60 s here), so a scenario must not race the subscription.
    async fn wait_for_listeners(&self, n: usize) {
        let channel = format!("{}changes", self.settings(true).store.redis_prefix);
        let want = format!(":{n}");
        // A replica notices a restarted Redis by its next ping (every 5 s)
        // and reconnects with back-off: allow 30 s on a loaded machine.
        for _ in 0..3_000 {
            let reply = self.redis.command(&format!("PUBSUB NUMSUB {channel}"));
            if reply.lines().any(|l| l.trim() == want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} replicas did not subscribe to {channel} within 30 s");
    }

    /// A replica; with `notify_changes` off it neither announces nor hears
    /// changes.
    async fn replica(&self, notify_changes: bool) -> TestApp {
        start(self.settings(notify_changes)).await
    }
}

/// Polls the status at `idx` on `app` until it is `want` or [`DEADLINE`]
/// passes; the last status seen.
async fn poll_until(app: &TestApp, uri: &str, idx: u64, want: u8) -> u8 {
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        let seen = app.status_at(uri, idx).await;
        if seen == want || tokio::time::Instant::now() >= until {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_until_ready(app: &TestApp) {
    for _ in 0..400 {
        if app.get("/health/ready").await.status() == StatusCode::OK {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the app did not become ready again");
}

#[tokio::test]
async fn a_revocation_through_one_replica_shows_on_another_at_once() {
    let cluster = Cluster::new();
    let a = cluster.replica(true).await;
    let b = cluster.replica(true).await;
    let deaf = cluster.replica(false).await;
    cluster.wait_for_listeners(2).await;
    let (idx, uri) = a.issue(&TOKEN).await;
    // Both replicas hold the token with the entry VALID, trusted for 60 s.
    assert_eq!(b.status_at(&uri, idx).await, VALID);
    assert_eq!(deaf.status_at(&uri, idx).await, VALID);

    let res = a.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        poll_until(&b, &uri, idx, INVALID).await,
        INVALID,
        "replica B still serves the token without the revocation after {DEADLINE:?}"
    );
    // The contrast: without the feed, the token is trusted for freshness.
    assert_eq!(
        deaf.status_at(&uri, idx).await,
        VALID,
        "a replica without notify_changes only re-checks after freshness_ms"
    );

    // And the other way round, for a suspension and a second list.
    let (idx2, uri2) = b.issue(&BITS).await;
    assert_eq!(a.status_at(&uri2, idx2).await, VALID);
    let res = b.change("/suspend", &BITS, idx2, &uri2).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(poll_until(&a, &uri2, idx2, SUSPENDED).await, SUSPENDED);
}

#[tokio::test]
async fn after_a_redis_restart_the_subscription_comes_back() {
    let mut cluster = Cluster::new();
    let a = cluster.replica(true).await;
    let b = cluster.replica(true).await;
    cluster.wait_for_listeners(2).await;
    let (idx, uri) = a.issue(&TOKEN).await;
    assert_eq!(b.status_at(&uri, idx).await, VALID);

    // The private server keeps no data: after the restart the lists are new.
    cluster.redis.restart();
    wait_until_ready(&a).await;
    wait_until_ready(&b).await;
    cluster.wait_for_listeners(2).await;
    let (idx, uri) = a.issue(&TOKEN).await;
    assert_eq!(b.status_at(&uri, idx).await, VALID);

    let res = a.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        poll_until(&b, &uri, idx, INVALID).await,
        INVALID,
        "replica B did not hear of the change after Redis came back"
    );
    // Twice: the subscription is back for good, not only the catch-up of
    // everything cached when it returned.
    let (idx, uri) = a.issue(&TOKEN).await;
    assert_eq!(b.status_at(&uri, idx).await, VALID);
    let res = a.change("/suspend", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(poll_until(&b, &uri, idx, SUSPENDED).await, SUSPENDED);
}

/// The adapter's feed: connected first (`Resumed`), then one message per
/// applied change and none for a change that applied nothing (the entry
/// already had the status), since the script publishes only after it
/// changed the list.
#[tokio::test]
async fn the_feed_announces_applied_changes_only() {
    let cluster = Cluster::new();
    let app = cluster.replica(true).await;
    let store = statuslist::startup::open_store(&cluster.settings(true))
        .await
        .unwrap();
    let mut feed = store.change_feed().expect("Redis has a change feed");
    let next = async |feed: &mut statuslist::store::redis::RedisChangeFeed| {
        tokio::time::timeout(DEADLINE, feed.next())
            .await
            .expect("a notice within the deadline")
    };
    assert_eq!(next(&mut feed).await, Some(ChangeNotice::Resumed));

    let (idx, uri) = app.issue(&TOKEN).await;
    let (idx2, uri2) = app.issue(&TOKEN2).await;
    let list = |uri: &str| ListId::parse(uri.rsplit('/').next().unwrap()).unwrap();
    assert_ne!(list(&uri), list(&uri2));

    let res = app.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        next(&mut feed).await,
        Some(ChangeNotice::Changed(list(&uri)))
    );
    // Already revoked: nothing applied, nothing announced; the next message
    // is the next change, to the other list.
    let res = app.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = app.change("/revoke", &TOKEN2, idx2, &uri2).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        next(&mut feed).await,
        Some(ChangeNotice::Changed(list(&uri2)))
    );

    // Off: no feed, and the replica's changes are not announced: the next
    // message is the change made through the announcing replica after it.
    let quiet = statuslist::startup::open_store(&cluster.settings(false))
        .await
        .unwrap();
    assert!(quiet.change_feed().is_none());
    let deaf = cluster.replica(false).await;
    let (idx3, uri3) = app.issue(&TOKEN).await;
    assert_eq!(list(&uri3), list(&uri));
    let res = deaf.change("/revoke", &TOKEN, idx3, &uri3).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let (idx4, uri4) = app.issue(&TOKEN2).await;
    let res = app.change("/revoke", &TOKEN2, idx4, &uri4).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        next(&mut feed).await,
        Some(ChangeNotice::Changed(list(&uri4)))
    );
}
