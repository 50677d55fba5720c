//! What every handler shares: the authenticator, the use cases (with the
//! token cache inside), the JWKS document and the metrics. Built once at
//! start-up.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::metrics::Metrics;
use crate::service::Service;

/// The application state behind `web::Data`.
#[derive(Debug)]
pub struct AppState<S> {
    /// Client registry, JWKS cache and request checks.
    pub auth: Arc<Authenticator>,
    /// Every use case: issue, status changes, published lists, readiness.
    pub service: Service<S>,
    /// The service's JWKS document, serialized once.
    pub jwks_json: String,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// `Cache-Control` of published lists (`public, max-age=<ttl>`), built
    /// once rather than formatted per GET (a token with less than `ttl` left
    /// gets its own, shorter `max-age`).
    pub list_cache_control: actix_web::http::header::HeaderValue,
    /// How long a request body may take to arrive (`http.body_timeout_ms`).
    pub body_timeout: std::time::Duration,
}
