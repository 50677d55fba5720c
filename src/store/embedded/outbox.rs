//! The event outbox of the embedded store (see `crate::ports::outbox`).

use super::EmbeddedStore;
use crate::domain::ClientId;
use crate::domain::events::EventId;
use crate::ports::{DeadLetter, Failure, Lease, Outbox, StoreError, TakeRequest, UnixMillis};

impl Outbox for EmbeddedStore {
    async fn take(&self, req: &TakeRequest) -> Result<Vec<Lease>, StoreError> {
        todo!("{req:?}")
    }

    async fn delivered(&self, client: &ClientId, handle: &str) -> Result<(), StoreError> {
        todo!("{client}{handle}")
    }

    async fn retry(&self, failure: &Failure, retry_at: UnixMillis) -> Result<(), StoreError> {
        todo!("{failure:?}{retry_at}")
    }

    async fn dead_letter(&self, failure: &Failure) -> Result<(), StoreError> {
        todo!("{failure:?}")
    }

    async fn dead_letters(&self, client: &ClientId) -> Result<Vec<DeadLetter>, StoreError> {
        todo!("{client}")
    }

    async fn redeliver(
        &self,
        client: &ClientId,
        ids: &[EventId],
        now_ms: UnixMillis,
    ) -> Result<Vec<EventId>, StoreError> {
        todo!("{client}{ids:?}{now_ms}")
    }

    async fn pending(&self, client: &ClientId) -> Result<u64, StoreError> {
        todo!("{client}")
    }
}
