//! The Status List Aggregation (draft-ietf-oauth-status-list §9): the URIs
//! of every published Token Status List, for verifiers that fetch and cache
//! them all ahead of time (`GET /t/aggregation`).
//!
//! Enumerating lists may walk the whole store (a SCAN on Redis), and the
//! answer changes only when a list is opened, so the document is built at
//! most once per [`AGGREGATION_REFRESH`] per replica (single flight: one
//! store walk, whatever the request rate) and served from memory between.
//! A list opened meanwhile appears at the next refresh; a verifier loses
//! nothing by it, since the credential it checks names its list itself.
//! When the store fails, the last document is served (lists are never
//! deleted, so it is still true, only perhaps incomplete); without one, the
//! failure is remembered for [`FAILURE_MEMORY`], so that requests queued
//! behind a store walk that timed out do not each wait for another timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::cache::CacheError;
use super::{Service, ServiceError};
use crate::domain::{ListFormat, ListRef};
use crate::ports::{Store, StoreError};

/// How long a built aggregation is served before the store is asked again;
/// also its HTTP `max-age`.
pub const AGGREGATION_REFRESH: Duration = Duration::from_secs(60);

/// How long a failed store walk answers for itself when no document was
/// built before.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(1);

/// The aggregation document, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregation {
    /// `{"status_lists": [uri, …]}`, compact JSON, URIs sorted (so that
    /// replicas answer the same bytes).
    pub body: bytes::Bytes,
    /// How many lists it names.
    pub lists: usize,
}

/// The last built document and when it was built.
#[derive(Debug, Default)]
pub(super) struct AggregationCache {
    /// Held across the store walk: concurrent requests wait for it and take
    /// its result.
    state: tokio::sync::Mutex<State>,
}

impl AggregationCache {
    /// Moves the remembered build and failure `by` into the past, as if that
    /// much time had passed (the crate's tokio has no paused clock).
    #[cfg(test)]
    pub(super) async fn backdate(&self, by: Duration) {
        let mut state = self.state.lock().await;
        let earlier = |at: Instant| at.checked_sub(by).unwrap_or(at);
        if let Some((at, _)) = state.built.as_mut() {
            *at = earlier(*at);
        }
        if let Some((at, _)) = state.failed.as_mut() {
            *at = earlier(*at);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// The last document built, and when.
    built: Option<(Instant, Arc<Aggregation>)>,
    /// The last failed walk, and when (cleared by a success).
    failed: Option<(Instant, StoreError)>,
}

#[derive(serde::Serialize)]
struct Document<'a> {
    status_lists: &'a [String],
}

impl<S: Store> Service<S> {
    /// The Status List Aggregation of the Token Status Lists.
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] when the store cannot be reached and no
    /// document was built before; [`ServiceError::PublishFailed`] for any
    /// other store failure without an earlier document.
    pub async fn aggregation(&self) -> Result<Arc<Aggregation>, ServiceError> {
        let mut state = self.aggregation.state.lock().await;
        if let Some((at, doc)) = state.built.as_ref()
            && at.elapsed() < AGGREGATION_REFRESH
        {
            return Ok(doc.clone());
        }
        if state.built.is_none()
            && let Some((at, e)) = state.failed.as_ref()
            && at.elapsed() < FAILURE_MEMORY
        {
            return Err(failure(e.clone()));
        }
        let format = ListFormat::Token;
        match self.store.list_ids(format).await {
            Ok(ids) => {
                let base = &self.cache.settings().base_url;
                let mut uris: Vec<String> = ids
                    .into_iter()
                    .map(|id| ListRef { format, id }.uri(base))
                    .collect();
                uris.sort_unstable();
                let body = serde_json::to_vec(&Document {
                    status_lists: &uris,
                })
                .unwrap_or_default();
                let doc = Arc::new(Aggregation {
                    body: bytes::Bytes::from(body),
                    lists: uris.len(),
                });
                state.built = Some((Instant::now(), doc.clone()));
                state.failed = None;
                Ok(doc)
            }
            Err(e) => {
                state.failed = Some((Instant::now(), e.clone()));
                match state.built.as_ref() {
                    Some((_, doc)) => {
                        tracing::warn!(error = %e, "listing the lists failed; serving the last aggregation");
                        Ok(doc.clone())
                    }
                    None => Err(failure(e)),
                }
            }
        }
    }
}

/// A failed store walk as the use case's error: unreachable → 503, the rest
/// → 500 (logged).
fn failure(e: StoreError) -> ServiceError {
    ServiceError::from_store(e, |e| {
        tracing::error!(error = %e, "could not list the lists");
        ServiceError::PublishFailed(CacheError::Store(e))
    })
}
