//! The entry-listing use case (`GET /entries`): one page of the client's own
//! entries, for a single-use listing JWT.

use super::{Service, ServiceError};
use crate::auth::ListingClaims;
use crate::domain::{EntryFilter, ListRef, Pagination};
use crate::ports::{EntryPage, EntryQuery, JtiClaim, JtiClaimOutcome, Store};

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedEntry {
    /// Its index.
    pub idx: u64,
    /// The URI of its list.
    pub uri: String,
    /// The ref it is bound to, if any.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub issuance_ref: Option<String>,
    /// `VALID`, `INVALID` or `SUSPENDED`.
    pub status: &'static str,
    /// When it was allocated (unix seconds).
    pub created_at: u64,
    /// When its status last changed; `createdAt` when it never did.
    pub updated_at: u64,
    /// The `statusExpiry` it was issued with.
    pub status_expiry: u64,
}

/// The answer to `GET /entries`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryListing {
    /// The page, in the order asked for.
    pub items: Vec<ListedEntry>,
    /// Where the page is among all matching entries.
    pub pagination: Pagination,
}

impl<S: Store> Service<S> {
    /// One page of the client's entries for a checked listing JWT and the
    /// request's raw query string. The query is read first (a bad one does
    /// not use up the JWT), then the JWT's jti is recorded (single use), then
    /// the store is asked. A `uri` of the client's other format's path names
    /// none of its lists: the page is empty.
    ///
    /// # Errors
    /// [`ServiceError::BadQuery`], [`ServiceError::JtiUsed`], or a store
    /// failure.
    #[tracing::instrument(level = "debug", skip_all, fields(client = %claims.client()))]
    pub async fn list_entries(
        &self,
        claims: &ListingClaims,
        query: &str,
        now: u64,
    ) -> Result<EntryListing, ServiceError> {
        let filter = EntryFilter::parse(query, self.base_url()).map_err(ServiceError::BadQuery)?;
        let failed = |e| ServiceError::from_store(e, ServiceError::ListingFailed);
        self.claim_single_use(claims, now, failed).await?;
        let format = claims.format();
        let page = if filter.list.is_some_and(|l| l.format != format) {
            // Entries are kept per client and format; the store, given only
            // the id, would find a list of the other format under it.
            EntryPage::default()
        } else {
            let query = EntryQuery {
                client: claims.client().clone(),
                format,
                statuses: filter.statuses,
                issuance_ref: filter.issuance_ref.clone(),
                list: filter.list.map(|l| l.id),
                updated_since: filter.updated_since,
                updated_until: filter.updated_until,
                order: filter.order,
                offset: filter.offset(),
                limit: filter.limit,
            };
            self.store.list_entries(&query).await.map_err(failed)?
        };
        let items = page
            .items
            .into_iter()
            .map(|item| ListedEntry {
                idx: item.idx,
                uri: ListRef {
                    format,
                    id: item.list,
                }
                .uri(self.base_url()),
                issuance_ref: item.issuance_ref.map(|r| r.as_str().to_owned()),
                status: item.status.name(),
                created_at: item.created_at,
                updated_at: item.updated_at,
                status_expiry: item.status_expiry,
            })
            .collect();
        Ok(EntryListing {
            items,
            pagination: Pagination::new(filter.page, filter.limit, page.total),
        })
    }

    /// Records the JWT's jti: a listing JWT (entries, webhooks) is single
    /// use. `failed` names a store failure.
    pub(super) async fn claim_single_use(
        &self,
        claims: &ListingClaims,
        now: u64,
        failed: impl FnOnce(crate::ports::StoreError) -> ServiceError,
    ) -> Result<(), ServiceError> {
        let claim = JtiClaim {
            client: claims.client().clone(),
            jti: claims.jti().clone(),
            digest: claims.digest(),
            now,
            keep_until: claims.keep_until(),
        };
        match self.store.claim_jti(&claim).await.map_err(failed)? {
            JtiClaimOutcome::Fresh => Ok(()),
            JtiClaimOutcome::Used => Err(ServiceError::JtiUsed),
        }
    }
}
