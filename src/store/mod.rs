//! The storage adapters: each implements the [`crate::ports::Store`] port.
//!
//! - [`common`]: the rules every adapter applies (request checks, the
//!   idempotency and status-change decisions, the allocator cache, damaged
//!   lists);
//! - [`embedded`]: redb, one file, one process (the default);
//! - [`redis`]: Redis, many replicas (production);
//! - [`any`]: the run-time choice between them;
//! - [`metered`]: a decorator that times every call for `/metrics`.
//!
//! Only `startup` picks and builds an adapter; the use cases see the port.

pub mod any;
pub mod common;
pub mod embedded;
pub mod metered;
pub mod redis;

pub use common::DamagedLists;
pub use embedded::{EmbeddedDurability, EmbeddedStore};
