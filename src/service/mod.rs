//! The application layer: every use case, the write side and the read side.
//!
//! - [`Service::issue`] (`/issue`), [`Service::change`] and
//!   [`Service::change_by_ref`] (`/revoke`, `/suspend`, `/unsuspend`) take
//!   the checked request claims from [`crate::auth`] to the [`Store`] port;
//!   what must follow an acknowledged change happens in one step,
//!   `Service::after_change`.
//! - [`Service::list_entries`] (`GET /entries`) reads one page of a client's
//!   entries for a single-use listing JWT.
//! - [`Service::dead_letters`] (`GET /webhooks/failed`) and
//!   [`Service::redeliver`] (`POST /webhooks/redeliver`) show a client its
//!   dead-lettered webhook events and queue them again, for the same kind of
//!   JWT.
//! - [`Service::publish`] serves the signed token of a list through the
//!   [`cache`], which signs through the [`ListSigner`] port.
//! - [`Service::aggregation`] is the Status List Aggregation (`GET
//!   /t/aggregation`): every Token Status List's URI, rebuilt now and then.
//! - [`Service::readiness`] is what `/health/ready` reports.
//! - [`Service::follow_changes`] drops cached tokens of lists changed
//!   through other replicas, as a [`ChangeFeed`] reports them.
//! - Webhooks: for a client with a webhook, the write use cases have the
//!   store record events with the change (an [`EventSeed`] on the request)
//!   and nudge the [`EventNotifier`]; the [`dispatch`]er delivers them.
//!
//! Failures are [`ServiceError`]s; the HTTP layer turns them into responses.
//! Nothing here knows HTTP, a store adapter or the signing keys: the
//! adapters arrive through the ports, wired in `crate::startup`.

pub(crate) mod aggregation;
pub mod cache;
mod change;
pub mod dispatch;
mod entries;
mod error;
mod issue;
mod publish;
mod readiness;
mod webhooks;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use aggregation::{AGGREGATION_REFRESH, Aggregation};
pub use cache::{CacheOutcome, PublishSettings, Published, TokenCache};
pub use change::{Changed, RefChanged};
pub use entries::{EntryListing, ListedEntry};
pub use error::ServiceError;
pub use issue::{IssueAnswer, Issued, IssuedEntries, IssuedEntry};
pub use readiness::{Readiness, ReadyStatus, StoreState};
pub use webhooks::{
    DEFAULT_FAILED_LIMIT, FailedEvent, FailedEvents, FailedQuery, MAX_IDS, Redelivered,
    RedeliveryError, parse_redelivery,
};

use crate::domain::ClientId;
use crate::domain::events::EventSeed;
use crate::ports::{ChangeFeed, ChangeNotice, EventNotifier, ListSigner, Store};

/// The use cases over one store and one signer.
#[derive(Debug)]
pub struct Service<S> {
    store: Arc<S>,
    /// Signed list tokens, over the same store.
    cache: TokenCache<S>,
    /// Asked by readiness only; the cache holds its own handle.
    signer: Arc<dyn ListSigner>,
    /// Which clients get events, and who hears of them.
    webhooks: Webhooks,
    /// The last Status List Aggregation built.
    aggregation: aggregation::AggregationCache,
}

/// The clients with a webhook and the dispatcher's notifier.
struct Webhooks {
    /// Empty when no client has a webhook: then no request carries a seed
    /// and nothing is nudged, and the check costs one length test.
    clients: HashSet<ClientId>,
    notifier: Arc<dyn EventNotifier>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// The notifier of a service without webhooks: nobody to tell.
struct NoNotifier;

impl EventNotifier for NoNotifier {
    fn recorded(&self) {}
}

impl<S: Store> Service<S> {
    /// The use cases over `store`, publishing lists signed by `signer` as
    /// `settings` say; list URIs start with `settings.base_url`.
    pub fn new(store: Arc<S>, signer: Arc<dyn ListSigner>, settings: PublishSettings) -> Self {
        Service {
            cache: TokenCache::new(store.clone(), signer.clone(), settings),
            store,
            signer,
            webhooks: Webhooks {
                clients: HashSet::new(),
                notifier: Arc::new(NoNotifier),
            },
            aggregation: aggregation::AggregationCache::default(),
        }
    }

    /// The same service, recording status-change events for `clients` (the
    /// clients with a webhook) and telling `notifier` after each write that
    /// recorded some.
    #[must_use]
    pub fn with_webhooks(
        mut self,
        clients: impl IntoIterator<Item = ClientId>,
        notifier: Arc<dyn EventNotifier>,
    ) -> Self {
        self.webhooks = Webhooks {
            clients: clients.into_iter().collect(),
            notifier,
        };
        self
    }

    /// Whether `client` has a webhook (its changes record events).
    pub fn has_webhook(&self, client: &ClientId) -> bool {
        // The emptiness test first: without webhooks, no hashing per request.
        !self.webhooks.clients.is_empty() && self.webhooks.clients.contains(client)
    }

    /// The seed of a write's events when `client` has a webhook, else
    /// `None` (and no clock read). Ids take the time in milliseconds, finer
    /// than the request's `now`, so that they sort by when the request came.
    fn event_seed(&self, client: &ClientId) -> Option<EventSeed> {
        self.has_webhook(client)
            .then(|| EventSeed::random(now_ms()))
    }

    /// Tells the dispatcher that an acknowledged write recorded events, so
    /// that they are delivered now rather than at its next poll.
    fn events_recorded(&self) {
        self.webhooks.notifier.recorded();
    }

    /// The settings the published tokens are built with.
    pub fn publish_settings(&self) -> &PublishSettings {
        self.cache.settings()
    }

    /// The service's public base URL, the prefix of every list URI.
    fn base_url(&self) -> &str {
        &self.cache.settings().base_url
    }

    /// Tells the token cache that the signer's key was replaced (a
    /// rotation): each list's next GET serves a token signed by the new key.
    pub fn signing_key_changed(&self) {
        self.cache.signer_changed();
    }

    /// Follows `feed` until it ends (run it as its own task): every list
    /// another replica changes is invalidated in the token cache at once, as
    /// this process's own changes are, so the next GET here asks the store
    /// instead of serving the old token for up to `freshness`. When the feed
    /// comes back after a gap, every held list is invalidated, since changes
    /// made during the gap were not reported. While it is down nothing is
    /// invalidated: the version check every `freshness` is the safety net.
    pub async fn follow_changes(&self, mut feed: impl ChangeFeed) {
        while let Some(notice) = feed.next().await {
            match notice {
                ChangeNotice::Changed(list) => self.cache.invalidate(&list),
                ChangeNotice::Resumed => self.cache.invalidate_all(),
                // The adapter logs the cause; there is nothing to drop.
                ChangeNotice::Lost => {}
            }
        }
    }
}

/// The current time in unix milliseconds: event ids and the dispatcher's
/// clock (request times stay in seconds).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
