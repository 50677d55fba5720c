//! A [`Store`] decorator that times every call and counts failures, so that
//! store latency and errors show on `/metrics` whichever adapter runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::domain::events::EventId;
use crate::domain::{ClientId, ListFormat, ListId};
use crate::metrics::Metrics;
use crate::ports::{
    AllocateOutcome, AllocateRequest, EntryPage, EntryQuery, JtiClaim, JtiClaimOutcome,
    ListSnapshot, RefChange, RefChangeOutcome, SetStatusOutcome, StatusChange, Store, StoreError,
    StoreHealth,
};
use crate::ports::{DeadLetter, Failure, Lease, Outbox, TakeRequest, UnixMillis};

/// `inner` with every call recorded in `metrics`.
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S: Store> Metered<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Metered { inner, metrics }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let result = call.await;
        let kind = result.as_ref().err().map(|e| match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Damaged { .. } => "damaged",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Backend(_) => "backend",
            StoreError::Invalid(_) => "invalid",
        });
        self.metrics.store_call(op, start.elapsed(), kind);
        result
    }
}

impl<S: Store> Store for Metered<S> {
    async fn allocate(&self, req: &AllocateRequest) -> Result<AllocateOutcome, StoreError> {
        self.timed("allocate", self.inner.allocate(req)).await
    }

    async fn set_status(&self, change: &StatusChange) -> Result<SetStatusOutcome, StoreError> {
        self.timed("set_status", self.inner.set_status(change))
            .await
    }

    async fn set_status_by_ref(&self, change: &RefChange) -> Result<RefChangeOutcome, StoreError> {
        self.timed("set_status_by_ref", self.inner.set_status_by_ref(change))
            .await
    }

    async fn claim_jti(&self, claim: &JtiClaim) -> Result<JtiClaimOutcome, StoreError> {
        self.timed("claim_jti", self.inner.claim_jti(claim)).await
    }

    async fn list_entries(&self, query: &EntryQuery) -> Result<EntryPage, StoreError> {
        self.timed("list_entries", self.inner.list_entries(query))
            .await
    }

    async fn read_list(&self, list: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
        self.timed("read_list", self.inner.read_list(list)).await
    }

    async fn list_version(&self, list: &ListId) -> Result<Option<u64>, StoreError> {
        self.timed("list_version", self.inner.list_version(list))
            .await
    }

    async fn list_ids(&self, format: ListFormat) -> Result<Vec<ListId>, StoreError> {
        self.timed("list_ids", self.inner.list_ids(format)).await
    }

    async fn health(&self) -> Result<StoreHealth, StoreError> {
        self.timed("health", self.inner.health()).await
    }
}

impl<S: Store + Outbox> Outbox for Metered<S> {
    async fn take(&self, req: &TakeRequest) -> Result<Vec<Lease>, StoreError> {
        self.timed("events_take", self.inner.take(req)).await
    }

    async fn delivered(&self, client: &ClientId, handle: &str) -> Result<bool, StoreError> {
        self.timed("events_delivered", self.inner.delivered(client, handle))
            .await
    }

    async fn retry(&self, failure: &Failure, retry_at: UnixMillis) -> Result<(), StoreError> {
        self.timed("events_retry", self.inner.retry(failure, retry_at))
            .await
    }

    async fn dead_letter(&self, failure: &Failure) -> Result<bool, StoreError> {
        self.timed("events_dead_letter", self.inner.dead_letter(failure))
            .await
    }

    async fn dead_letters(&self, client: &ClientId) -> Result<Vec<DeadLetter>, StoreError> {
        self.timed("events_dead_letters", self.inner.dead_letters(client))
            .await
    }

    async fn redeliver(
        &self,
        client: &ClientId,
        ids: &[EventId],
    ) -> Result<Vec<EventId>, StoreError> {
        self.timed("events_redeliver", self.inner.redeliver(client, ids))
            .await
    }

    async fn pending(&self, client: &ClientId) -> Result<u64, StoreError> {
        self.timed("events_pending", self.inner.pending(client))
            .await
    }
}
