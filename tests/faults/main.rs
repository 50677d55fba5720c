//! Faults under load, end to end with the built binary: several
//! `statuslist serve` processes on one private Redis (a unix socket in a
//! temporary directory), a concurrent stream of issues and status changes
//! with replays, and faults injected into the stream: a replica killed with
//! SIGKILL, Redis itself killed with SIGKILL and restarted from its
//! append-only file, and a master of a Redis Cluster killed with SIGKILL.
//!
//! Each scenario has a short version that `cargo test` runs and a long one
//! (ten times the requests) behind `#[ignore]`:
//!
//! ```text
//! cargo test --release --test faults -- --ignored
//! ```
//!
//! The load is planned from one random seed, printed by each test;
//! `FAULTS_SEED=N` repeats a plan. Checks are on outcomes only; every wait
//! has a generous liveness bound and nothing asserts speed.

#[path = "../store/support/mod.rs"]
mod support;

mod cluster;
mod load;
mod net;
mod on_redis_cluster;
mod redis_restart;
#[path = "../common/signature_v1.rs"]
mod signature_v1;
mod verify;
mod webhooks;
mod workload;
