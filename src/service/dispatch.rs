//! The webhook dispatcher: one per replica, it takes the events the store
//! recorded with their changes from the [`Outbox`], sends each to its
//! client's webhook through a [`WebhookSender`] and reports the outcome.
//!
//! The outbox is the durable half: an event stays there until it is
//! reported delivered or dead, and a taken event is leased, so a replica
//! that dies mid-delivery only delays its events until their leases end.
//! Delivery is therefore at least once; receivers dedupe by the event id.
//!
//! The loop takes events when nudged by the change use cases
//! ([`Dispatcher::notifier`], called after every acknowledged write that
//! recorded events), when `poll_interval` has passed (events recorded by
//! other replicas, retries coming due, leases of dead replicas ending), and
//! at once while a full take suggests a backlog. It never has more than
//! `concurrency` deliveries in flight: it asks for only as many events as
//! it has free slots, so nothing is taken (and leased) that waits for a slot.
//!
//! A failed attempt is retried after `min(retry_max, retry_initial ·
//! 2^(attempt−1))`, jittered uniformly in [½, 1] of that so that the
//! retries of many events failed together by one outage spread out; once
//! the event is `max_age` old (by its id, minted when the change reached
//! the service) a failure dead-letters it instead.
//!
//! A store error never ends the loop: it is logged and the next take waits,
//! longer after each further error, up to [`MAX_STORE_PAUSE`].

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::now_ms;
use crate::domain::ClientId;
use crate::ports::{
    DeliveryObserver, DeliveryOutcome, EventNotifier, Failure, Lease, NoObserver, Outbox,
    StoreError, TakeRequest, WebhookSender,
};

/// How often the pending-events gauges are refreshed.
pub const PENDING_EVERY: Duration = Duration::from_secs(5);

/// The longest pause of the loop after store errors.
pub const MAX_STORE_PAUSE: Duration = Duration::from_secs(5);

/// What the dispatcher needs to know (the `[webhooks]` settings, and the
/// service's base URL for the list URIs of the bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchSettings {
    /// The service's public base URL, the prefix of every list URI.
    pub base_url: String,
    /// This process's name as a taker of events (see [`consumer_name`]).
    pub consumer: String,
    /// The delay before the first retry.
    pub retry_initial: Duration,
    /// The longest delay between two attempts.
    pub retry_max: Duration,
    /// How long after its change an event is still retried.
    pub max_age: Duration,
    /// Deliveries in flight at most.
    pub concurrency: NonZeroUsize,
    /// The longest wait between two looks at the outbox.
    pub poll_interval: Duration,
    /// How long a taken event is held against other takers.
    pub lease: Duration,
    /// How long an event held back by an earlier one of its entry waits.
    pub recheck: Duration,
}

/// A taker name unique to this process: the Redis consumer its leases are
/// held under (the pid helps an operator reading the consumer group; the
/// random part keeps restarts with a reused pid apart).
pub fn consumer_name() -> String {
    format!(
        "statuslist-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The delay before the retry that follows failed attempt `attempt` (from
/// 1): `min(max, initial · 2^(attempt−1))`, times `jitter`, which is clamped
/// to [½, 1] (the dispatcher draws it uniformly from there).
pub fn backoff(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1);
    let delay = if doublings >= 32 {
        max
    } else {
        initial
            .checked_mul(1u32 << doublings)
            .map_or(max, |d| d.min(max))
    };
    // In milliseconds, with saturating conversions: `Duration::mul_f64`
    // panics on an absurd (configured) maximum.
    let ms = delay.as_millis() as f64 * jitter.clamp(0.5, 1.0);
    Duration::from_millis(ms as u64)
}

/// The pause after `failures` consecutive store errors: the poll interval,
/// doubled per further error, at most [`MAX_STORE_PAUSE`] (or the poll
/// interval, if longer).
fn store_pause(poll_interval: Duration, failures: u32) -> Duration {
    let cap = MAX_STORE_PAUSE.max(poll_interval);
    poll_interval
        .checked_mul(1u32 << failures.saturating_sub(1).min(16))
        .map_or(cap, |d| d.min(cap))
}

/// Milliseconds of a duration, saturating.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The dispatcher's [`EventNotifier`]: wakes its loop. A nudge given while
/// the loop is busy is kept (one), so events recorded meanwhile are taken
/// at the next turn rather than at the next poll.
#[derive(Debug, Default)]
pub struct Nudge(Notify);

impl EventNotifier for Nudge {
    fn recorded(&self) {
        self.0.notify_one();
    }
}

/// The webhook dispatcher of one replica. Build it, give
/// [`Dispatcher::notifier`] to the service, then run [`Dispatcher::run`]
/// as a task of its own.
pub struct Dispatcher<O, W> {
    ctx: Ctx<O, W>,
    nudge: Arc<Nudge>,
}

/// What every delivery shares.
struct Ctx<O, W> {
    outbox: Arc<O>,
    sender: Arc<W>,
    observer: Arc<dyn DeliveryObserver>,
    /// The clients with a webhook: the only ones whose events are taken.
    clients: Vec<ClientId>,
    /// Which client goes first in the next take. The store fills a take
    /// client by client, so a fixed order would let a busy first client
    /// use every slot and starve the others.
    turn: AtomicUsize,
    /// Configured clients without a webhook: their events, if any, are
    /// left where they are (and said so once).
    idle: Vec<ClientId>,
    settings: DispatchSettings,
}

impl<O, W> std::fmt::Debug for Dispatcher<O, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("clients", &self.ctx.clients)
            .field("settings", &self.ctx.settings)
            .finish_non_exhaustive()
    }
}

impl<O: Outbox, W: WebhookSender> Dispatcher<O, W> {
    /// A dispatcher of the events of `clients` (those with a webhook) in
    /// `outbox`, sent through `sender`.
    pub fn new(
        outbox: Arc<O>,
        sender: Arc<W>,
        clients: Vec<ClientId>,
        settings: DispatchSettings,
    ) -> Self {
        Dispatcher {
            ctx: Ctx {
                outbox,
                sender,
                observer: Arc::new(NoObserver),
                clients,
                turn: AtomicUsize::new(0),
                idle: Vec::new(),
                settings,
            },
            nudge: Arc::new(Nudge::default()),
        }
    }

    /// Reports every attempt and the pending counts to `observer` (the
    /// metrics).
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn DeliveryObserver>) -> Self {
        self.ctx.observer = observer;
        self
    }

    /// The configured clients without a webhook: at start, the dispatcher
    /// says once if any of them has undelivered events (a webhook removed
    /// from the configuration), which it leaves in the outbox.
    #[must_use]
    pub fn with_idle_clients(mut self, idle: Vec<ClientId>) -> Self {
        self.ctx.idle = idle;
        self
    }

    /// What the change use cases call after recording events, to have them
    /// taken at once.
    pub fn notifier(&self) -> Arc<dyn EventNotifier> {
        self.nudge.clone()
    }

    /// Delivers until dropped (abort the task to stop it: events in flight
    /// are taken again by whoever takes next once their leases end).
    pub async fn run(self) {
        let ctx = Arc::new(self.ctx);
        // Beside the loop, so that a slow store delays no delivery.
        let watch = async {
            ctx.warn_idle().await;
            refresh_pending(ctx.clone()).await;
        };
        tokio::join!(dispatch(ctx.clone(), self.nudge), watch);
    }
}

/// The loop: take as many events as there are free slots when nudged, when
/// `poll_interval` has passed or while there is a backlog; deliver each in
/// its own task.
async fn dispatch<O: Outbox, W: WebhookSender>(ctx: Arc<Ctx<O, W>>, nudge: Arc<Nudge>) {
    let concurrency = ctx.settings.concurrency.get();
    let poll = ctx.settings.poll_interval;
    // Each delivery says whether it released held-back events (take again).
    let mut in_flight: JoinSet<bool> = JoinSet::new();
    // Take at once: events recorded before this process started.
    let mut nudged = true;
    // The last take filled every free slot: more may be due.
    let mut more = false;
    let mut next_poll = Instant::now();
    // After a store error: no take before this, nudged or not.
    let mut not_before = Instant::now();
    let mut failures = 0u32;
    loop {
        while let Some(done) = in_flight.try_join_next() {
            nudged |= joined(done);
        }
        let free = concurrency.saturating_sub(in_flight.len());
        let now = Instant::now();
        if free > 0 && now >= not_before && (nudged || more || now >= next_poll) {
            nudged = false;
            match ctx.take(free).await {
                Ok(leases) => {
                    failures = 0;
                    more = leases.len() >= free;
                    for lease in leases {
                        let ctx = ctx.clone();
                        in_flight.spawn(async move { ctx.deliver(lease).await });
                    }
                    next_poll = Instant::now() + poll;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause = store_pause(poll, failures);
                    tracing::warn!(
                        error = %e,
                        failures,
                        pause_ms = ms(pause),
                        "webhooks: cannot take events from the store; trying again after a pause"
                    );
                    more = false;
                    not_before = Instant::now() + pause;
                    next_poll = not_before;
                }
            }
            continue;
        }
        let wake_at = if nudged || more {
            not_before
        } else {
            next_poll.max(not_before)
        };
        tokio::select! {
            () = nudge.0.notified() => nudged = true,
            // With no free slot only a finished delivery (or a nudge, kept
            // for later) is worth waking for.
            () = tokio::time::sleep_until(wake_at), if free > 0 => {}
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => nudged |= joined(done),
        }
    }
}

/// A finished delivery task: whether it released held-back events. Only a
/// panic is worth saying (its event is taken again when its lease ends).
fn joined(done: Result<bool, JoinError>) -> bool {
    match done {
        Ok(released) => released,
        Err(e) => {
            if e.is_panic() {
                tracing::error!(
                    "webhooks: a delivery task panicked; its event is retried after its lease"
                );
            }
            false
        }
    }
}

/// Refreshes the pending gauges every [`PENDING_EVERY`].
async fn refresh_pending<O: Outbox, W: WebhookSender>(ctx: Arc<Ctx<O, W>>) {
    let mut tick = tokio::time::interval(PENDING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for client in &ctx.clients {
            match ctx.outbox.pending(client).await {
                Ok(count) => ctx.observer.pending(client, count),
                Err(e) => {
                    tracing::debug!(%client, error = %e, "webhooks: cannot count pending events");
                }
            }
        }
    }
}

impl<O: Outbox, W: WebhookSender> Ctx<O, W> {
    /// Takes up to `max` events of the webhook clients.
    async fn take(&self, max: usize) -> Result<Vec<Lease>, StoreError> {
        let mut clients = self.clients.clone();
        if !clients.is_empty() {
            let first = self.turn.fetch_add(1, Ordering::Relaxed) % clients.len();
            clients.rotate_left(first);
        }
        let req = TakeRequest {
            clients,
            consumer: self.settings.consumer.clone(),
            now_ms: now_ms(),
            lease: self.settings.lease,
            recheck: self.settings.recheck,
            max,
        };
        self.outbox.take(&req).await
    }

    /// Says once, at start, which clients without a webhook have events
    /// left: they stay in the outbox until the client has a webhook again
    /// (or forever; nothing else takes them).
    async fn warn_idle(&self) {
        for client in &self.idle {
            if let Ok(count) = self.outbox.pending(client).await
                && count > 0
            {
                tracing::warn!(
                    %client,
                    count,
                    "webhooks: this client has undelivered events but no webhook; they are kept \
                     until a webhook is configured for it"
                );
            }
        }
    }

    /// One attempt: send, then report the outcome to the outbox. A report
    /// the store refuses is logged and dropped: the event's lease then ends
    /// and it is taken again (so a delivered event may be sent twice, which
    /// at-least-once allows). True when the report released events the
    /// event held back, which the loop then takes at once.
    async fn deliver(&self, lease: Lease) -> bool {
        let event = &lease.event;
        let body = event.body(&self.settings.base_url);
        let sent = self.sender.send(&event.client, event.id, body).await;
        let now = now_ms();
        let age = now.saturating_sub(event.id.ms());
        let error = match sent {
            Ok(()) => {
                self.observer
                    .attempt(DeliveryOutcome::Delivered, Some(Duration::from_millis(age)));
                return match self.outbox.delivered(&event.client, &lease.handle).await {
                    Ok(released) => released,
                    Err(e) => {
                        tracing::warn!(
                            client = %event.client,
                            id = %event.id,
                            error = %e,
                            "webhooks: delivered, but the store did not take the report; the \
                             event will be sent again"
                        );
                        false
                    }
                };
            }
            Err(e) => e,
        };
        let failure = Failure {
            client: event.client.clone(),
            handle: lease.handle.clone(),
            attempt: lease.attempt,
            error: error.to_string(),
            now_ms: now,
        };
        let max_age = ms(self.settings.max_age);
        let reported = if age >= max_age {
            self.observer.attempt(DeliveryOutcome::Dead, None);
            tracing::warn!(
                client = %event.client,
                id = %event.id,
                attempt = lease.attempt,
                %error,
                "webhooks: an event reached its maximum age undelivered; dead-lettered"
            );
            self.outbox.dead_letter(&failure).await
        } else {
            let jitter = rand::thread_rng().gen_range(0.5..=1.0);
            let delay = backoff(
                lease.attempt,
                self.settings.retry_initial,
                self.settings.retry_max,
                jitter,
            );
            // Never later than the maximum age: the last attempt is made
            // then, and its failure dead-letters the event on time rather
            // than up to `retry_max` later.
            let retry_at = now
                .saturating_add(ms(delay))
                .min(event.id.ms().saturating_add(max_age));
            self.observer.attempt(DeliveryOutcome::Retried, None);
            tracing::debug!(
                client = %event.client,
                id = %event.id,
                attempt = lease.attempt,
                %error,
                retry_in_ms = retry_at.saturating_sub(now),
                "webhooks: delivery failed; retrying later"
            );
            self.outbox.retry(&failure, retry_at).await.map(|()| false)
        };
        reported.unwrap_or_else(|e| {
            tracing::warn!(
                client = %event.client,
                id = %event.id,
                error = %e,
                "webhooks: the store did not take a failed attempt's report; the event is tried \
                 again when its lease ends"
            );
            false
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::ports::UnixMillis;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::domain::events::{Event, EventId, EventKind, EventSeed};
    use crate::domain::{ListFormat, ListId};
    use crate::ports::{DeadLetter, SendError};

    /// One event of the fake outbox.
    struct Slot {
        event: Event,
        /// Times handed out.
        attempt: u32,
        /// `None`: waiting (never taken).
        due: Option<UnixMillis>,
        gone: bool,
        dead: bool,
    }

    #[derive(Default)]
    struct State {
        /// In record order; the handle is the index.
        slots: Vec<Slot>,
        takes: Vec<TakeRequest>,
        retries: Vec<(Failure, UnixMillis)>,
        dead: Vec<Failure>,
        /// Takes still to fail.
        failing_takes: u32,
        /// `delivered` reports still to fail.
        failing_reports: u32,
        /// Whether a `delivered` report says it released held-back events.
        releases: bool,
    }

    /// An in-memory outbox: the states of the port, without hold-back.
    #[derive(Default)]
    struct FakeOutbox(Mutex<State>);

    impl FakeOutbox {
        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.0.lock().unwrap()
        }

        /// Records an event; `attempts` as if handed out so often already.
        fn record(&self, event: Event, attempts: u32) {
            self.state().slots.push(Slot {
                event,
                attempt: attempts,
                due: None,
                gone: false,
                dead: false,
            });
        }

        fn delivered_ids(&self) -> Vec<EventId> {
            let s = self.state();
            s.slots
                .iter()
                .filter(|e| e.gone)
                .map(|e| e.event.id)
                .collect()
        }
    }

    impl Outbox for FakeOutbox {
        async fn take(&self, req: &TakeRequest) -> Result<Vec<Lease>, StoreError> {
            let mut s = self.state();
            s.takes.push(req.clone());
            if s.failing_takes > 0 {
                s.failing_takes -= 1;
                return Err(StoreError::Backend("the store is down".into()));
            }
            let mut out = Vec::new();
            for client in &req.clients {
                for (i, slot) in s.slots.iter_mut().enumerate() {
                    if out.len() == req.max {
                        break;
                    }
                    let due = slot.due.is_none_or(|d| d <= req.now_ms);
                    if slot.event.client == *client && !slot.gone && !slot.dead && due {
                        slot.attempt += 1;
                        slot.due = Some(req.now_ms + ms(req.lease));
                        out.push(Lease {
                            event: slot.event.clone(),
                            attempt: slot.attempt,
                            handle: i.to_string(),
                        });
                    }
                }
            }
            Ok(out)
        }

        async fn delivered(&self, _: &ClientId, handle: &str) -> Result<bool, StoreError> {
            let mut s = self.state();
            if s.failing_reports > 0 {
                s.failing_reports -= 1;
                return Err(StoreError::Backend("the store is down".into()));
            }
            let i: usize = handle.parse().unwrap();
            s.slots[i].gone = true;
            Ok(s.releases)
        }

        async fn retry(&self, failure: &Failure, retry_at: UnixMillis) -> Result<(), StoreError> {
            let mut s = self.state();
            let i: usize = failure.handle.parse().unwrap();
            if s.slots[i].attempt == failure.attempt {
                s.slots[i].due = Some(retry_at);
            }
            s.retries.push((failure.clone(), retry_at));
            Ok(())
        }

        async fn dead_letter(&self, failure: &Failure) -> Result<bool, StoreError> {
            let mut s = self.state();
            let i: usize = failure.handle.parse().unwrap();
            s.slots[i].dead = true;
            s.dead.push(failure.clone());
            Ok(s.releases)
        }

        async fn dead_letters(&self, _: &ClientId) -> Result<Vec<DeadLetter>, StoreError> {
            Ok(Vec::new())
        }

        async fn redeliver(&self, _: &ClientId, _: &[EventId]) -> Result<Vec<EventId>, StoreError> {
            Ok(Vec::new())
        }

        async fn pending(&self, client: &ClientId) -> Result<u64, StoreError> {
            let s = self.state();
            Ok(s.slots
                .iter()
                .filter(|e| e.event.client == *client && !e.gone && !e.dead)
                .count() as u64)
        }
    }

    /// A sender that answers `answer` (or 2xx), optionally after a permit
    /// of `gate`, counting deliveries in flight.
    struct FakeSender {
        answer: Mutex<Result<(), SendError>>,
        gate: Option<Semaphore>,
        sent: Mutex<Vec<(ClientId, EventId, Vec<u8>)>>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl FakeSender {
        fn answering(answer: Result<(), SendError>) -> Self {
            FakeSender {
                answer: Mutex::new(answer),
                gate: None,
                sent: Mutex::default(),
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
            }
        }

        fn gated() -> Self {
            FakeSender {
                gate: Some(Semaphore::new(0)),
                ..FakeSender::answering(Ok(()))
            }
        }
    }

    impl WebhookSender for FakeSender {
        async fn send(
            &self,
            client: &ClientId,
            id: EventId,
            body: Vec<u8>,
        ) -> Result<(), SendError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            self.sent.lock().unwrap().push((client.clone(), id, body));
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.answer.lock().unwrap().clone()
        }
    }

    /// What the observer heard.
    #[derive(Default)]
    struct Heard {
        outcomes: Mutex<Vec<(DeliveryOutcome, Option<Duration>)>>,
        pending: Mutex<HashMap<ClientId, u64>>,
    }

    impl DeliveryObserver for Heard {
        fn attempt(&self, outcome: DeliveryOutcome, latency: Option<Duration>) {
            self.outcomes.lock().unwrap().push((outcome, latency));
        }
        fn pending(&self, client: &ClientId, count: u64) {
            self.pending.lock().unwrap().insert(client.clone(), count);
        }
    }

    fn client(name: &str) -> ClientId {
        ClientId::parse(name).unwrap()
    }

    /// An `entry.revoked` of `who`'s entry `idx`, changed at `ms`.
    fn event(who: &str, ms: u64, idx: u64) -> Event {
        Event {
            id: EventSeed { ms, nonce: idx }.id(0),
            kind: EventKind::EntryRevoked,
            client: client(who),
            format: ListFormat::Token,
            at: ms / 1000,
            entries: vec![(ListId::parse("0123456789AB").unwrap(), idx)],
            issuance_ref: None,
        }
    }

    fn settings() -> DispatchSettings {
        DispatchSettings {
            base_url: "https://status.example".into(),
            consumer: consumer_name(),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(8),
            max_age: Duration::from_secs(3600),
            concurrency: NonZeroUsize::new(4).unwrap(),
            poll_interval: Duration::from_millis(20),
            lease: Duration::from_secs(60),
            recheck: Duration::from_millis(500),
        }
    }

    /// A running dispatcher (aborted when dropped) and what it works on.
    struct Running {
        outbox: Arc<FakeOutbox>,
        sender: Arc<FakeSender>,
        heard: Arc<Heard>,
        notifier: Arc<dyn EventNotifier>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn start(
        outbox: FakeOutbox,
        sender: FakeSender,
        clients: &[&str],
        settings: DispatchSettings,
    ) -> Running {
        let outbox = Arc::new(outbox);
        let sender = Arc::new(sender);
        let heard = Arc::new(Heard::default());
        let clients = clients.iter().map(|c| client(c)).collect();
        let d = Dispatcher::new(outbox.clone(), sender.clone(), clients, settings)
            .with_observer(heard.clone());
        let notifier = d.notifier();
        Running {
            outbox,
            sender,
            heard,
            notifier,
            task: tokio::spawn(d.run()),
        }
    }

    /// Waits (up to 10 s) until `done` holds.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_within_half_to_one() {
        let s = Duration::from_secs;
        let b = |attempt, jitter| backoff(attempt, s(1), s(3600), jitter);
        assert_eq!(b(1, 1.0), s(1));
        assert_eq!(b(2, 1.0), s(2));
        assert_eq!(b(3, 1.0), s(4));
        assert_eq!(b(12, 1.0), s(2048));
        assert_eq!(b(13, 1.0), s(3600), "capped");
        assert_eq!(b(40, 1.0), s(3600));
        assert_eq!(b(u32::MAX, 1.0), s(3600));
        // Attempt 0 does not happen; it is treated as the first.
        assert_eq!(b(0, 1.0), s(1));
        // Jitter: [½, 1] of the delay, whatever is drawn.
        assert_eq!(b(3, 0.5), s(2));
        assert_eq!(b(3, 0.75), s(3));
        assert_eq!(b(3, 0.0), s(2));
        assert_eq!(b(3, 7.0), s(4));
        assert_eq!(b(13, 0.5), s(1800), "the cap is jittered too");
        // An absurd configuration saturates instead of panicking.
        assert_eq!(
            backoff(64, Duration::MAX, Duration::MAX, 1.0),
            Duration::from_millis(u64::MAX)
        );
        assert_eq!(
            backoff(2, Duration::from_millis(1), Duration::from_secs(1), 0.5),
            Duration::from_millis(1)
        );
        // Store errors pause the loop longer each time, within the bound.
        let poll = Duration::from_millis(250);
        assert_eq!(store_pause(poll, 1), poll);
        assert_eq!(store_pause(poll, 2), poll * 2);
        assert_eq!(store_pause(poll, 30), MAX_STORE_PAUSE);
        assert_eq!(store_pause(s(60), 3), s(60));
    }

    #[tokio::test]
    async fn a_failed_attempt_is_retried_after_its_jittered_backoff() {
        let outbox = FakeOutbox::default();
        let now = now_ms();
        // As if handed out 0, 1, 2 and 9 times before: attempts 1, 2, 3, 10.
        for (idx, before) in [(1, 0), (2, 1), (3, 2), (4, 9)] {
            outbox.record(event("a", now, idx), before);
        }
        let r = start(
            outbox,
            FakeSender::answering(Err(SendError::Status(500))),
            &["a"],
            settings(),
        );
        until("four failures reported", || {
            r.outbox.state().retries.len() >= 4
        })
        .await;
        let s = r.outbox.state();
        for (failure, retry_at) in s.retries.iter().take(4) {
            // retry_initial 1 s, doubled per attempt, capped at 8 s.
            let full = 1000u64 << (failure.attempt - 1).min(3);
            let delay = retry_at - failure.now_ms;
            assert!(
                (full / 2..=full).contains(&delay),
                "attempt {}: {delay} ms, want [{}, {full}]",
                failure.attempt,
                full / 2
            );
            assert_eq!(failure.error, "the receiver answered HTTP 500");
            assert_eq!(failure.client, client("a"));
            let slot = &s.slots[failure.handle.parse::<usize>().unwrap()];
            assert_eq!(slot.attempt, failure.attempt, "the lease's attempt");
        }
        let attempts: Vec<u32> = s.retries.iter().take(4).map(|r| r.0.attempt).collect();
        assert_eq!(attempts, [1, 2, 3, 10]);
        assert!(s.dead.is_empty());
        drop(s);
        let heard = r.heard.outcomes.lock().unwrap();
        assert!(heard.iter().all(|h| *h == (DeliveryOutcome::Retried, None)));
    }

    #[tokio::test]
    async fn a_failure_past_the_maximum_age_dead_letters_the_event() {
        let outbox = FakeOutbox::default();
        let now = now_ms();
        // Two hours old, with a maximum age of one.
        outbox.record(event("a", now - 7_200_000, 1), 5);
        // 59 minutes old: a 10-minute backoff would pass the maximum age, so
        // the retry comes at it (the last attempt), not after.
        outbox.record(event("a", now - 3_540_000, 2), 0);
        let r = start(
            outbox,
            FakeSender::answering(Err(SendError::Timeout)),
            &["a"],
            DispatchSettings {
                retry_initial: Duration::from_secs(600),
                retry_max: Duration::from_secs(600),
                ..settings()
            },
        );
        until("a dead letter and a retry", || {
            let s = r.outbox.state();
            !s.dead.is_empty() && !s.retries.is_empty()
        })
        .await;
        let s = r.outbox.state();
        assert_eq!(s.dead.len(), 1);
        assert_eq!(s.dead[0].handle, "0");
        assert_eq!(s.dead[0].attempt, 6);
        assert_eq!(s.dead[0].error, "no answer within the timeout");
        assert!(s.slots[0].dead);
        let (failure, retry_at) = &s.retries[0];
        assert_eq!(failure.handle, "1");
        assert_eq!(*retry_at, s.slots[1].event.id.ms() + 3_600_000);
        assert!(*retry_at - failure.now_ms <= 60_000, "{retry_at}");
        drop(s);
        let heard = r.heard.outcomes.lock().unwrap();
        assert!(heard.contains(&(DeliveryOutcome::Dead, None)));
        assert!(heard.contains(&(DeliveryOutcome::Retried, None)));
    }

    #[tokio::test]
    async fn a_delivery_is_reported_with_its_latency() {
        let outbox = FakeOutbox::default();
        let ev = event("a", now_ms() - 1500, 7);
        outbox.record(ev.clone(), 0);
        let r = start(outbox, FakeSender::answering(Ok(())), &["a"], settings());
        until("delivered", || r.outbox.delivered_ids() == [ev.id]).await;
        let sent = r.sender.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, client("a"));
        assert_eq!(sent[0].1, ev.id);
        // The body as the event makes it, with the service's base URL.
        assert_eq!(sent[0].2, ev.body("https://status.example"));
        drop(sent);
        let heard = r.heard.outcomes.lock().unwrap();
        assert_eq!(heard.len(), 1);
        let (outcome, latency) = heard[0];
        assert_eq!(outcome, DeliveryOutcome::Delivered);
        assert!(
            latency.unwrap() >= Duration::from_millis(1500),
            "{latency:?}"
        );
    }

    #[tokio::test]
    async fn a_store_error_does_not_end_the_loop() {
        let outbox = FakeOutbox::default();
        let ev = event("a", now_ms(), 1);
        outbox.record(ev.clone(), 0);
        {
            let mut s = outbox.state();
            s.failing_takes = 3;
            // The first delivery's report is lost too: the event is taken
            // again when its lease ends and delivered again.
            s.failing_reports = 1;
        }
        let r = start(
            outbox,
            FakeSender::answering(Ok(())),
            &["a"],
            DispatchSettings {
                poll_interval: Duration::from_millis(5),
                lease: Duration::from_millis(50),
                ..settings()
            },
        );
        until("delivered after the store came back", || {
            r.outbox.delivered_ids() == [ev.id]
        })
        .await;
        assert!(r.outbox.state().takes.len() >= 5);
        let sent: Vec<EventId> = r.sender.sent.lock().unwrap().iter().map(|s| s.1).collect();
        assert_eq!(
            sent,
            [ev.id, ev.id],
            "at least once: sent again after the lost report"
        );
        assert!(!r.task.is_finished());
    }

    #[tokio::test]
    async fn never_more_deliveries_in_flight_than_the_concurrency() {
        let outbox = FakeOutbox::default();
        let now = now_ms();
        for idx in 0..20 {
            outbox.record(event("a", now, idx), 0);
        }
        let r = start(outbox, FakeSender::gated(), &["a"], settings());
        until("four in flight", || {
            r.sender.in_flight.load(Ordering::SeqCst) == 4
        })
        .await;
        // Polls and nudges while every slot is busy take nothing.
        for _ in 0..5 {
            r.notifier.recorded();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(r.sender.most_in_flight.load(Ordering::SeqCst), 4);
        assert_eq!(
            r.outbox
                .state()
                .slots
                .iter()
                .filter(|s| s.due.is_some())
                .count(),
            4
        );
        // Let them through one at a time: each freed slot is refilled.
        let gate = r.sender.gate.as_ref().unwrap();
        for released in 1..=20 {
            gate.add_permits(1);
            until("one more delivered", || {
                r.outbox.delivered_ids().len() == released
            })
            .await;
        }
        assert_eq!(r.sender.most_in_flight.load(Ordering::SeqCst), 4);
        let s = r.outbox.state();
        assert!(
            s.takes.iter().all(|t| (1..=4).contains(&t.max)),
            "asks only for free slots"
        );
        assert_eq!(s.takes[0].max, 4);
        assert!(
            s.slots.iter().all(|e| e.attempt == 1),
            "nothing was taken twice"
        );
    }

    #[tokio::test]
    async fn a_nudge_wakes_the_loop_before_the_poll_interval() {
        let r = start(
            FakeOutbox::default(),
            FakeSender::answering(Ok(())),
            &["a"],
            DispatchSettings {
                poll_interval: Duration::from_secs(3600),
                ..settings()
            },
        );
        until("the first take", || !r.outbox.state().takes.is_empty()).await;
        let ev = event("a", now_ms(), 1);
        r.outbox.record(ev.clone(), 0);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(r.outbox.delivered_ids().is_empty(), "waits for the poll");
        assert_eq!(r.outbox.state().takes.len(), 1);
        r.notifier.recorded();
        until("delivered after the nudge", || {
            r.outbox.delivered_ids() == [ev.id]
        })
        .await;
        // A nudge given while the loop is busy is kept for its next turn.
        let ev2 = event("a", now_ms(), 2);
        r.outbox.record(ev2.clone(), 0);
        r.notifier.recorded();
        r.notifier.recorded();
        until("the second delivered", || {
            r.outbox.delivered_ids().len() == 2
        })
        .await;
    }

    #[tokio::test]
    async fn a_delivery_that_releases_held_back_events_takes_again_at_once() {
        for releases in [false, true] {
            let outbox = FakeOutbox::default();
            outbox.state().releases = releases;
            outbox.record(event("a", now_ms(), 1), 0);
            let r = start(
                outbox,
                FakeSender::answering(Ok(())),
                &["a"],
                DispatchSettings {
                    poll_interval: Duration::from_secs(3600),
                    ..settings()
                },
            );
            until("delivered", || r.outbox.delivered_ids().len() == 1).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            // The first take at start, then one more only after a release.
            let takes = r.outbox.state().takes.len();
            assert_eq!(takes, if releases { 2 } else { 1 }, "releases: {releases}");
        }
    }

    #[tokio::test]
    async fn each_take_starts_with_the_next_client() {
        let outbox = FakeOutbox::default();
        let r = start(
            outbox,
            FakeSender::answering(Ok(())),
            &["a", "b", "c"],
            settings(),
        );
        until("three takes", || r.outbox.state().takes.len() >= 3).await;
        let s = r.outbox.state();
        let firsts: Vec<ClientId> = s.takes[..3].iter().map(|t| t.clients[0].clone()).collect();
        assert_eq!(firsts, [client("a"), client("b"), client("c")]);
        assert!(s.takes.iter().all(|t| t.clients.len() == 3));
    }

    #[tokio::test]
    async fn events_of_clients_without_a_webhook_are_not_taken() {
        let outbox = FakeOutbox::default();
        let now = now_ms();
        let mine = event("a", now, 1);
        let theirs = event("b", now, 2);
        outbox.record(theirs.clone(), 0);
        outbox.record(mine.clone(), 0);
        let r = start(outbox, FakeSender::answering(Ok(())), &["a"], settings());
        until("a's event delivered", || {
            r.outbox.delivered_ids() == [mine.id]
        })
        .await;
        // A few more polls.
        tokio::time::sleep(Duration::from_millis(100)).await;
        {
            let s = r.outbox.state();
            assert!(s.takes.iter().all(|t| t.clients == [client("a")]));
            assert!(s.takes.iter().all(|t| t.consumer == s.takes[0].consumer));
            assert_eq!(s.slots[0].attempt, 0, "b's event was never handed out");
            assert!(!s.slots[0].gone);
        }
        assert!(
            r.sender
                .sent
                .lock()
                .unwrap()
                .iter()
                .all(|s| s.0 == client("a"))
        );
        // The pending gauge is fed at start, for the webhook clients only.
        until("a pending count", || {
            r.heard.pending.lock().unwrap().contains_key(&client("a"))
        })
        .await;
        assert!(!r.heard.pending.lock().unwrap().contains_key(&client("b")));
    }

    #[test]
    fn consumer_names_differ_per_dispatcher() {
        let a = consumer_name();
        assert!(a.starts_with(&format!("statuslist-{}-", std::process::id())));
        assert_ne!(a, consumer_name());
    }
}
