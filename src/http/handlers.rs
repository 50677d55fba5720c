//! Route handlers. Each reads the request, checks it with `auth` where it
//! must, calls one use case of `service`, and writes the response; all
//! decisions live in `auth` and `service`, and every failure becomes a
//! response in the one table of [`super::error`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures::StreamExt;
use serde_json::json;

use super::error::ApiError;
use super::negotiate::{self, Coding, Media};
use super::state::AppState;
use crate::auth::ChangeRequest;
use crate::domain::{ChangeOp, ListFormat, ListId};
use crate::ports::{Outbox, Store};
use crate::service::{CacheOutcome, Changed, Published, ReadyStatus, RefChanged, StoreState};

/// The largest request body accepted (a request JWT is well under 2 KiB).
pub const MAX_BODY: usize = 16 * 1024;

/// The largest body of `POST /webhooks/redeliver`: 1,000 ids of 32 hex
/// digits take 35 KB as compact JSON; the rest is room for whitespace.
pub const MAX_REDELIVER_BODY: usize = 64 * 1024;

/// Unix time now, in whole seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the body up to [`MAX_BODY`], refusing larger ones early by their
/// `Content-Length` and otherwise as soon as the limit is passed, and giving
/// up with 408 when the whole body has not arrived within
/// `http.body_timeout_ms` (a client trickling bytes would otherwise hold the
/// connection and this task for as long as it likes).
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    read_body_up_to(req, payload, timeout, MAX_BODY).await
}

/// [`read_body`] with another limit than [`MAX_BODY`].
async fn read_body_up_to(
    req: &HttpRequest,
    payload: web::Payload,
    timeout: std::time::Duration,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    tokio::time::timeout(timeout, read_body_within_limit(req, payload, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout {
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })?
}

async fn read_body_within_limit(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::TooLarge { limit };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(limit as u64) as usize);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::Auth(crate::auth::AuthError::Decode))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn content_type(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// True for `application/json`, with parameters (`; charset=utf-8`) or not.
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The `Authorization` header, as bytes.
fn authorization(req: &HttpRequest) -> Option<&[u8]> {
    req.headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
}

/// `POST /issue`: new status indexes for a credential (one for a CRS
/// request, `count` for a batch).
#[tracing::instrument(level = "debug", name = "issue", skip_all)]
pub async fn issue<S: Store>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.body_timeout).await?;
    let now = unix_now();
    let claims = state
        .auth
        .check_issue(content_type(&req), &body, now)
        .await?;
    let issued = state.service.issue(&claims, now).await?;
    state.metrics.allocations(
        claims.format(),
        u64::try_from(issued.len()).unwrap_or(u64::MAX),
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(issued))
}

/// `POST /revoke`, `/suspend`, `/unsuspend`: a status change of one entry
/// (`idx` and `uri`) or of every entry bound to a `ref`. The route fixes
/// `op` (see [`crate::http::configure`]).
#[tracing::instrument(level = "debug", name = "change", skip(req, payload, state))]
pub async fn change<S: Store>(
    op: ChangeOp,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.body_timeout).await?;
    let now = unix_now();
    let checked = state
        .auth
        .check_change(op, content_type(&req), &body, now)
        .await?;
    let answer = match checked {
        ChangeRequest::Entry(claims) => change_body(&state.service.change(&claims, now).await?),
        ChangeRequest::Ref(claims) => {
            ref_change_body(&state.service.change_by_ref(&claims, now).await?)
        }
    };
    Ok(HttpResponse::Accepted()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(answer))
}

/// The texts of an operation's answers: (changed now, already so, the time
/// field).
const fn change_texts(op: ChangeOp) -> (&'static str, &'static str, &'static str) {
    match op {
        ChangeOp::Revoke => (
            "Request processed for revocation",
            "Credential already revoked",
            "revokedAt",
        ),
        ChangeOp::Suspend => (
            "Request processed for suspension",
            "Credential already suspended",
            "suspendedAt",
        ),
        ChangeOp::Unsuspend => (
            "Request processed for unsuspension",
            "Credential already valid",
            "unsuspendedAt",
        ),
    }
}

/// The CRS body of a revocation, and the same shape for suspensions.
fn change_body(changed: &Changed) -> serde_json::Value {
    let (done, already, field) = change_texts(changed.op);
    let message = if changed.changed { done } else { already };
    match changed.at {
        Some(at) => json!({ "message": message, field: at }),
        None => json!({ "message": message }),
    }
}

/// The body of a change by ref: the one-entry message (processed when any
/// entry changed now), the change's time, and the counts.
fn ref_change_body(changed: &RefChanged) -> serde_json::Value {
    let (done, already, field) = change_texts(changed.op);
    let message = if changed.changed > 0 { done } else { already };
    json!({
        "message": message,
        field: changed.at,
        "entries": changed.changed,
        "skipped": changed.skipped,
    })
}

/// `GET /entries`: one page of the authenticated client's own entries.
#[tracing::instrument(level = "debug", name = "entries", skip_all)]
pub async fn entries<S: Store>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    let now = unix_now();
    let claims = state.auth.check_listing(authorization(&req), now).await?;
    let listing = state
        .service
        .list_entries(&claims, req.query_string(), now)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(listing))
}

/// `GET /webhooks/failed`: one page of the authenticated client's
/// dead-lettered webhook events (bearer JWT as for `GET /entries`).
#[tracing::instrument(level = "debug", name = "webhooks_failed", skip_all)]
pub async fn webhooks_failed<S: Store + Outbox>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    let now = unix_now();
    let claims = state.auth.check_listing(authorization(&req), now).await?;
    let failed = state
        .service
        .dead_letters(&claims, req.query_string(), now)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(failed))
}

/// `POST /webhooks/redeliver`: queues dead-lettered events of the
/// authenticated client for delivery again. The bearer JWT is checked
/// before the body is read; the body is JSON, `{"ids": [...]}`.
#[tracing::instrument(level = "debug", name = "webhooks_redeliver", skip_all)]
pub async fn webhooks_redeliver<S: Store + Outbox>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    let now = unix_now();
    let claims = state.auth.check_listing(authorization(&req), now).await?;
    if !is_json(content_type(&req)) {
        return Err(ApiError::JsonContentType);
    }
    let body = read_body_up_to(&req, payload, state.body_timeout, MAX_REDELIVER_BODY).await?;
    let answer = state.service.redeliver(&claims, &body, now).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(answer))
}

/// `GET /t/{id}`: an IETF Token Status List.
pub async fn token_list<S: Store>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    list(ListFormat::Token, &req, &state).await
}

/// `GET /b/{id}`: a W3C Bitstring Status List credential.
pub async fn bitstring_list<S: Store>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    list(ListFormat::Bitstring, &req, &state).await
}

/// `Vary` of every list response: the representation depends on `Accept`
/// (media type) and on `Accept-Encoding` (gzip or not), so shared caches
/// must key on both.
const LIST_VARY: HeaderValue = HeaderValue::from_static("Accept, Accept-Encoding");

/// The GET of a published list, in the coding the client prefers.
///
/// The hot path of the service: a cache hit reads the id in place (no
/// `web::Path` string), makes no store call, and builds the response from
/// shared buffers and static header values; the only per-request formatting
/// left is a shortened `max-age` near the token's `exp`. No span is made
/// here (the token cache makes one on its slow path).
async fn list<S: Store>(
    format: ListFormat,
    req: &HttpRequest,
    state: &AppState<S>,
) -> Result<HttpResponse, ApiError> {
    let id = ListId::parse(req.match_info().query("id")).map_err(|_| ApiError::ListNotFound)?;
    refuse_time(req.query_string())?;
    // Only Token Status Lists have two media types; a W3C list has one, and
    // its `Accept` is disregarded (RFC 9110 §12.5.1 allows it) rather than
    // answered 406, so that W3C clients asking for JSON-LD still get it.
    let media = match format {
        ListFormat::Token => {
            negotiate::accept_media(req.headers()).ok_or(ApiError::NotAcceptable)?
        }
        ListFormat::Bitstring => Media::Jwt,
    };
    let now = unix_now();
    let (token, outcome) = state.service.publish(format, id, now).await?;
    state.metrics.token_cache(outcome.label());
    if outcome == CacheOutcome::Rebuilt {
        state
            .metrics
            .list_fill(id.as_str(), token.allocated, token.capacity);
    }
    // A verifier must not keep a token past its `exp`: near the end of its
    // life (served stale, or a short token lifetime) max-age shrinks to what
    // is left; otherwise the prebuilt `max-age=ttl` header is reused.
    let remaining = token.exp.saturating_sub(now);
    let cache_control = if remaining < state.service.publish_settings().ttl.as_secs() {
        HeaderValue::from_str(&format!("public, max-age={remaining}"))
            .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
    } else {
        state.list_cache_control.clone()
    };
    if media == Media::Cwt {
        return cwt_response(&token, req, cache_control);
    }
    let accepted = negotiate::accept_encoding(req.headers());
    let (chosen_tag, other_tag) = match accepted.chosen {
        Coding::Identity => (&token.etag, &token.gzip_etag),
        Coding::Gzip => (&token.gzip_etag, &token.etag),
    };
    let held = negotiate::held(req.headers(), accepted, chosen_tag, other_tag);
    let (coding, etag) = match held {
        Some(coding) if coding != accepted.chosen => (coding, other_tag),
        _ => (accepted.chosen, chosen_tag),
    };
    let mut response = if held.is_some() {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    // The tags are ASCII made by the cache; `from_maybe_shared` takes the
    // `Bytes` without copying (it only checks the bytes).
    if let Ok(etag) = HeaderValue::from_maybe_shared(etag.clone()) {
        response.insert_header((header::ETAG, etag));
    }
    response
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ))
        .insert_header((header::VARY, LIST_VARY));
    if held.is_some() {
        // RFC 9110 §15.4.5: a 304 carries the validator and the caching
        // fields (ETag, Cache-Control, Vary), not the representation's
        // Content-Encoding or Content-Type; the ETag tells a cache which
        // stored response, identity or gzip, it may reuse.
        return Ok(response.finish());
    }
    let media_type = match format {
        ListFormat::Token => HeaderValue::from_static("application/statuslist+jwt"),
        ListFormat::Bitstring => HeaderValue::from_static("application/vc+jwt"),
    };
    response.insert_header((header::CONTENT_TYPE, media_type));
    let body = match coding {
        Coding::Identity => token.body.clone(),
        Coding::Gzip => {
            response.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            token.gzip.clone()
        }
    };
    Ok(response.body(body))
}

/// The CWT of a Token Status List: one coding (identity), its own entity
/// tag, the same caching and CORS fields as the JWT.
fn cwt_response(
    token: &Published,
    req: &HttpRequest,
    cache_control: HeaderValue,
) -> Result<HttpResponse, ApiError> {
    // Every token list is signed in both envelopes; a token without its CWT
    // is a W3C one, which never gets here.
    let cwt = token.cwt.clone().ok_or(ApiError::NotAcceptable)?;
    let held = negotiate::holds(req.headers(), &token.cwt_etag);
    let mut response = if held {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    if let Ok(etag) = HeaderValue::from_maybe_shared(token.cwt_etag.clone()) {
        response.insert_header((header::ETAG, etag));
    }
    response
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ))
        .insert_header((header::VARY, LIST_VARY));
    if held {
        return Ok(response.finish());
    }
    response.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/statuslist+cwt"),
    ));
    Ok(response.body(cwt))
}

/// Refuses the draft's `time` query parameter (§8.4, historical
/// resolution): history is not kept, so a request for the list as it was
/// at some time gets 501, as the draft says, never the current list in
/// silence. A malformed value gets 400 first: no server could answer it,
/// and a client gets the same answer from a server that does keep history.
/// Other query parameters are ignored, as for any static resource.
///
/// Runs on every list GET: a request without a query pays one emptiness
/// check.
fn refuse_time(query: &str) -> Result<(), ApiError> {
    if query.is_empty() {
        return Ok(());
    }
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "time" {
            continue;
        }
        let unix_seconds = !value.is_empty()
            && value.len() <= 20
            && value.bytes().all(|b| b.is_ascii_digit())
            && value.parse::<u64>().is_ok();
        if !unix_seconds {
            return Err(ApiError::BadTime);
        }
        return Err(ApiError::TimeNotSupported);
    }
    Ok(())
}

/// `GET /t/aggregation`: the Status List Aggregation (draft §9), the URIs
/// of every Token Status List, as `application/json`.
pub async fn aggregation<S: Store>(
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    let doc = state.service.aggregation().await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!(
                "public, max-age={}",
                crate::service::AGGREGATION_REFRESH.as_secs()
            ),
        ))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/json")
        .body(doc.body.clone()))
}

/// `GET /.well-known/statuslist-configuration`: what this service serves,
/// for verifiers and wallets to discover it: the aggregation endpoint, the
/// JWKS, the list URI templates with their media types, and whether the
/// draft's `time` parameter is supported (it is not). The name and the
/// members are ours (the draft defines no such document); the aggregation
/// member takes the name the draft registers for OAuth metadata,
/// `status_list_aggregation_endpoint`.
pub async fn configuration<S: Store>(state: web::Data<AppState<S>>) -> HttpResponse {
    let base = state
        .service
        .publish_settings()
        .base_url
        .trim_end_matches('/');
    let document = json!({
        "issuer": base,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "status_list_aggregation_endpoint": ListFormat::Token.aggregation_uri(base),
        "signing_alg_values_supported": ["ES256"],
        "time_parameter_supported": false,
        "status_lists": {
            "token": {
                "uri_template": format!("{base}/t/{{id}}"),
                "media_types": ["application/statuslist+jwt", "application/statuslist+cwt"],
                "content_encodings": { "application/statuslist+jwt": ["gzip"] },
                "aggregation_uri": ListFormat::Token.aggregation_uri(base),
            },
            "bitstring": {
                "uri_template": format!("{base}/b/{{id}}"),
                "media_types": ["application/vc+jwt"],
                "content_encodings": { "application/vc+jwt": ["gzip"] },
            },
        },
    });
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(document)
}

/// `GET /.well-known/jwks.json`: the service's public keys as of now (a
/// replaced signing key until its retire time).
pub async fn jwks<S: Store>(state: web::Data<AppState<S>>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, state.jwks_cache_control.clone()))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/jwk-set+json")
        .body(state.keys.jwks_json(unix_now()))
}

/// `GET /health/live`: the process answers.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "status": "live" }))
}

/// `GET /health/ready`: the store answers and a signing key is loaded.
///
/// A store that answers but holds damaged lists, or is configured so that it
/// may lose data, is reported `degraded` with the details, and the instance
/// stays ready (200): every other list is still served, and taking every
/// replica out of a load balancer for one damaged list would make it worse.
pub async fn ready<S: Store>(state: web::Data<AppState<S>>) -> HttpResponse {
    let readiness = state.service.readiness().await;
    let status = match readiness.status() {
        ReadyStatus::Ready => "ready",
        ReadyStatus::Degraded => "degraded",
        ReadyStatus::NotReady => "not ready",
    };
    let store_status = match &readiness.store {
        StoreState::Ok => "ok",
        StoreState::Degraded(_) => "degraded",
        StoreState::Unavailable => "unavailable",
    };
    let mut body = json!({
        "status": status,
        "store": store_status,
        "signing_key": if readiness.signing_key { "loaded" } else { "missing" },
    });
    if let StoreState::Degraded(health) = &readiness.store {
        if !health.damaged.is_empty() {
            let damaged: Vec<&str> = health.damaged.iter().map(|l| l.as_str()).collect();
            body["damaged_lists"] = json!(damaged);
        }
        if !health.warnings.is_empty() {
            body["warnings"] = json!(health.warnings);
        }
    }
    let mut response = if readiness.is_ready() {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `GET /metrics`: Prometheus text format, with the JWKS fetch counters of
/// `auth` read at scrape time.
pub async fn metrics<S: Store>(state: web::Data<AppState<S>>) -> HttpResponse {
    let (jwks_fetches, jwks_failures) = crate::auth::jwks::fetch_counts();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(state.metrics.render(jwks_fetches, jwks_failures))
}

/// Any path no route serves.
pub async fn no_route() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

/// A known path with a method it does not take.
pub async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
