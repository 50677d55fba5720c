//! The HTTP layer (actix-web): routes, body limits, headers and the one error
//! mapping. No business logic: a handler checks the request with `auth` and
//! calls one use case of `service`.

pub mod error;
pub mod handlers;
pub mod metrics_mw;
pub mod negotiate;
pub mod state;

use actix_web::web;

pub use error::ApiError;
pub use state::AppState;

use crate::domain::ChangeOp;
use crate::ports::{Outbox, Store};

/// Every route the service serves, as (method, path) in OpenAPI spelling.
/// The OpenAPI test checks this list against `openapi.yaml` and against the
/// routes the app answers.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/issue"),
    ("post", "/revoke"),
    ("post", "/suspend"),
    ("post", "/unsuspend"),
    ("get", "/entries"),
    ("get", "/webhooks/failed"),
    ("post", "/webhooks/redeliver"),
    ("get", "/t/aggregation"),
    ("get", "/t/{id}"),
    ("get", "/b/{id}"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/.well-known/statuslist-configuration"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/metrics"),
];

/// The route of one status-change endpoint: the shared handler with its
/// operation fixed.
fn change<S: Store>(op: ChangeOp) -> actix_web::Route {
    web::post().to(
        move |req: actix_web::HttpRequest, payload: web::Payload, state: web::Data<AppState<S>>| {
            handlers::change(op, req, payload, state)
        },
    )
}

/// Registers every route on an actix `App` or scope.
pub fn configure<S: Store + Outbox>(cfg: &mut web::ServiceConfig) {
    use handlers as h;
    // A known path answers other methods with a JSON 405, not actix's empty one.
    let at = |path: &'static str, route: actix_web::Route| {
        web::resource(path)
            .route(route)
            .default_service(web::to(h::method_not_allowed))
    };
    cfg.service(at("/issue", web::post().to(h::issue::<S>)))
        .service(at("/revoke", change::<S>(ChangeOp::Revoke)))
        .service(at("/suspend", change::<S>(ChangeOp::Suspend)))
        .service(at("/unsuspend", change::<S>(ChangeOp::Unsuspend)))
        .service(at("/entries", web::get().to(h::entries::<S>)))
        .service(at(
            "/webhooks/failed",
            web::get().to(h::webhooks_failed::<S>),
        ))
        .service(at(
            "/webhooks/redeliver",
            web::post().to(h::webhooks_redeliver::<S>),
        ))
        // Before `/t/{id}`: actix tries resources in order. No list id can
        // be `aggregation` (ids are 12 uppercase hex digits).
        .service(at("/t/aggregation", web::get().to(h::aggregation::<S>)))
        .service(at("/t/{id}", web::get().to(h::token_list::<S>)))
        .service(at("/b/{id}", web::get().to(h::bitstring_list::<S>)))
        .service(at("/.well-known/jwks.json", web::get().to(h::jwks::<S>)))
        .service(at(
            "/.well-known/statuslist-configuration",
            web::get().to(h::configuration::<S>),
        ))
        .service(at("/health/live", web::get().to(h::live)))
        .service(at("/health/ready", web::get().to(h::ready::<S>)))
        .service(at("/metrics", web::get().to(h::metrics::<S>)));
}
