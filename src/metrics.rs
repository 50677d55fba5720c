//! Prometheus metrics: one registry per application, rendered in the text
//! format at `/metrics`.
//!
//! Callers pass the values and labels in (`http`, the store decorator), so
//! this module depends on nothing but `domain`.
//!
//! Labels are bounded: routes are the registered patterns (or `unmatched`),
//! methods are the standard ones (or `other`), statuses are HTTP codes,
//! store operations and cache outcomes are fixed sets. The one per-list label (`list`, on the fill gauges) grows with the
//! number of lists, which is what an operator watching fill wants. The
//! webhook gauges are per client with a webhook (configured, so bounded).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::ListFormat;

/// Every metric of the service.
///
/// The per-request metrics keep their handles (one counter and one
/// histogram per label set) once resolved: `with_label_values` hashes the
/// label texts and locks the vector on every call, which every request
/// paid twice. A series still appears on `/metrics` only once it has been
/// recorded, as before.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    allocations: IntCounterVec,
    list_fill: GaugeVec,
    store_latency: HistogramVec,
    store_errors: IntCounterVec,
    token_cache: IntCounterVec,
    jwks: IntGaugeVec,
    webhook_pending: IntGaugeVec,
    webhook_deliveries: IntCounterVec,
    webhook_latency: Histogram,
    request_handles: Arc<Handles<RequestLabels, (IntCounter, Histogram)>>,
    allocation_handles: Arc<Handles<ListFormat, IntCounter>>,
    store_handles: Arc<Handles<&'static str, Histogram>>,
    token_cache_handles: Arc<Handles<&'static str, IntCounter>>,
}

/// The labels of a request series: route, method, status.
type RequestLabels = (&'static str, &'static str, u16);

/// Metric handles by label set, resolved on first use. The label sets are
/// bounded (see the module documentation), so the map is too.
#[derive(Debug)]
struct Handles<K, V>(RwLock<HashMap<K, V>>);

impl<K, V> Default for Handles<K, V> {
    fn default() -> Self {
        Handles(RwLock::new(HashMap::new()))
    }
}

impl<K: Hash + Eq + Copy, V> Handles<K, V> {
    /// Runs `use_it` on the handle of `key`, resolving it with `resolve` the
    /// first time. A poisoned lock only means a panic elsewhere while
    /// inserting a handle; the map is still whole.
    fn with<R>(&self, key: K, resolve: impl FnOnce() -> V, use_it: impl FnOnce(&V) -> R) -> R {
        {
            let map = self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(handle) = map.get(&key) {
                return use_it(handle);
            }
        }
        let mut map = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        use_it(map.entry(key).or_insert_with(resolve))
    }
}

/// The `method` label of a request: the methods of RFC 9110 (and PATCH) by
/// name, anything else `other`. A client may send any token as a method, and
/// each new label value would be a new series kept for the process's life.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// Buckets of the time from a change to its webhook delivery, in seconds:
/// well under a second when the receiver is up, hours when retries waited
/// out an outage (up to the maximum age, a day by default).
const DELIVERY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    14_400.0, 86_400.0,
];

/// Latency buckets in seconds, from 100 µs to 5 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    /// A fresh registry with every metric registered.
    ///
    /// # Errors
    /// [`prometheus::Error`] if a metric is malformed (a programming error
    /// caught by the tests).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route, method and status",
            )
            .buckets(BUCKETS.to_vec()),
            &["route", "method", "status"],
        )?;
        let allocations = IntCounterVec::new(
            Opts::new(
                "statuslist_allocations_total",
                "Indexes issued, by list format",
            ),
            &["format"],
        )?;
        let list_fill = GaugeVec::new(
            Opts::new(
                "statuslist_list_fill_ratio",
                "Share of a list's indexes handed out, as of its last publication",
            ),
            &["list"],
        )?;
        let store_latency = HistogramVec::new(
            HistogramOpts::new("statuslist_store_duration_seconds", "Store call latency")
                .buckets(BUCKETS.to_vec()),
            &["op"],
        )?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "statuslist_store_errors_total",
                "Failed store calls by kind",
            ),
            &["op", "kind"],
        )?;
        let token_cache = IntCounterVec::new(
            Opts::new(
                "statuslist_token_cache_total",
                "List GETs by cache outcome (hit, confirmed, rebuilt, stale)",
            ),
            &["outcome"],
        )?;
        let jwks = IntGaugeVec::new(
            Opts::new(
                "statuslist_jwks_fetches_total",
                "Client JWKS fetches since start, by result",
            ),
            &["result"],
        )?;
        let webhook_pending = IntGaugeVec::new(
            Opts::new(
                "statuslist_webhook_events_pending",
                "Events waiting for webhook delivery (waiting, held or scheduled), by client",
            ),
            &["client"],
        )?;
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "statuslist_webhook_deliveries_total",
                "Webhook delivery attempts by outcome (delivered, retried, dead)",
            ),
            &["outcome"],
        )?;
        let webhook_latency = Histogram::with_opts(
            HistogramOpts::new(
                "statuslist_webhook_delivery_seconds",
                "Time from a change to the 2xx answer of its webhook delivery",
            )
            .buckets(DELIVERY_BUCKETS.to_vec()),
        )?;
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(allocations.clone()),
            Box::new(list_fill.clone()),
            Box::new(store_latency.clone()),
            Box::new(store_errors.clone()),
            Box::new(token_cache.clone()),
            Box::new(jwks.clone()),
            Box::new(webhook_pending.clone()),
            Box::new(webhook_deliveries.clone()),
            Box::new(webhook_latency.clone()),
        ] {
            registry.register(collector)?;
        }
        Ok(Metrics {
            registry,
            requests,
            latency,
            allocations,
            list_fill,
            store_latency,
            store_errors,
            token_cache,
            jwks,
            webhook_pending,
            webhook_deliveries,
            webhook_latency,
            request_handles: Arc::default(),
            allocation_handles: Arc::default(),
            store_handles: Arc::default(),
            token_cache_handles: Arc::default(),
        })
    }

    /// Records one HTTP request: `route` is the registered pattern (or
    /// `unmatched`), `method` is reduced to [`method_label`], `status` is the
    /// HTTP status code.
    pub fn request(&self, route: &'static str, method: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.request_handles.with(
            (route, method, status),
            || {
                let status = status.to_string();
                let labels = [route, method, status.as_str()];
                (
                    self.requests.with_label_values(&labels),
                    self.latency.with_label_values(&labels),
                )
            },
            |(count, latency)| {
                count.inc();
                latency.observe(elapsed.as_secs_f64());
            },
        );
    }

    /// Records `count` issued indexes (one request may ask for many).
    pub fn allocations(&self, format: ListFormat, count: u64) {
        self.allocation_handles.with(
            format,
            || self.allocations.with_label_values(&[format.name()]),
            |c| c.inc_by(count),
        );
    }

    /// Records a list's fill as seen when it was last published.
    pub fn list_fill(&self, list: &str, allocated: u64, capacity: u64) {
        let ratio = allocated as f64 / capacity.max(1) as f64;
        self.list_fill.with_label_values(&[list]).set(ratio);
    }

    /// Records one store call; `error` is the failure kind, if it failed.
    pub fn store_call(&self, op: &'static str, elapsed: Duration, error: Option<&str>) {
        self.store_handles.with(
            op,
            || self.store_latency.with_label_values(&[op]),
            |h| h.observe(elapsed.as_secs_f64()),
        );
        if let Some(kind) = error {
            self.store_errors.with_label_values(&[op, kind]).inc();
        }
    }

    /// Records how a list GET was served; `outcome` is one of the fixed
    /// cache outcome labels (`hit`, `confirmed`, `rebuilt`, `stale`).
    pub fn token_cache(&self, outcome: &'static str) {
        self.token_cache_handles.with(
            outcome,
            || self.token_cache.with_label_values(&[outcome]),
            IntCounter::inc,
        );
    }

    /// Records one webhook delivery attempt: `outcome` is `delivered`,
    /// `retried` or `dead`; `latency`, for a delivery, the time from the
    /// change to the 2xx answer.
    pub fn webhook_attempt(&self, outcome: &'static str, latency: Option<Duration>) {
        // Three outcomes, a handful of attempts per event: resolving the
        // handle each time costs nothing worth caching.
        self.webhook_deliveries.with_label_values(&[outcome]).inc();
        if let Some(l) = latency {
            self.webhook_latency.observe(l.as_secs_f64());
        }
    }

    /// Records how many events of `client` wait for delivery.
    pub fn webhook_pending(&self, client: &str, count: u64) {
        self.webhook_pending
            .with_label_values(&[client])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The text exposition of every metric, with the client JWKS fetch
    /// counters as of now (`fetches` in all, `failures` of them failed),
    /// which the caller reads at scrape time.
    pub fn render(&self, fetches: u64, failures: u64) -> String {
        self.jwks
            .with_label_values(&["ok"])
            .set(i64::try_from(fetches.saturating_sub(failures)).unwrap_or(i64::MAX));
        self.jwks
            .with_label_values(&["error"])
            .set(i64::try_from(failures).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        // Encoding into a Vec only fails for malformed metrics, which the
        // tests would catch; an empty page is the safe answer then.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            out.clear();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_metrics_render_with_their_labels() {
        let m = Metrics::new().unwrap();
        m.webhook_attempt("delivered", Some(Duration::from_millis(300)));
        m.webhook_attempt("retried", None);
        m.webhook_attempt("retried", None);
        m.webhook_attempt("dead", None);
        m.webhook_pending("issuer-a", 7);
        m.webhook_pending("issuer-a", 5);
        let text = m.render(0, 0);
        for line in [
            "statuslist_webhook_deliveries_total{outcome=\"delivered\"} 1",
            "statuslist_webhook_deliveries_total{outcome=\"retried\"} 2",
            "statuslist_webhook_deliveries_total{outcome=\"dead\"} 1",
            "statuslist_webhook_events_pending{client=\"issuer-a\"} 5",
            "statuslist_webhook_delivery_seconds_count 1",
            "statuslist_webhook_delivery_seconds_bucket{le=\"0.5\"} 1",
            "statuslist_webhook_delivery_seconds_bucket{le=\"0.25\"} 0",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }
}
