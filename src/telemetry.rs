//! Logging setup: `tracing` with JSON lines when stdout is not a terminal
//! (log shippers parse them) and readable lines when it is. `RUST_LOG`
//! overrides the default `info` filter.
//!
//! Nothing logs request bodies, JWTs or keys: handlers record ids, outcomes
//! and timings only. Per-request logging (request ids, the DEBUG request
//! span, one line per failed request) is the request middleware's,
//! [`crate::http::metrics_mw`]: nothing is formatted for a request unless a
//! line is written at the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls (e.g. from tests that
/// build several apps) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if std::io::stdout().is_terminal() {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
    // Already installed: keep the first one.
    let _ = result;
}
