//! The storage port: one [`Store`] trait that the service layer uses, and the
//! adapters that implement it (Redis for production, redb embedded for a
//! single process). The store is the only truth: a write is acknowledged only
//! once the adapter has applied it.
//!
//! The trait knows nothing of HTTP. Its outcomes are the facts the endpoints
//! need ("already revoked at T", "not your list", "never issued"), as plain
//! enums; failures of the backend itself are [`StoreError`].
//!
//! Time is passed in (`now`, unix seconds) rather than read inside the
//! adapters, so that lease expiry and idempotency windows are testable without
//! sleeping and every replica agrees on the clock of the request it serves.
//!
//! - [`common`]: the rules both adapters apply (request checks, the
//!   idempotency and status-change decisions, the allocator cache);
//! - [`embedded`]: the redb adapter.
//!
//! The contract every adapter must pass is `tests/store/contract.rs`.

pub mod redis;

use std::future::Future;
use std::time::Duration;

use crate::domain::{Bits, ClientId, ListFormat, ListId, Status};

pub mod any;
pub mod common;
pub mod embedded;
pub mod metered;

pub use embedded::{EmbeddedDurability, EmbeddedStore};

/// Unix time in seconds.
pub type UnixSeconds = u64;

/// Limits and sizes every adapter applies; built once from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Entries per new list (131,072 by default; need not be a power of two).
    pub capacity: u64,
    /// Bits per entry of new lists (2 by default).
    pub bits: Bits,
    /// How long a (client, jti) idempotency record is kept (3,600 s default).
    pub idempotency_window: Duration,
    /// How long a first request holds its jti "in flight" before a retry may
    /// take over its allocation (30 s default).
    pub lease: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            capacity: 131_072,
            bits: Bits::Two,
            idempotency_window: Duration::from_secs(3600),
            lease: Duration::from_secs(30),
        }
    }
}

/// One `/issue` request as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocateRequest {
    /// The issuing client; lists are per client and per format.
    pub client: ClientId,
    /// The client's list format.
    pub format: ListFormat,
    /// The request's `jti` (a lowercase UUID, checked by `auth`).
    pub jti: String,
    /// A digest of the request claims that matter (SHA-256): the same jti
    /// with another digest is a changed request.
    pub digest: [u8; 32],
    /// The credential's `statusExpiry`; the list may retire after the
    /// latest one.
    pub status_expiry: UnixSeconds,
    /// How many indexes to allocate (≥ 1); all come from one list.
    pub count: u32,
    /// The request's time.
    pub now: UnixSeconds,
}

/// Where an allocation landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The list holding the indexes.
    pub list: ListId,
    /// The list's format (decides `/t/` or `/b/` in the URI).
    pub format: ListFormat,
    /// The allocated indexes, in allocation order.
    pub indexes: Vec<u64>,
}

/// The answer to [`Store::allocate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocateOutcome {
    /// New indexes; the jti is now in flight until [`Store::complete`] or the
    /// lease ends.
    Allocated(Allocation),
    /// The same jti with the same digest was seen before: the same answer.
    Replayed(Allocation),
    /// The same jti with a different digest (CRS: "Detected invalid changes").
    Changed,
    /// The same jti is still in flight under an unexpired lease (CRS 409).
    InFlight,
}

/// The answer to [`Store::set_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetStatusOutcome {
    /// The entry changed; the list's version was bumped once.
    Done {
        /// When the change was applied (the request's `now`).
        at: UnixSeconds,
    },
    /// The entry already had that status; nothing changed.
    Already {
        /// When the entry reached it, where recorded (`None` for an entry that
        /// has been VALID since it was issued).
        at: Option<UnixSeconds>,
    },
    /// The list belongs to another client.
    NotYourList,
    /// No list has that id.
    ListNotFound,
    /// The index is inside the list but was never handed out, or is outside
    /// the list's capacity.
    NeverIssued,
    /// The rules forbid the transition (INVALID is final).
    NotAllowed {
        /// The entry's current status.
        current: Status,
    },
}

/// What a list is, apart from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMeta {
    /// The list's id.
    pub id: ListId,
    /// The client that owns it.
    pub client: ClientId,
    /// Its format.
    pub format: ListFormat,
    /// Bits per entry.
    pub bits: Bits,
    /// Number of entries.
    pub capacity: u64,
    /// How many indexes have been handed out (the allocation counter).
    pub allocated: u64,
    /// When the list was opened.
    pub created_at: UnixSeconds,
    /// The latest `statusExpiry` allocated in it.
    pub retire_after: UnixSeconds,
}

/// A consistent read of one list: metadata, version and bytes from one
/// moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSnapshot {
    /// The list's metadata.
    pub meta: ListMeta,
    /// Bumped exactly once by every status change.
    pub version: u64,
    /// The raw packed bytes in the list's own bit order.
    pub bytes: Vec<u8>,
}

/// Failures of the backend (not of the request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time. Retryable.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Stored data that does not parse (a bug or tampering, never input).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The backend refused the operation for a reason of its own.
    #[error("store error: {0}")]
    Backend(String),
    /// A request the store cannot serve (e.g. count 0 or above capacity).
    #[error("invalid store request: {0}")]
    Invalid(String),
}

/// The storage port. Implementations must be safe to share between tasks and,
/// for Redis, between processes: every operation is atomic on its own.
pub trait Store: Send + Sync + 'static {
    /// Allocates `count` indexes for the request, idempotently per
    /// (client, jti). Opens a new list for the client and format when the
    /// current one cannot hold `count` more.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure; nothing is allocated then.
    fn allocate(
        &self,
        req: &AllocateRequest,
    ) -> impl Future<Output = Result<AllocateOutcome, StoreError>> + Send;

    /// Marks the (client, jti) request finished, so that a repeat is answered
    /// at once with [`AllocateOutcome::Replayed`] instead of
    /// [`AllocateOutcome::InFlight`].
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn complete(
        &self,
        client: &ClientId,
        jti: &str,
        now: UnixSeconds,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets entry `idx` of `list` to `status` on behalf of `client`.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure; nothing changes then.
    fn set_status(
        &self,
        client: &ClientId,
        list: &ListId,
        idx: u64,
        status: Status,
        now: UnixSeconds,
    ) -> impl Future<Output = Result<SetStatusOutcome, StoreError>> + Send;

    /// Reads a list; `None` if there is no such list.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn read_list(
        &self,
        list: &ListId,
    ) -> impl Future<Output = Result<Option<ListSnapshot>, StoreError>> + Send;

    /// The list's version alone (cheap, for cache checks); `None` if there is
    /// no such list.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn list_version(
        &self,
        list: &ListId,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Checks that the backend answers.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
