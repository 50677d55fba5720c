//! Request metrics middleware: counts and times every request by its route
//! pattern (never the raw path), its method (the standard ones by name, any
//! other `other`: see [`crate::metrics::method_label`]) and status, so that
//! no client can create label values.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};

use crate::metrics::Metrics;

/// Middleware function for `actix_web::middleware::from_fn`.
///
/// # Errors
/// Passes on the inner service's error after recording it.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let metrics = req.app_data::<web::Data<Arc<Metrics>>>().cloned();
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(res) => res.status(),
            Err(err) => err.as_response_error().status_code(),
        };
        metrics.request(&route, method.as_str(), status.as_str(), start.elapsed());
    }
    result
}
