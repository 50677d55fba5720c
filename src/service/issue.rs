//! The `/issue` use case: one index for a checked request, idempotently.

use super::{Service, ServiceError};
use crate::auth::IssueClaims;
use crate::domain::ListRef;
use crate::ports::{AllocateOutcome, AllocateRequest, Store, StoreError};

/// The answer to `/issue`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issued {
    /// The allocated index.
    pub idx: u64,
    /// The URI of the list holding it.
    pub uri: String,
}

impl<S: Store> Service<S> {
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
            issuance_ref: None,
            now,
            keep_until: claims.keep_until(),
        };
        let outcome = self
            .store
            .allocate(&req)
            .await
            .map_err(|e| ServiceError::from_store(e, ServiceError::IssueFailed))?;
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
        .uri(self.base_url());
        Ok(Issued { idx, uri })
    }
}
