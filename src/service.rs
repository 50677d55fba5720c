//! The use cases: issue an index, change a status. They sit between the
//! checked request claims (from [`crate::auth`]) and the [`Store`] port, and
//! turn store outcomes into answers or [`ServiceError`]s. No HTTP in here.

use std::sync::Arc;

use crate::auth::{ChangeClaims, IssueClaims};
use crate::domain::{Bits, ChangeOp, ListRef, Status};
use crate::ports::{
    AllocateOutcome, AllocateRequest, SetStatusOutcome, StatusChange, Store, StoreError,
};

/// Why a use case did not succeed.
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
    /// No such list, or the index was never issued.
    #[error("no such entry")]
    EntryNotFound,
    /// The status rules forbid the change (INVALID is final).
    #[error("status {current} cannot change that way")]
    NotAllowed {
        /// The entry's current status.
        current: Status,
    },
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
}

/// The answer to `/issue`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issued {
    /// The allocated index.
    pub idx: u64,
    /// The URI of the list holding it.
    pub uri: String,
}

/// The answer to a status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// The operation.
    pub op: ChangeOp,
    /// False when the entry already had the status (a repeat).
    pub changed: bool,
    /// When the entry got the status (the original time for a repeat; `None`
    /// for an entry VALID since issuance).
    pub at: Option<u64>,
}

/// The use cases over one store.
#[derive(Debug)]
pub struct Service<S> {
    store: Arc<S>,
    base_url: String,
}

impl<S: Store> Service<S> {
    /// The use cases over `store`; list URIs start with `base_url`.
    pub fn new(store: Arc<S>, base_url: String) -> Self {
        Service { store, base_url }
    }

    /// The store the use cases run on.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Allocates one index for a checked `/issue` request, idempotently.
    ///
    /// # Errors
    /// [`ServiceError::Changed`], or a store failure.
    #[tracing::instrument(level = "debug", skip_all, fields(client = %claims.client()))]
    pub async fn issue(&self, claims: &IssueClaims, now: u64) -> Result<Issued, ServiceError> {
        let req = AllocateRequest {
            client: claims.client().clone(),
            format: claims.format(),
            jti: claims.jti().clone(),
            digest: claims.digest(),
            status_expiry: claims.status_expiry(),
            count: 1,
            now,
            keep_until: claims.keep_until(),
        };
        let outcome = self
            .store
            .allocate(&req)
            .await
            .map_err(|e| failed(e, ServiceError::IssueFailed))?;
        let allocation = match outcome {
            AllocateOutcome::Allocated(a) | AllocateOutcome::Replayed(a) => a,
            AllocateOutcome::Changed => return Err(ServiceError::Changed),
        };
        let idx = allocation.indexes.first().copied().ok_or_else(|| {
            ServiceError::IssueFailed(StoreError::Corrupt("empty allocation".into()))
        })?;
        let uri = ListRef {
            format: allocation.format,
            id: allocation.list,
        }
        .uri(&self.base_url);
        Ok(Issued { idx, uri })
    }

    /// Applies a checked status change (`/revoke`, `/suspend`, `/unsuspend`),
    /// once per (client, jti): the same request again gets the same answer.
    ///
    /// # Errors
    /// [`ServiceError::Changed`], [`ServiceError::NotYourList`],
    /// [`ServiceError::EntryNotFound`], [`ServiceError::NotAllowed`],
    /// [`ServiceError::StatusNotSupported`], or a store failure.
    #[tracing::instrument(level = "debug", skip_all, fields(client = %claims.client(), list = %claims.list().id, idx = claims.idx()))]
    pub async fn change(&self, claims: &ChangeClaims, now: u64) -> Result<Changed, ServiceError> {
        let target = match claims.op() {
            ChangeOp::Revoke => Status::Invalid,
            ChangeOp::Suspend => Status::Suspended,
            ChangeOp::Unsuspend => Status::Valid,
        };
        if claims.list().format != claims.format() {
            // The uri names the list under the other format's path (`/b/` for
            // a `/t/` list or the reverse), a uri that does not exist. Only a
            // client whose format changed since the list was opened names its
            // lists that way legitimately, so check the list's own format on
            // this rare path instead of trusting either.
            let snapshot = self
                .store
                .read_list(&claims.list().id)
                .await
                .map_err(|e| failed(e, ServiceError::ChangeFailed))?;
            if snapshot.is_none_or(|s| s.meta.format != claims.list().format) {
                return Err(ServiceError::EntryNotFound);
            }
        }
        let change = StatusChange {
            client: claims.client().clone(),
            list: claims.list().id,
            idx: claims.idx(),
            status: target,
            jti: claims.jti().clone(),
            digest: claims.digest(),
            now,
            keep_until: claims.keep_until(),
        };
        let outcome = self
            .store
            .set_status(&change)
            .await
            .map_err(|e| failed(e, ServiceError::ChangeFailed))?;
        let op = claims.op();
        match outcome {
            SetStatusOutcome::Done { at } => Ok(Changed {
                op,
                changed: true,
                at: Some(at),
            }),
            SetStatusOutcome::Already { at } => Ok(Changed {
                op,
                changed: false,
                at,
            }),
            SetStatusOutcome::NotYourList => Err(ServiceError::NotYourList),
            SetStatusOutcome::ListNotFound | SetStatusOutcome::NeverIssued => {
                Err(ServiceError::EntryNotFound)
            }
            SetStatusOutcome::NotAllowed { current } => Err(ServiceError::NotAllowed { current }),
            SetStatusOutcome::Changed => Err(ServiceError::Changed),
            SetStatusOutcome::Unsupported { bits } => Err(ServiceError::StatusNotSupported {
                status: target,
                bits,
            }),
        }
    }
}

/// The one mapping of store failures: the retryable ones (unreachable, and
/// damaged lists, which fail closed until restored) are `Unavailable`, the
/// rest is the use case's own failure.
fn failed(e: StoreError, other: fn(StoreError) -> ServiceError) -> ServiceError {
    match e {
        StoreError::Unavailable(_) | StoreError::Damaged { .. } => ServiceError::Unavailable(e),
        e => other(e),
    }
}
