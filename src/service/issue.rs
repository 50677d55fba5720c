//! The `/issue` use case: `count` indexes (one for a CRS request) for a
//! checked request, idempotently, answered in the shape the request asked
//! for.

use super::{Service, ServiceError};
use crate::auth::IssueClaims;
use crate::domain::{CredentialStatus, ListRef};
use crate::ports::{AllocateOutcome, AllocateRequest, Allocation, Store, StoreError};

/// The CRS answer to `/issue` (a request with neither `ref` nor `count`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issued {
    /// The allocated index.
    pub idx: u64,
    /// The URI of the list holding it.
    pub uri: String,
}

/// One allocated entry of an answer with entries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IssuedEntry {
    /// The entry's index.
    pub idx: u64,
    /// The URI of the list holding it.
    pub uri: String,
    /// What the credential embeds to point at it (by the list's format).
    pub status: CredentialStatus,
}

/// The answer to an `/issue` with `ref` or `count`: every allocated entry,
/// in allocation order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IssuedEntries {
    /// The request's `ref`, when it had one.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub issuance_ref: Option<String>,
    /// The entries (`count` of them, all distinct).
    pub entries: Vec<IssuedEntry>,
}

/// The answer to `/issue`, in the shape the request asked for (serialised
/// as that shape alone).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum IssueAnswer {
    /// `{"idx", "uri"}`: a CRS request.
    Crs(Issued),
    /// `{"ref"?, "entries"}`: a request with `ref` or `count`.
    Entries(IssuedEntries),
}

impl IssueAnswer {
    /// How many entries were allocated (or replayed).
    pub fn len(&self) -> usize {
        match self {
            IssueAnswer::Crs(_) => 1,
            IssueAnswer::Entries(e) => e.entries.len(),
        }
    }

    /// Never true for an answer of [`Service::issue`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<S: Store> Service<S> {
    /// Allocates `count` indexes (1 for a CRS request) for a checked
    /// `/issue` request, idempotently, bound to its `ref` when it has one.
    ///
    /// # Errors
    /// [`ServiceError::Changed`], or a store failure (also a store answer
    /// with another number of entries than asked for).
    #[tracing::instrument(level = "debug", skip_all, fields(client = %claims.client(), count = claims.count()))]
    pub async fn issue(&self, claims: &IssueClaims, now: u64) -> Result<IssueAnswer, ServiceError> {
        // Only an issue with a ref has an event (`entries.issued`); a CRS
        // request has none, and pays nothing for webhooks.
        let events = match claims.issuance_ref() {
            Some(_) => self.event_seed(claims.client()),
            None => None,
        };
        let req = AllocateRequest {
            client: claims.client().clone(),
            format: claims.format(),
            jti: claims.jti().clone(),
            digest: claims.digest(),
            status_expiry: claims.status_expiry(),
            count: claims.count(),
            issuance_ref: claims.issuance_ref().cloned(),
            now,
            keep_until: claims.keep_until(),
            events,
        };
        let outcome = self
            .store
            .allocate(&req)
            .await
            .map_err(|e| ServiceError::from_store(e, ServiceError::IssueFailed))?;
        let allocation = match outcome {
            AllocateOutcome::Allocated(a) => {
                if events.is_some() {
                    self.events_recorded();
                }
                a
            }
            AllocateOutcome::Replayed(a) => a,
            AllocateOutcome::Changed => return Err(ServiceError::Changed),
        };
        // The digest covers `count`, so a replay is of the same size too.
        if allocation.len() != claims.count() as usize {
            return Err(ServiceError::IssueFailed(StoreError::Corrupt(format!(
                "an allocation of {} entries answered a request for {}",
                allocation.len(),
                claims.count()
            ))));
        }
        let mut entries = self.entries_of(&allocation);
        if !claims.answers_entries() {
            let (idx, uri) = entries.next().ok_or_else(|| {
                ServiceError::IssueFailed(StoreError::Corrupt("empty allocation".into()))
            })?;
            return Ok(IssueAnswer::Crs(Issued { idx, uri }));
        }
        let format = allocation.format;
        Ok(IssueAnswer::Entries(IssuedEntries {
            issuance_ref: claims.issuance_ref().map(|r| r.as_str().to_owned()),
            entries: entries
                .map(|(idx, uri)| IssuedEntry {
                    status: CredentialStatus::of(format, idx, &uri),
                    idx,
                    uri,
                })
                .collect(),
        }))
    }

    /// Every (idx, list URI) of an allocation, in allocation order.
    fn entries_of<'a>(
        &'a self,
        allocation: &'a Allocation,
    ) -> impl Iterator<Item = (u64, String)> + 'a {
        allocation.entries().map(move |(list, idx)| {
            let uri = ListRef {
                format: allocation.format,
                id: list,
            }
            .uri(self.base_url());
            (idx, uri)
        })
    }
}
