//! The one request middleware: metrics, request ids and request logging.
//!
//! Metrics: every request is counted and timed by its route pattern (never
//! the raw path), its method (the standard ones by name, any other `other`:
//! see [`crate::metrics::method_label`]) and status, so that no client can
//! create label values. The route is found by [`route_of`] from [`ROUTES`]
//! without the router's regex search or an allocation.
//!
//! Logging costs nothing per request unless something is logged:
//! - the request span (`HTTP request`: method, route, target, host, client
//!   address, user agent, request id) is a DEBUG span, so at the default
//!   `info` level it is never built nor formatted;
//! - a request answered with a 5xx gets one ERROR line, `request failed`,
//!   with all of the span's fields, the status, the error and the time
//!   taken; a 4xx gets the same line at DEBUG (`request refused`: a client's
//!   mistake is not the operator's, and clients must not be able to fill
//!   the log at will).
//!
//! Request ids are taken from a well-formed incoming `X-Request-Id` (at
//! most [`MAX_REQUEST_ID`] characters of `A-Z a-z 0-9 - _ . : + / =`), or
//! made from a per-process random prefix and a counter; they are formatted
//! only when logged.

use std::fmt;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderValue, USER_AGENT};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, web};
use tracing::Instrument;

use super::ROUTES;
use crate::metrics::{Metrics, method_label};

/// The longest incoming `X-Request-Id` taken as the request id.
pub const MAX_REQUEST_ID: usize = 64;

/// The route label of a path matching no registered pattern.
const UNMATCHED: &str = "unmatched";

/// A request's id, as logged.
#[derive(Debug, Clone)]
pub enum RequestId {
    /// The client's own, well-formed `X-Request-Id`.
    Given(HeaderValue),
    /// This process's prefix and the request's number in it.
    Counted(u64),
}

/// A random prefix per process, so that counted ids of replicas and of
/// restarts differ.
static PREFIX: LazyLock<u32> = LazyLock::new(rand::random);
/// Requests numbered so far.
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl RequestId {
    /// The id of a request with these headers: its `X-Request-Id` when well
    /// formed, else the next counted one.
    pub fn of(headers: &HeaderMap) -> RequestId {
        match headers.get("x-request-id") {
            Some(v) if is_well_formed(v.as_bytes()) => RequestId::Given(v.clone()),
            _ => RequestId::Counted(COUNTER.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Well-formed ids are ASCII.
            RequestId::Given(v) => f.write_str(v.to_str().unwrap_or_default()),
            RequestId::Counted(n) => write!(f, "{:08x}-{n}", *PREFIX),
        }
    }
}

/// Whether an incoming `X-Request-Id` may stand for the request in logs:
/// short, and of characters that cannot forge or break a log line.
fn is_well_formed(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b))
}

/// The registered pattern `path` matches, as the router matches it (a
/// `{name}` segment is one non-empty segment), or `unmatched`.
pub fn route_of(path: &str) -> &'static str {
    ROUTES
        .iter()
        .map(|(_, pattern)| *pattern)
        .find(|pattern| matches_pattern(pattern, path))
        .unwrap_or(UNMATCHED)
}

fn matches_pattern(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// Middleware function for `actix_web::middleware::from_fn`.
///
/// # Errors
/// Passes on the inner service's error after recording it.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let route = route_of(req.path());
    let method = method_label(req.method().as_str());
    let metrics = req.app_data::<web::Data<Arc<Metrics>>>().cloned();
    // Only built when DEBUG is on for this module: `debug_span!` checks
    // the level before evaluating any field.
    let mut id = None;
    let span = tracing::debug_span!(
        "HTTP request",
        http.method = method,
        http.route = route,
        http.target = tracing::field::Empty,
        http.host = tracing::field::Empty,
        http.client_ip = tracing::field::Empty,
        http.user_agent = tracing::field::Empty,
        request_id = tracing::field::Empty,
    );
    if !span.is_disabled() {
        let this = RequestId::of(req.headers());
        let (target, host, client, agent) = describe(req.request());
        span.record("http.target", target);
        span.record("http.host", host.as_str());
        span.record("http.client_ip", client.as_str());
        span.record("http.user_agent", agent);
        span.record("request_id", tracing::field::display(&this));
        id = Some(this);
    }
    // The request from the response, or none when the inner service failed
    // outright (it took the request with it).
    let result = next.call(req).instrument(span).await;
    let (status, request, error) = match &result {
        Ok(res) => (res.status(), Some(res.request()), res.response().error()),
        Err(err) => (err.as_response_error().status_code(), None, Some(err)),
    };
    if let Some(metrics) = metrics {
        metrics.request(route, method, status.as_u16(), start.elapsed());
    }
    let level = if status.is_server_error() {
        Some(tracing::Level::ERROR)
    } else if status.is_client_error() && tracing::enabled!(tracing::Level::DEBUG) {
        Some(tracing::Level::DEBUG)
    } else {
        None
    };
    if let Some(level) = level {
        log_failure(level, status, route, method, id, request, error, start);
    }
    result
}

/// The request's target (path and query), host, client address and user
/// agent, as the request span and the failure line carry them.
fn describe(req: &HttpRequest) -> (&str, String, String, &str) {
    let info = req.connection_info();
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    let agent = req
        .headers()
        .get(USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    (
        target,
        info.host().to_owned(),
        info.realip_remote_addr().unwrap_or("").to_owned(),
        agent,
    )
}

/// The one line of a failed request, with everything the request span
/// holds (formatted only now).
#[allow(clippy::too_many_arguments)]
fn log_failure(
    level: tracing::Level,
    status: StatusCode,
    route: &str,
    method: &str,
    id: Option<RequestId>,
    request: Option<&HttpRequest>,
    error: Option<&Error>,
    start: Instant,
) {
    let id = id.or_else(|| request.map(|r| RequestId::of(r.headers())));
    let id = id.map_or_else(String::new, |id| id.to_string());
    let (target, host, client, agent) =
        request.map_or(("", String::new(), String::new(), ""), describe);
    let error = error.map_or_else(String::new, ToString::to_string);
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    macro_rules! line {
        ($lvl:expr, $msg:literal) => {
            tracing::event!(
                $lvl,
                request_id = %id,
                http.method = method,
                http.route = route,
                http.target = target,
                http.host = %host,
                http.client_ip = %client,
                http.user_agent = agent,
                http.status_code = status.as_u16(),
                error = %error,
                elapsed_ms,
                $msg
            )
        };
    }
    // The Display of the service's errors never holds a JWT or key.
    if level == tracing::Level::ERROR {
        line!(tracing::Level::ERROR, "request failed");
    } else {
        line!(tracing::Level::DEBUG, "request refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test as web_test;
    use actix_web::{App, HttpResponse};

    /// [`route_of`] labels a path as the router's own matching does, for
    /// every registered route and for near misses.
    #[actix_web::test]
    async fn routes_are_labelled_as_the_router_matches_them() {
        let mut app = App::new();
        for (_, pattern) in ROUTES {
            app = app.service(web::resource(*pattern).to(|req: HttpRequest| async move {
                HttpResponse::Ok().body(req.match_pattern().unwrap_or_default())
            }));
        }
        let app = web_test::init_service(
            app.default_service(web::to(|| async { HttpResponse::Ok().body(UNMATCHED) })),
        )
        .await;
        let mut paths: Vec<String> = ROUTES
            .iter()
            .flat_map(|(_, p)| {
                let concrete = p.replace("{id}", "ABC123");
                [
                    concrete.clone(),
                    format!("{concrete}/"),
                    format!("{concrete}/x"),
                    concrete.replace("ABC123", ""),
                    concrete.to_uppercase(),
                ]
            })
            .collect();
        paths
            .extend(["/", "/t", "/t/", "/t//", "/b/a%2Fb", "/x/y", "/issue?x=1"].map(String::from));
        for path in paths {
            let req = web_test::TestRequest::get().uri(&path).to_request();
            let body = web_test::call_and_read_body(&app, req).await;
            let uri: actix_web::http::Uri = path.parse().unwrap();
            assert_eq!(route_of(uri.path()), body, "{path}");
        }
    }

    /// Log lines written by the JSON subscriber, in memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Counts the spans the subscriber is asked to build.
    #[derive(Clone, Default)]
    struct SpanCount(Arc<AtomicU64>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanCount {
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// At the default `info` level a request builds no span and logs
    /// nothing; a 5xx logs one line with the request's fields (its own
    /// `X-Request-Id` here).
    #[actix_web::test]
    async fn requests_cost_no_span_and_failures_log_one_line() {
        use tracing_subscriber::layer::SubscriberExt;
        let (capture, spans) = (Capture::default(), SpanCount::default());
        let writer = capture.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(spans.clone())
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(move || writer.clone()),
            );
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = web_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(track))
                .route(
                    "/health/live",
                    web::get().to(|| async { HttpResponse::Ok().finish() }),
                )
                .route(
                    "/health/ready",
                    web::get().to(|| async {
                        Err::<HttpResponse, _>(actix_web::error::ErrorInternalServerError("boom"))
                    }),
                ),
        )
        .await;
        let ok = web_test::TestRequest::get()
            .uri("/health/live")
            .to_request();
        assert!(web_test::call_service(&app, ok).await.status().is_success());
        assert_eq!(spans.0.load(Ordering::Relaxed), 0);
        assert!(capture.0.lock().unwrap().is_empty());

        let failing = web_test::TestRequest::get()
            .uri("/health/ready?x=1")
            .insert_header(("x-request-id", "trace-42"))
            .to_request();
        let status = web_test::call_service(&app, failing).await.status();
        assert_eq!(status.as_u16(), 500);
        assert_eq!(spans.0.load(Ordering::Relaxed), 0);
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["message"], "request failed");
        assert_eq!(line["request_id"], "trace-42");
        assert_eq!(line["http.route"], "/health/ready");
        assert_eq!(line["http.method"], "GET");
        assert_eq!(line["http.target"], "/health/ready?x=1");
        assert_eq!(line["http.status_code"], 500);
        assert_eq!(line["error"], "boom");
    }

    #[test]
    fn incoming_request_ids_are_taken_only_when_well_formed() {
        let id = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                actix_web::http::header::HeaderName::from_static("x-request-id"),
                HeaderValue::from_str(v).unwrap(),
            );
            RequestId::of(&h)
        };
        assert_eq!(id("abc-123_X.y:z").to_string(), "abc-123_X.y:z");
        let uuid = "6f1c0f9e-3d5b-4e7a-9d8e-0c2b7a1f4e55";
        assert_eq!(id(uuid).to_string(), uuid);
        for bad in [
            "",
            "has space",
            "quote\"",
            &"a".repeat(MAX_REQUEST_ID + 1),
            "new\tline",
        ] {
            assert!(matches!(id(bad), RequestId::Counted(_)), "{bad:?}");
        }
        let (a, b) = (
            RequestId::of(&HeaderMap::new()),
            RequestId::of(&HeaderMap::new()),
        );
        assert_ne!(a.to_string(), b.to_string());
    }
}
