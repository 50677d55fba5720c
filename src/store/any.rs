//! The store chosen at run time from configuration: Redis or embedded.
//!
//! An enum rather than `dyn Store`: the trait's methods return `impl Future`,
//! which keeps them allocation-free but not object-safe, and there are exactly
//! two adapters. The choice is made once, from the typed configuration, never
//! by Cargo features.

use super::embedded::EmbeddedStore;
use super::redis::{RedisChangeFeed, RedisStore};
use crate::domain::events::EventId;
use crate::domain::{ClientId, ListFormat, ListId};
use crate::ports::{
    AllocateOutcome, AllocateRequest, EntryPage, EntryQuery, JtiClaim, JtiClaimOutcome,
    ListSnapshot, RefChange, RefChangeOutcome, SetStatusOutcome, StatusChange, Store, StoreError,
    StoreHealth,
};
use crate::ports::{DeadLetter, Failure, Lease, Outbox, TakeRequest, UnixMillis};

/// Either adapter behind one type.
#[derive(Debug)]
pub enum AnyStore {
    /// Redis: production, many replicas. Boxed: it is much larger than the
    /// embedded handle, and the enum is built once.
    Redis(Box<RedisStore>),
    /// redb: one process, zero setup.
    Embedded(EmbeddedStore),
}

impl AnyStore {
    /// The store's change feed, for the other replicas' caches: Redis with
    /// `notify_changes` on. The embedded store has none: it serves one
    /// process, whose own changes invalidate its cache directly.
    pub fn change_feed(&self) -> Option<RedisChangeFeed> {
        match self {
            AnyStore::Redis(store) => store.change_feed(),
            AnyStore::Embedded(_) => None,
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Redis($store) => $call.await,
            AnyStore::Embedded($store) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn allocate(&self, req: &AllocateRequest) -> Result<AllocateOutcome, StoreError> {
        dispatch!(self, s => s.allocate(req))
    }

    async fn set_status(&self, change: &StatusChange) -> Result<SetStatusOutcome, StoreError> {
        dispatch!(self, s => s.set_status(change))
    }

    async fn set_status_by_ref(&self, change: &RefChange) -> Result<RefChangeOutcome, StoreError> {
        dispatch!(self, s => s.set_status_by_ref(change))
    }

    async fn claim_jti(&self, claim: &JtiClaim) -> Result<JtiClaimOutcome, StoreError> {
        dispatch!(self, s => s.claim_jti(claim))
    }

    async fn list_entries(&self, query: &EntryQuery) -> Result<EntryPage, StoreError> {
        dispatch!(self, s => s.list_entries(query))
    }

    async fn read_list(&self, list: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
        dispatch!(self, s => s.read_list(list))
    }

    async fn list_version(&self, list: &ListId) -> Result<Option<u64>, StoreError> {
        dispatch!(self, s => s.list_version(list))
    }

    async fn list_ids(&self, format: ListFormat) -> Result<Vec<ListId>, StoreError> {
        dispatch!(self, s => s.list_ids(format))
    }

    async fn health(&self) -> Result<StoreHealth, StoreError> {
        dispatch!(self, s => s.health())
    }
}

impl Outbox for AnyStore {
    async fn take(&self, req: &TakeRequest) -> Result<Vec<Lease>, StoreError> {
        dispatch!(self, s => s.take(req))
    }

    async fn delivered(&self, client: &ClientId, handle: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delivered(client, handle))
    }

    async fn retry(&self, failure: &Failure, retry_at: UnixMillis) -> Result<(), StoreError> {
        dispatch!(self, s => s.retry(failure, retry_at))
    }

    async fn dead_letter(&self, failure: &Failure) -> Result<bool, StoreError> {
        dispatch!(self, s => s.dead_letter(failure))
    }

    async fn dead_letters(&self, client: &ClientId) -> Result<Vec<DeadLetter>, StoreError> {
        dispatch!(self, s => s.dead_letters(client))
    }

    async fn redeliver(
        &self,
        client: &ClientId,
        ids: &[EventId],
    ) -> Result<Vec<EventId>, StoreError> {
        dispatch!(self, s => s.redeliver(client, ids))
    }

    async fn pending(&self, client: &ClientId) -> Result<u64, StoreError> {
        dispatch!(self, s => s.pending(client))
    }
}
