//! The event outbox port: the events a store recorded with the changes they
//! report, handed out for delivery one holder at a time.
//!
//! A store records an event in the same atomic step as its change (when the
//! write request carries an [`EventSeed`](crate::domain::events::EventSeed)),
//! so the outbox is the durable half of the webhooks: whatever a replica
//! does, an acknowledged change has its event here until the event is
//! delivered or dead-lettered. The dispatcher
//! (`crate::service::dispatch`) takes events, sends them and reports back.
//!
//! An event is in one of these states:
//! - **waiting**: recorded, never taken;
//! - **held**: taken by a consumer, until `due` (the end of its lease);
//! - **scheduled**: an attempt failed; due again at `due`;
//! - **dead**: given up on, listed by [`Outbox::dead_letters`] until
//!   [`Outbox::redeliver`] makes it waiting again;
//! - gone, once [`Outbox::delivered`].
//!
//! Exclusivity comes from the lease: a held event is handed to nobody else
//! until its lease ends, so a consumer that dies mid-delivery has its
//! events handed to another once their leases end, and a live one is never
//! doubled as long as it finishes within its lease.
//!
//! Order: an event is not handed out while an earlier event of one of its
//! entries (recorded before it, for the same client) is undelivered and not
//! dead; it is put back to be looked at again after `recheck`. So the events
//! of one entry are delivered in the order they were recorded. When that
//! earlier event is delivered or dead-lettered, the events it held back are
//! due at once (not only after `recheck`): a quick series of changes to one
//! entry is sent as quickly as the receiver takes it.
//!
//! The contract every adapter must pass is `tests/store/events_contract.rs`.

use std::future::Future;
use std::time::Duration;

use super::store::StoreError;
use crate::domain::ClientId;
use crate::domain::events::{Event, EventId};

/// Unix time in milliseconds.
pub type UnixMillis = u64;

/// A request for events to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeRequest {
    /// Whose events (the clients with a webhook), each looked at in turn.
    pub clients: Vec<ClientId>,
    /// Who takes them: a name unique to the process (the Redis consumer).
    pub consumer: String,
    /// The time of the take.
    pub now_ms: UnixMillis,
    /// How long the taken events are held: nobody else is handed them
    /// before `now_ms + lease`.
    pub lease: Duration,
    /// How long an event held back by an earlier undelivered event of its
    /// entry waits before it is looked at again.
    pub recheck: Duration,
    /// The most events handed out, over all clients.
    pub max: usize,
}

/// An event handed to a consumer for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The event.
    pub event: Event,
    /// The number of this attempt, from 1: how many times the event has
    /// been handed out since it was recorded or redelivered (a lease that
    /// ended without a report counts).
    pub attempt: u32,
    /// What the adapter needs to find the event again (opaque to callers).
    pub handle: String,
}

/// A failed attempt of a held event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The client.
    pub client: ClientId,
    /// The lease's handle.
    pub handle: String,
    /// The lease's attempt: a report for another attempt than the event's
    /// current one (a holder whose lease ended and was handed on) is
    /// ignored.
    pub attempt: u32,
    /// Why it failed, for the dead-letter listing (never a secret: a status
    /// code or an I/O error's kind).
    pub error: String,
    /// The time of the report.
    pub now_ms: UnixMillis,
}

/// A dead-lettered event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event.
    pub event: Event,
    /// How many attempts were made.
    pub attempts: u32,
    /// When it was dead-lettered (unix milliseconds).
    pub dead_at: UnixMillis,
    /// The last attempt's error.
    pub error: String,
}

/// Where events wait for delivery. Implemented by every store adapter; safe
/// to share between tasks and, for Redis, between processes.
pub trait Outbox: Send + Sync + 'static {
    /// Hands out up to `req.max` events due now, leasing each to
    /// `req.consumer` until `now_ms + lease`: held or scheduled events whose
    /// `due` has passed (earliest first), then waiting events in the order
    /// they were recorded. Events held back by an earlier undelivered event
    /// of their entry are not handed out (see the module's "Order").
    ///
    /// # Errors
    /// [`StoreError`] on backend failure; nothing is handed out then.
    fn take(
        &self,
        req: &TakeRequest,
    ) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + Send;

    /// The event was delivered: it is gone. Also when its lease had ended.
    /// Returns true when events it held back are now due (take again).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn delivered(
        &self,
        client: &ClientId,
        handle: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The attempt failed: the event is scheduled for `retry_at`.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn retry(
        &self,
        failure: &Failure,
        retry_at: UnixMillis,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The attempt failed and the event is given up on: it is dead.
    /// Returns true when events it held back are now due (take again).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn dead_letter(
        &self,
        failure: &Failure,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The client's dead events, by id.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn dead_letters(
        &self,
        client: &ClientId,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;

    /// Makes the client's dead events of `ids` waiting again, as if just
    /// recorded (attempts start again from 1), and returns the ids that were
    /// dead; the others are ignored.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure; nothing changes then.
    fn redeliver(
        &self,
        client: &ClientId,
        ids: &[EventId],
    ) -> impl Future<Output = Result<Vec<EventId>, StoreError>> + Send;

    /// How many of the client's events are waiting, held or scheduled.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn pending(&self, client: &ClientId) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Tells the dispatcher that events were just recorded, so that it takes
/// them at once instead of at its next poll. Called by the change use
/// cases after an acknowledged write; never blocks.
pub trait EventNotifier: Send + Sync + 'static {
    /// Events may be waiting.
    fn recorded(&self);
}
