//! The store tests, in one binary so that they link once: the shared contract
//! suite (`contract`), run by each adapter's module against that adapter, and
//! the Redis harness (`support`) that starts private redis-servers and
//! Redis Clusters (checked by `cluster_harness`).

mod cluster_durability;
mod cluster_harness;
mod contract;
mod embedded;
mod entries_contract;
mod events_contract;
mod on_cluster;
mod redis;
mod redis_sharded;
mod support;
