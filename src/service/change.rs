//! The status-change use case (`/revoke`, `/suspend`, `/unsuspend`) and what
//! follows an acknowledged change.

use super::{Service, ServiceError};
use crate::auth::ChangeClaims;
use crate::domain::{ChangeOp, Status};
use crate::ports::{SetStatusOutcome, StatusChange, Store};

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

impl<S: Store> Service<S> {
    /// Applies a checked status change, once per (client, jti): the same
    /// request again gets the same answer. Every acknowledged answer (also
    /// "already had that status", and a replay) then goes through
    /// `Service::after_change`.
    ///
    /// # Errors
    /// [`ServiceError::Changed`], [`ServiceError::NotYourList`],
    /// [`ServiceError::EntryNotFound`], [`ServiceError::NotAllowed`],
    /// [`ServiceError::StatusNotSupported`], or a store failure.
    #[tracing::instrument(level = "debug", skip_all, fields(client = %claims.client(), list = %claims.list().id, idx = claims.idx()))]
    pub async fn change(&self, claims: &ChangeClaims, now: u64) -> Result<Changed, ServiceError> {
        let changed = self.set_status(claims, now).await?;
        self.after_change(claims, &changed);
        Ok(changed)
    }

    /// The side effects of an acknowledged change, in one place (the home
    /// of a change notifier).
    ///
    /// The next GET of the list in this process must show the change: also
    /// after "already" (another replica may have just made it) and a replay,
    /// so the cached token is invalidated for every acknowledged answer.
    fn after_change(&self, claims: &ChangeClaims, _changed: &Changed) {
        self.cache.invalidate(&claims.list().id);
    }

    /// The change itself, in the store.
    async fn set_status(&self, claims: &ChangeClaims, now: u64) -> Result<Changed, ServiceError> {
        let target = match claims.op() {
            ChangeOp::Revoke => Status::Invalid,
            ChangeOp::Suspend => Status::Suspended,
            ChangeOp::Unsuspend => Status::Valid,
        };
        let failed = |e| ServiceError::from_store(e, ServiceError::ChangeFailed);
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
                .map_err(failed)?;
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
        let outcome = self.store.set_status(&change).await.map_err(failed)?;
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
