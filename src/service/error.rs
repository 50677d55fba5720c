//! [`ServiceError`]: why a use case did not succeed, and the one mapping of
//! store failures onto it.

use super::cache::CacheError;
use super::webhooks::RedeliveryError;
use crate::domain::{Bits, QueryError, Status};
use crate::ports::StoreError;

/// Why a use case did not succeed. The HTTP layer maps every variant to a
/// status, a CRS code and a text in its one table (`crate::http::error`).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The same jti came with different claims, another operation or
    /// target, or was first used for another kind of request.
    #[error("the request changed since its first use of this jti")]
    Changed,
    /// The list's entries cannot hold the status (SUSPENDED in a 1-bit
    /// list).
    #[error("status {status} does not fit a list of {bits}-bit entries")]
    StatusNotSupported {
        /// The status asked for.
        status: Status,
        /// The list's width.
        bits: Bits,
    },
    /// The list belongs to another client.
    #[error("the list belongs to another client")]
    NotYourList,
    /// No such list, or the index was never issued; or no entry of the
    /// client bound to the ref.
    #[error("no such entry")]
    EntryNotFound,
    /// The status rules forbid the change (INVALID is final).
    #[error("status {current} cannot change that way")]
    NotAllowed {
        /// The entry's current status.
        current: Status,
    },
    /// A published list was asked for that does not exist (in that format).
    #[error("status list not found")]
    ListNotFound,
    /// The store could not be reached, or the list's data is damaged and
    /// fails closed: retryable (an operator may restore it).
    #[error("store unavailable")]
    Unavailable(#[source] StoreError),
    /// `/issue` failed in the store for another reason.
    #[error("issue failed")]
    IssueFailed(#[source] StoreError),
    /// A status change failed in the store for another reason.
    #[error("status change failed")]
    ChangeFailed(#[source] StoreError),
    /// The query of `GET /entries` is malformed (the text names the
    /// parameter).
    #[error(transparent)]
    BadQuery(QueryError),
    /// A single-use JWT (a listing's) whose (client, jti) was used before.
    #[error("the jti was used before")]
    JtiUsed,
    /// `GET /entries` failed in the store for another reason.
    #[error("listing failed")]
    ListingFailed(#[source] StoreError),
    /// The client has no webhook configured: it has no events to list or
    /// redeliver.
    #[error("no webhook is configured for this client")]
    NoWebhook,
    /// The body of a redelivery is malformed (the text names the member).
    #[error(transparent)]
    BadRedelivery(RedeliveryError),
    /// `GET /webhooks/failed` failed in the store for another reason.
    #[error("listing dead webhook events failed")]
    DeadLettersFailed(#[source] StoreError),
    /// `POST /webhooks/redeliver` failed in the store for another reason.
    #[error("redelivery failed")]
    RedeliveryFailed(#[source] StoreError),
    /// A list exists but no token of it could be served: its stored data
    /// cannot be published, signing failed, or the store failed for a reason
    /// other than reachability.
    #[error("could not publish the list")]
    PublishFailed(#[source] CacheError),
}

impl ServiceError {
    /// The one mapping of store failures: the retryable ones (unreachable,
    /// and damaged lists, which fail closed until restored) are
    /// [`ServiceError::Unavailable`], the rest is the use case's own failure
    /// (`other`).
    pub(super) fn from_store(e: StoreError, other: impl FnOnce(StoreError) -> Self) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Damaged { .. } => ServiceError::Unavailable(e),
            e => other(e),
        }
    }
}
