//! The store integration tests, linked as one binary: the Redis adapter
//! (against private redis-servers) and, once merged, the shared contract
//! suite and the embedded adapter.

mod contract;
mod redis;
mod support;
