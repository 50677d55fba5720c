//! statuslist: a credential status service.
//!
//! Credential issuers ask it for a status index per credential (`/issue`) and
//! later revoke or suspend that index; verifiers fetch the signed lists it
//! publishes (IETF Token Status List under `/t/`, W3C Bitstring Status List
//! under `/b/`) and check a credential offline. The API is that of the GOV.UK
//! One Login Credential Status service (CRS).
//!
//! Module map (ports and adapters; arrows point at what a module may use):
//!
//! - [`domain`]: the pure core. Status values, packed lists in both bit
//!   orders, the zlib/GZIP codecs, the index allocator, the identifiers and
//!   request-claim validation. No I/O.
//! - [`jwk`]: client verifying keys: JWK sets parsed into keys by `kid`,
//!   and the recognition of the shipped demo key. → `domain`.
//! - [`config`]: the TOML file and `STATUSLIST_*` overrides, parsed once
//!   into typed [`config::Settings`]. → `domain`, `jwk`.
//! - [`auth`]: issuer authentication: client registry (reloaded on
//!   `SIGHUP`), JWKS fetch and cache, JWT checks in CRS order with the CRS
//!   texts. → `config`, `jwk`, `domain`.
//! - [`publish`]: service signing keys (ES256, RFC 7638 `kid`), the JWKS
//!   document, and the builders of the signed list tokens. → `domain`.
//! - [`store`]: the adapters of the storage port ([`ports::Store`]): the
//!   embedded [`store::EmbeddedStore`] (redb, one file, one process; the
//!   default) and Redis (production, many replicas); [`store::common`] holds
//!   the rules every adapter applies; [`store::any::AnyStore`] is the
//!   run-time choice between them. → `domain`.
//! - [`service`]: the use cases (issue, revoke, suspend, unsuspend) over the
//!   store port. → `auth` (claims), `store`, `domain`.
//! - [`http`]: actix-web routes, body limits, headers and the one mapping of
//!   errors to responses. → `service`, `publish`, `auth`.
//! - [`client`]: the issuer and verifier side for the CLI (sign requests,
//!   call `/issue` and `/revoke`, verify and read a published list).
//! - [`startup`]: the app factory (`Application::build`, `port()`,
//!   `run_until_stopped()`); [`telemetry`] and [`metrics`]: logs and
//!   Prometheus metrics.
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
