//! Ports: the traits the use cases (`crate::service`) need from the world
//! outside the pure core, and the values that cross them. Adapters implement
//! them and only `crate::startup` wires an adapter to a port, so the
//! dependencies point one way: `domain` ← `ports` ← `service` ← `http`.
//!
//! - [`store`]: where lists, allocations and idempotency records live.
//! - [`signer`]: turns a list into the signed document verifiers fetch,
//!   and publishes the keys that verify it.
//! - [`changes`]: tells a replica at once that a list changed elsewhere.
//! - [`outbox`]: the events recorded with the changes, handed out for
//!   webhook delivery.
//! - [`webhook`]: sends one signed event to a client's receiver, and counts
//!   how deliveries went.

pub mod changes;
pub mod outbox;
pub mod signer;
pub mod store;
pub mod webhook;

pub use changes::{ChangeFeed, ChangeNotice};
pub use outbox::{DeadLetter, EventNotifier, Failure, Lease, Outbox, TakeRequest, UnixMillis};
pub use signer::{ListSigner, ListToSign, PublishedKeys, SignError};
pub use store::{
    AllocateOutcome, AllocateRequest, Allocation, EntryItem, EntryPage, EntryQuery, JtiClaim,
    JtiClaimOutcome, ListMeta, ListRun, ListSnapshot, RefChange, RefChangeOutcome, RefChangeReport,
    SetStatusOutcome, StatusChange, Store, StoreError, StoreHealth, StoreSettings, UnixSeconds,
};
pub use webhook::{DeliveryObserver, DeliveryOutcome, NoObserver, SendError, WebhookSender};
