//! The Redis adapter on a Redis Cluster (3 masters, 3 replicas; the test
//! binary's shared one, `RedisCluster::shared`): the contract suite with
//! each client on one hash tag, and with each spread over 3. Every store
//! has its own key prefix. Redis refuses a script or a pipeline whose keys
//! are in more than one slot, and a command sent to a node that does not
//! serve its slot is redirected, so these runs show every call the adapter
//! makes is one slot and routed by its keys.

use statuslist::ports::StoreSettings;
use statuslist::store::redis::{RedisSettings, RedisStore};

use crate::support::RedisCluster;

/// A store on the shared cluster under a fresh prefix, each client spread
/// over `shards` hash tags.
async fn connect(settings: StoreSettings, shards: u16) -> RedisStore {
    let url = tokio::task::spawn_blocking(|| RedisCluster::shared().url())
        .await
        .expect("the shared cluster");
    let redis = RedisSettings {
        prefix: format!("c{:016x}:", rand::random::<u64>()),
        shards_per_client: shards,
        ..RedisSettings::new(url)
    };
    RedisStore::connect(redis, settings)
        .await
        .expect("connect to the shared cluster")
}

mod one_shard {
    use super::*;

    /// The contract suite's factory: each client on one hash tag.
    pub async fn make_store(settings: StoreSettings) -> (RedisStore, ()) {
        (connect(settings, 1).await, ())
    }

    crate::contract::contract_suite!(make_store);
}

mod three_shards {
    use super::*;

    /// The contract suite's factory: each client spread over 3 hash tags.
    pub async fn make_store(settings: StoreSettings) -> (RedisStore, ()) {
        (connect(settings, 3).await, ())
    }

    crate::redis_sharded::sharded_contract_suite!(make_store);
}
