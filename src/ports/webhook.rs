//! The webhook ports: sending one signed event to a client's receiver, and
//! telling the metrics how deliveries went.
//!
//! The dispatcher (`crate::service::dispatch`) takes events from the
//! [`Outbox`](super::Outbox), hands each body to a [`WebhookSender`] and
//! reports the outcome back to the outbox and to a [`DeliveryObserver`]. The
//! sender knows where each client's receiver is and its secret; the
//! dispatcher knows neither.

use std::future::Future;
use std::time::Duration;

use crate::domain::ClientId;
use crate::domain::events::EventId;

/// Why a delivery attempt failed. The text (`Display`) is what the dead
/// letter keeps as its error: never a secret, a signature, a body or a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The receiver answered with a status other than 2xx (a redirect
    /// included: redirects are not followed).
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    /// No answer within the timeout (connecting included).
    #[error("no answer within the timeout")]
    Timeout,
    /// The receiver could not be reached (refused, unresolvable, TLS).
    #[error("cannot connect to the receiver")]
    Connect,
    /// The request failed otherwise (the connection dropped mid-request).
    #[error("the request failed: {0}")]
    Request(String),
    /// The client has no webhook here (its configuration changed under
    /// the dispatcher).
    #[error("no webhook is configured for the client")]
    NoWebhook,
}

/// Sends one event to a client's webhook.
pub trait WebhookSender: Send + Sync + 'static {
    /// POSTs `body` (the event's JSON, [`Event::body`]) to `client`'s
    /// webhook, signed at send time, with `id` as `Statuslist-Event-Id`.
    ///
    /// [`Event::body`]: crate::domain::events::Event::body
    ///
    /// # Errors
    /// [`SendError`] unless the receiver answered 2xx.
    fn send(
        &self,
        client: &ClientId,
        id: EventId,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// How an attempt ended, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// A 2xx answer: the event is delivered.
    Delivered,
    /// It failed and is scheduled again.
    Retried,
    /// It failed past the maximum age: dead-lettered.
    Dead,
}

impl DeliveryOutcome {
    /// The `outcome` label.
    pub const fn label(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retried => "retried",
            DeliveryOutcome::Dead => "dead",
        }
    }
}

/// Where the dispatcher reports what it did (the metrics, in the service).
pub trait DeliveryObserver: Send + Sync + 'static {
    /// An attempt ended so. `latency` is, for a delivery, the time from the
    /// change (the event id's time) to the 2xx answer.
    fn attempt(&self, outcome: DeliveryOutcome, latency: Option<Duration>);

    /// `client` has `count` events waiting, held or scheduled.
    fn pending(&self, client: &ClientId, count: u64);
}

/// An observer that records nothing (tests, embedding).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl DeliveryObserver for NoObserver {
    fn attempt(&self, _: DeliveryOutcome, _: Option<Duration>) {}
    fn pending(&self, _: &ClientId, _: u64) {}
}
