//! The status-change use cases (`/revoke`, `/suspend`, `/unsuspend`, of one
//! entry or of every entry bound to a ref) and what follows an acknowledged
//! change.

use super::{Service, ServiceError};
use crate::auth::{ChangeClaims, RefChangeClaims};
use crate::domain::{ChangeOp, ListId, Status};
use crate::ports::{RefChange, RefChangeOutcome, SetStatusOutcome, StatusChange, Store};

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

/// The answer to a status change by ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefChanged {
    /// The operation.
    pub op: ChangeOp,
    /// When the change was applied (the first request's time for a replay).
    pub at: u64,
    /// Entries this request changed.
    pub changed: u64,
    /// Entries the rules did not let change (left as they were).
    pub skipped: u64,
    /// Entries that already had the status.
    pub already: u64,
}

/// The status an operation sets.
fn target(op: ChangeOp) -> Status {
    match op {
        ChangeOp::Revoke => Status::Invalid,
        ChangeOp::Suspend => Status::Suspended,
        ChangeOp::Unsuspend => Status::Valid,
    }
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
        // A change made by this request recorded its event when the client
        // has a webhook (a replay of it recorded nothing: one needless nudge).
        let recorded = changed.changed && self.has_webhook(claims.client());
        self.after_change(&[claims.list().id], recorded);
        Ok(changed)
    }

    /// Applies a checked status change to every entry of the client bound
    /// to the request's ref, atomically, once per (client, jti): the same
    /// request again gets the same answer. Entries the rules do not let
    /// change are skipped and counted. Every acknowledged answer then goes
    /// through `Service::after_change` with every list of the ref.
    ///
    /// # Errors
    /// [`ServiceError::Changed`], [`ServiceError::EntryNotFound`] (no entry
    /// of this client bound to the ref), or a store failure.
    #[tracing::instrument(level = "debug", skip_all, fields(client = %claims.client(), op = ?claims.op()))]
    pub async fn change_by_ref(
        &self,
        claims: &RefChangeClaims,
        now: u64,
    ) -> Result<RefChanged, ServiceError> {
        let events = self.event_seed(claims.client());
        let change = RefChange {
            client: claims.client().clone(),
            format: claims.format(),
            issuance_ref: claims.issuance_ref().clone(),
            status: target(claims.op()),
            jti: claims.jti().clone(),
            digest: claims.digest(),
            now,
            keep_until: claims.keep_until(),
            events,
        };
        let outcome = self
            .store
            .set_status_by_ref(&change)
            .await
            .map_err(|e| ServiceError::from_store(e, ServiceError::ChangeFailed))?;
        match outcome {
            RefChangeOutcome::Done(report) => {
                // A replay reports the first request's counts: a needless
                // nudge then, which costs the dispatcher one empty take.
                let recorded = events.is_some() && report.changed > 0;
                self.after_change(&report.lists, recorded);
                Ok(RefChanged {
                    op: claims.op(),
                    at: report.at,
                    changed: report.changed,
                    skipped: report.skipped,
                    already: report.already,
                })
            }
            RefChangeOutcome::Changed => Err(ServiceError::Changed),
            RefChangeOutcome::NotFound => Err(ServiceError::EntryNotFound),
        }
    }

    /// The side effects of an acknowledged change of entries of `lists`, in
    /// one place; `recorded`: the write recorded events.
    ///
    /// The next GET of each list in this process must show the change: also
    /// after "already" (another replica may have just made it) and a replay,
    /// so the cached tokens are invalidated for every acknowledged answer.
    /// Recorded events are announced to the dispatcher, which then takes
    /// them at once.
    fn after_change(&self, lists: &[ListId], recorded: bool) {
        for list in lists {
            self.cache.invalidate(list);
        }
        if recorded {
            self.events_recorded();
        }
    }

    /// The change itself, in the store.
    async fn set_status(&self, claims: &ChangeClaims, now: u64) -> Result<Changed, ServiceError> {
        let target = target(claims.op());
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
            events: self.event_seed(claims.client()),
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
