//! What every handler shares: the authenticator, the use cases (with the
//! token cache inside), the service's public keys and the metrics. Built once at
//! start-up.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::metrics::Metrics;
use crate::ports::PublishedKeys;
use crate::service::Service;

/// The application state behind `web::Data`.
#[derive(Debug)]
pub struct AppState<S> {
    /// Client registry, JWKS cache and request checks.
    pub auth: Arc<Authenticator>,
    /// Every use case: issue, status changes, published lists, readiness.
    pub service: Service<S>,
    /// The service's public keys; the JWKS is asked for at each fetch, as
    /// keys join on a rotation and retire by themselves.
    pub keys: Arc<dyn PublishedKeys>,
    /// `Cache-Control` of the JWKS: `public, max-age=<min(300, ttl)>`, so
    /// that a verifier holds a JWKS without a new key no longer than a list.
    pub jwks_cache_control: actix_web::http::header::HeaderValue,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// `Cache-Control` of published lists (`public, max-age=<ttl>`), built
    /// once rather than formatted per GET (a token with less than `ttl` left
    /// gets its own, shorter `max-age`).
    pub list_cache_control: actix_web::http::header::HeaderValue,
    /// How long a request body may take to arrive (`http.body_timeout_ms`).
    pub body_timeout: std::time::Duration,
}
