//! Webhook delivery latency with a healthy receiver: two `statuslist serve`
//! replicas (the release binary) on one private Redis, 5,010 status changes
//! and 334 issues with refs through both, every event accepted at once. It
//! prints the time from each write's acknowledgement (the issuer got its
//! answer) to the receiver's first 2xx for its event: p50, p99 and max.
//! Issue 15's target is p99 ≤ 1 s.
//!
//! ```text
//! cargo bench --bench webhooks
//! ```
//!
//! The scenario is the fault suite's (`tests/faults/webhooks.rs`), without
//! the faults: the same receiver, load and checks (none lost, signatures,
//! order per entry).

#![allow(dead_code)]

#[path = "../tests/faults/cluster.rs"]
mod cluster;
#[path = "../tests/faults/net.rs"]
mod net;
#[path = "../tests/common/signature_v1.rs"]
mod signature_v1;
#[path = "../tests/store/support/mod.rs"]
mod support;
#[path = "../tests/faults/webhooks.rs"]
mod webhooks;
#[path = "../tests/faults/workload.rs"]
mod workload;

use support::RedisServer;
use webhooks::{Fault, Flaky, Scale, scenario};

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let latencies = runtime.block_on(scenario(
        Some(RedisServer::start()),
        2,
        // The default `[webhooks]` settings: what a user gets.
        "",
        Flaky::HEALTHY,
        Scale::FULL,
        Fault::None,
        "healthy receiver, 2 replicas",
    ));
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        ms(latencies[i])
    };
    println!(
        "webhooks: {} events; ack -> first 2xx: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        latencies.last().map_or(0.0, |d| ms(*d)),
    );
}
