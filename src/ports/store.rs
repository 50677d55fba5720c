//! The storage port: the [`Store`] trait the use cases call, and the values
//! that cross it. Adapters (`crate::store`) implement it; nothing here knows
//! which backend runs, nor anything of HTTP.
//!
//! The store is the only truth: a write is acknowledged only once the adapter
//! has applied it. Its outcomes are the facts the use cases need ("already
//! revoked at T", "not your list", "never issued"), as plain enums; failures
//! of the backend itself are [`StoreError`].
//!
//! Time is passed in (`now`, unix seconds, and the end of an idempotency
//! record's life) rather than read inside the adapters, so that idempotency
//! windows are testable without sleeping and every replica agrees on the
//! clock of the request it serves.
//!
//! Every request that writes (`/issue` and the status changes) carries its
//! (client, jti) and a digest of what it asks for. The adapter keeps one
//! idempotency record per (client, jti), written in the same atomic step as
//! the allocation or the change it answers, so that a request is used once,
//! for one thing: the same request again gets the recorded answer and applies
//! nothing, the same jti with another digest is refused. Issue and change
//! records share one key space, so a jti used for one can never be reused for
//! the other.
//!
//! The contract every adapter must pass is `tests/store/contract.rs`.
use std::future::Future;
use std::time::Duration;

use crate::domain::events::EventSeed;
use crate::domain::{
    Bits, ClientId, IssuanceRef, Jti, ListFormat, ListId, SortOrder, Status, StatusSet,
};

/// Unix time in seconds.
pub type UnixSeconds = u64;

/// Limits and sizes every adapter applies; built once from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Entries per new list (131,072 by default; need not be a power of two).
    pub capacity: u64,
    /// Bits per entry of new lists (2 by default).
    pub bits: Bits,
    /// How long a (client, jti) idempotency record is kept at most (3,600 s
    /// by default, plus the allowed clock skew); each request says exactly
    /// until when its record counts (`keep_until`), this bounds it.
    pub idempotency_window: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            capacity: 131_072,
            bits: Bits::Two,
            idempotency_window: Duration::from_secs(3600),
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
    pub jti: Jti,
    /// A digest of the request claims that matter (SHA-256): the same jti
    /// with another digest is a changed request.
    pub digest: [u8; 32],
    /// The credential's `statusExpiry`; the list may retire after the
    /// latest one.
    pub status_expiry: UnixSeconds,
    /// How many indexes to allocate (≥ 1, at most a list's capacity). They
    /// come from the current list while it has room, and from a new list
    /// for the rest (a request spans at most two lists).
    pub count: u32,
    /// The issuer's reference for this issuance (`ref`): the entries are
    /// bound to it, in addition to what earlier requests of the same client
    /// and format bound to it.
    pub issuance_ref: Option<IssuanceRef>,
    /// The request's time.
    pub now: UnixSeconds,
    /// Until when (exclusive, unix seconds) the idempotency record counts:
    /// `iat + window + allowed clock skew`, so that no request that still
    /// passes the `iat` check can outlive its record and allocate twice.
    pub keep_until: UnixSeconds,
    /// Record the events this write causes (see [`crate::domain::events`])
    /// in the same atomic step, with ids from this seed; `None` records
    /// none (the client has no webhook). Replays and refusals record none.
    pub events: Option<EventSeed>,
}

/// One status change (`/revoke`, `/suspend`, `/unsuspend`) as the store sees
/// it: the entry, the status wanted, and the request's idempotency facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The client asking; it must own the list.
    pub client: ClientId,
    /// The list holding the entry.
    pub list: ListId,
    /// The entry's index.
    pub idx: u64,
    /// The status wanted.
    pub status: Status,
    /// The request's `jti` (a lowercase UUID, checked by `auth`).
    pub jti: Jti,
    /// A digest of the operation and its target: the same jti with another
    /// digest is a changed request.
    pub digest: [u8; 32],
    /// The request's time; recorded as the change's time.
    pub now: UnixSeconds,
    /// Until when the idempotency record counts (see
    /// [`AllocateRequest::keep_until`]).
    pub keep_until: UnixSeconds,
    /// Record the events this write causes (see [`crate::domain::events`])
    /// in the same atomic step, with ids from this seed; `None` records
    /// none (the client has no webhook). Replays and refusals record none.
    pub events: Option<EventSeed>,
}

/// Where an allocation landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The list holding the (first) indexes.
    pub list: ListId,
    /// The list's format (decides `/t/` or `/b/` in the URI).
    pub format: ListFormat,
    /// The allocated indexes in `list`, in allocation order.
    pub indexes: Vec<u64>,
    /// When the request filled `list`: the rest of its indexes, in the new
    /// list that was opened for them (at most one: a request is at most one
    /// list's capacity).
    pub next: Option<ListRun>,
}

/// Indexes allocated in one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRun {
    /// The list.
    pub list: ListId,
    /// The indexes, in allocation order.
    pub indexes: Vec<u64>,
}

impl Allocation {
    /// Every (list, index) of the allocation, in allocation order.
    pub fn entries(&self) -> impl Iterator<Item = (ListId, u64)> + '_ {
        let first = self.indexes.iter().map(|i| (self.list, *i));
        let rest = self
            .next
            .iter()
            .flat_map(|run| run.indexes.iter().map(|i| (run.list, *i)));
        first.chain(rest)
    }

    /// How many indexes were allocated.
    pub fn len(&self) -> usize {
        self.indexes.len() + self.next.as_ref().map_or(0, |r| r.indexes.len())
    }

    /// True when nothing was allocated (never for a stored allocation).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The answer to [`Store::allocate`].
///
/// There is no "in flight" answer: the allocation and its idempotency record
/// are one atomic step, so a concurrent duplicate, or a retry after the first
/// request's process died, finds the record and gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocateOutcome {
    /// New indexes, recorded under the request's (client, jti).
    Allocated(Allocation),
    /// The same jti with the same digest was seen before: the same answer.
    Replayed(Allocation),
    /// The same jti with a different digest, or a jti first used for a
    /// status change (CRS: "Detected invalid changes").
    Changed,
}

/// The answer to [`Store::set_status`].
///
/// `Done` and `Already` are recorded under the request's (client, jti): the
/// same request again gets the recorded outcome back (same time) and applies
/// nothing. The refusals are not recorded and change nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetStatusOutcome {
    /// The entry changed; the list's version was bumped once.
    Done {
        /// When the change was applied (the first request's `now`).
        at: UnixSeconds,
    },
    /// The entry already had that status; nothing changed.
    Already {
        /// When the entry reached it, where recorded (`None` for an entry that
        /// has been VALID since it was issued).
        at: Option<UnixSeconds>,
    },
    /// The same jti was used before with another digest (another operation
    /// or target, or an `/issue`): nothing is applied.
    Changed,
    /// The list's entries are too narrow for the status (SUSPENDED in a
    /// 1-bit list).
    Unsupported {
        /// The list's width.
        bits: Bits,
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

/// A status change of every entry a client bound to one ref
/// (`/revoke`, `/suspend`, `/unsuspend` with `ref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefChange {
    /// The client asking: only its own entries are bound to its refs.
    pub client: ClientId,
    /// The client's list format: refs are kept per client and format.
    pub format: ListFormat,
    /// The ref.
    pub issuance_ref: IssuanceRef,
    /// The status wanted.
    pub status: Status,
    /// The request's `jti`.
    pub jti: Jti,
    /// A digest of the operation and the ref: the same jti with another
    /// digest is a changed request.
    pub digest: [u8; 32],
    /// The request's time; recorded as the time of every change it makes.
    pub now: UnixSeconds,
    /// Until when the idempotency record counts (see
    /// [`AllocateRequest::keep_until`]).
    pub keep_until: UnixSeconds,
    /// Record the events this write causes (see [`crate::domain::events`])
    /// in the same atomic step, with ids from this seed; `None` records
    /// none (the client has no webhook). Replays and refusals record none.
    pub events: Option<EventSeed>,
}

/// What a change by ref did. Recorded under the request's (client, jti):
/// a replay gets the same report back and applies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefChangeReport {
    /// When the change was applied (the first request's `now`).
    pub at: UnixSeconds,
    /// Entries changed by this request.
    pub changed: u64,
    /// Entries the rules did not let change (revoked ones on a suspension,
    /// SUSPENDED in a 1-bit list): left as they were.
    pub skipped: u64,
    /// Entries that already had the status.
    pub already: u64,
    /// Every list holding an entry bound to the ref, in allocation order
    /// (changed or not), so the caller can drop what it caches of them.
    pub lists: Vec<ListId>,
}

/// The answer to [`Store::set_status_by_ref`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefChangeOutcome {
    /// Applied (or replayed): what it did. All of it in one atomic step.
    Done(RefChangeReport),
    /// The same jti was used before with another digest: nothing applied.
    Changed,
    /// No entry of this client and format is bound to the ref.
    NotFound,
}

/// A single-use request (a `GET /entries` JWT): its (client, jti) is
/// recorded in the same key space as the idempotency records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JtiClaim {
    /// The client.
    pub client: ClientId,
    /// The request's `jti`.
    pub jti: Jti,
    /// A digest of the request (kept like a record's).
    pub digest: [u8; 32],
    /// The request's time.
    pub now: UnixSeconds,
    /// Until when the record counts.
    pub keep_until: UnixSeconds,
}

/// The answer to [`Store::claim_jti`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JtiClaimOutcome {
    /// The jti was unused: it is recorded now.
    Fresh,
    /// A live record of this (client, jti) exists, whatever request made
    /// it: a replay.
    Used,
}

/// One page of a client's entries (`GET /entries`), in the order of
/// [`crate::domain::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryQuery {
    /// Whose entries.
    pub client: ClientId,
    /// Of which format (the client's): entries are kept per client and
    /// format.
    pub format: ListFormat,
    /// Only entries with these statuses.
    pub statuses: StatusSet,
    /// Only entries bound to this ref.
    pub issuance_ref: Option<IssuanceRef>,
    /// Only entries of this list (none at all when it is not the client's
    /// or not of `format`).
    pub list: Option<ListId>,
    /// Only entries updated at or after this (unix seconds).
    pub updated_since: Option<UnixSeconds>,
    /// Only entries updated at or before this (unix seconds).
    pub updated_until: Option<UnixSeconds>,
    /// The direction, by (`updated_at`, allocation order).
    pub order: SortOrder,
    /// Matching entries before the page.
    pub offset: u64,
    /// The most entries on the page (≥ 1).
    pub limit: u32,
}

impl EntryQuery {
    /// The first page of `limit` entries of `client`'s `format`, unfiltered
    /// (every status, no ref, list or time window), newest change first.
    pub fn first_page(client: ClientId, format: ListFormat, limit: u32) -> Self {
        EntryQuery {
            client,
            format,
            statuses: StatusSet::ALL,
            issuance_ref: None,
            list: None,
            updated_since: None,
            updated_until: None,
            order: SortOrder::Desc,
            offset: 0,
            limit,
        }
    }
}

/// A listed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryItem {
    /// Its list (of the query's format).
    pub list: ListId,
    /// Its index.
    pub idx: u64,
    /// The ref it is bound to, if any.
    pub issuance_ref: Option<IssuanceRef>,
    /// Its status now (VALID, INVALID or SUSPENDED).
    pub status: Status,
    /// When it was allocated (never earlier than an entry allocated before
    /// it for the same client and format).
    pub created_at: UnixSeconds,
    /// When its status last changed; `created_at` when it never did.
    pub updated_at: UnixSeconds,
    /// The `statusExpiry` it was issued with.
    pub status_expiry: UnixSeconds,
}

/// The answer to [`Store::list_entries`]; the default is the empty page
/// of a query nothing matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryPage {
    /// How many entries match the query, on all pages.
    pub total: u64,
    /// The page, in order.
    pub items: Vec<EntryItem>,
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

/// What readiness reports about a store that answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Lists found damaged (metadata without the right bytes) since this
    /// process started and not found whole again since: never published,
    /// never changed, until an operator restores them.
    pub damaged: Vec<ListId>,
    /// Configuration of the backend that puts data at risk (e.g. a Redis
    /// `maxmemory-policy` that evicts keys).
    pub warnings: Vec<String>,
}

impl StoreHealth {
    /// True when nothing is damaged and nothing is at risk.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.warnings.is_empty()
    }
}

/// Failures of the backend (not of the request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time. Retryable.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The list's metadata exists but its bytes are missing or of the wrong
    /// length (evicted, deleted, a partial restore). The list fails closed:
    /// it is neither published nor changed, since any answer built from it
    /// could show a revoked entry as valid.
    #[error("list {list} is damaged: {reason}")]
    Damaged {
        /// The list.
        list: ListId,
        /// What is wrong with it.
        reason: String,
    },
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
    /// (client, jti): what the current list of the client and format has
    /// room for, and the rest from a new list opened in the same atomic
    /// step. Writes the issuance record (and the `ref` binding) the entry
    /// listing reads in that same step.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure; nothing is allocated then.
    fn allocate(
        &self,
        req: &AllocateRequest,
    ) -> impl Future<Output = Result<AllocateOutcome, StoreError>> + Send;

    /// Applies a status change, idempotently per (client, jti).
    ///
    /// # Errors
    /// [`StoreError`] on backend failure ([`StoreError::Damaged`] for a list
    /// whose bytes are lost); nothing changes then.
    fn set_status(
        &self,
        change: &StatusChange,
    ) -> impl Future<Output = Result<SetStatusOutcome, StoreError>> + Send;

    /// Applies a status change to every entry bound to (client, format,
    /// ref), atomically, idempotently per (client, jti). Entries the rules
    /// forbid to change are skipped and counted, not refused.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure ([`StoreError::Damaged`] when a
    /// list of the ref is damaged); nothing changes then.
    fn set_status_by_ref(
        &self,
        change: &RefChange,
    ) -> impl Future<Output = Result<RefChangeOutcome, StoreError>> + Send;

    /// Records a single-use (client, jti), unless a live record of it
    /// exists.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure; nothing is recorded then.
    fn claim_jti(
        &self,
        claim: &JtiClaim,
    ) -> impl Future<Output = Result<JtiClaimOutcome, StoreError>> + Send;

    /// One page of a client's entries.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn list_entries(
        &self,
        query: &EntryQuery,
    ) -> impl Future<Output = Result<EntryPage, StoreError>> + Send;

    /// Reads a list; `None` if there is no such list.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure; [`StoreError::Damaged`] when the
    /// list's bytes are missing or of the wrong length.
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

    /// The ids of every list of `format` the store holds (every one that
    /// `GET /t/{id}` or `/b/{id}` serves), in no particular order: what the
    /// Status List Aggregation publishes. Meant to be called now and then
    /// and cached by the caller: it may walk the whole store.
    ///
    /// # Errors
    /// [`StoreError`] on backend failure.
    fn list_ids(
        &self,
        format: ListFormat,
    ) -> impl Future<Output = Result<Vec<ListId>, StoreError>> + Send;

    /// Checks that the backend answers (and, for the embedded store, can
    /// write), and reports damaged lists and risky backend settings.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not answer.
    fn health(&self) -> impl Future<Output = Result<StoreHealth, StoreError>> + Send;
}
