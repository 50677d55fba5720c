//! statuslist: a credential status service.
//!
//! Credential issuers ask it for a status index per credential (`/issue`) and
//! later revoke or suspend that index; verifiers fetch the signed lists it
//! publishes (IETF Token Status List under `/t/`, W3C Bitstring Status List
//! under `/b/`) and check a credential offline. The API is that of the GOV.UK
//! One Login Credential Status service (CRS).
//!
//! Module map: ports and adapters, layers that only point down. An arrow
//! names what a module may use; `tests/architecture.rs` keeps this true.
//!
//! - [`domain`]: the pure core. Status values and their transition rules,
//!   packed lists in both bit orders, the zlib/GZIP codecs, the index
//!   allocator, the identifiers (`ListId`, `ClientId`, `Jti`, `IssuanceRef`,
//!   …), request-claim validation, the entry listing's query and page
//!   selection, and what a credential embeds to point at its entry. No
//!   other module of the crate, no I/O.
//! - [`ports`]: the traits the use cases need from the outside world and the
//!   values that cross them: [`ports::Store`] (lists, allocations,
//!   idempotency records), [`ports::ListSigner`] (signed list
//!   documents), [`ports::PublishedKeys`] (the JWKS as of now),
//!   [`ports::ChangeFeed`] (changes made through other
//!   replicas), [`ports::Outbox`] (the events recorded with the changes)
//!   and [`ports::WebhookSender`] (one signed delivery). → `domain`.
//! - [`service`]: the application layer, every use case: issue, change (of
//!   one entry or by ref, and what follows an acknowledged change), list a
//!   client's entries, publish a list (the signed-token cache), readiness,
//!   following the change feed; and the webhook dispatcher
//!   ([`service::dispatch`]: takes events from the outbox, sends them
//!   through the sender port, retries and dead-letters). May use tokio,
//!   never reqwest, actix-web, redis or redb. → `ports`, `auth` (the
//!   checked claims), `domain`.
//! - [`http`]: actix-web, thin: read the request, call `auth` and one use
//!   case, write the response; the one table from every failure to its
//!   status, CRS code and text. → `service`, `auth`, `metrics`, `domain`.
//! - Adapters, each built only by [`startup`]:
//!   - [`store`]: the storage adapters: embedded [`store::EmbeddedStore`]
//!     (redb, one file, one process; the default) and
//!     [`store::redis::RedisStore`] (production, many replicas), the rules
//!     they share ([`store::common`]), the run-time choice
//!     ([`store::any::AnyStore`]) and the timing decorator
//!     ([`store::metered`]). → `ports`, `domain`, `metrics`.
//!   - [`publish`]: the service's signing keys (ES256, RFC 7638 `kid`) and
//!     their rotation ([`publish::KeyRing`]), the JWKS document and the
//!     list-document builders; implements [`ports::ListSigner`] and
//!     [`ports::PublishedKeys`]. → `ports`, `domain`.
//!   - [`webhook`]: the webhook sender ([`webhook::HttpSender`]: signed
//!     POSTs over reqwest, no redirects followed; implements
//!     [`ports::WebhookSender`]) and the delivery metrics
//!     ([`webhook::MeteredDeliveries`], a [`ports::DeliveryObserver`]).
//!     → `ports`, `config`, `metrics`, `domain`.
//!   - [`auth`]: issuer authentication: client registry (reloaded on
//!     `SIGHUP`), client JWKS fetching and caching, JWT checks in CRS order.
//!     Returns typed causes ([`auth::AuthError`]) and claims only it can
//!     build. → `config`, `jwk`, `domain`.
//! - [`config`]: the TOML file and `STATUSLIST_*` overrides, parsed once into
//!   typed [`config::Settings`] (durations, widths, non-zero limits, URLs,
//!   client ids). → `jwk`, `domain`.
//! - [`jwk`]: client verifying keys (JWK sets by `kid`) and the recognition
//!   of the shipped demo key. → `domain`.
//! - [`metrics`]: the Prometheus registry; callers hand it labels and
//!   values. → `domain`.
//! - [`startup`]: the app factory (`Application::build`, `port()`,
//!   `run_until_stopped()`), the one place adapters meet ports, and the
//!   `SIGHUP` reload of clients and signing keys (`startup::Reloader`);
//!   [`telemetry`]: logs; [`client`]: the issuer and verifier side for the
//!   CLI (sign requests, call the API, verify and read a published list).
//!
//! Error handling: each layer has its own `thiserror` enum, so a caller can
//! match on what went wrong in that layer; the HTTP layer maps them to
//! responses in one place. `anyhow` is used only by the binary.

pub mod auth;
pub mod client;
pub mod config;
pub mod domain;
pub mod http;
pub mod jwk;
pub mod metrics;
pub mod ports;
pub mod publish;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhook;
