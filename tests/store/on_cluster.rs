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

/// `rediss+cluster://`: a private cluster whose clients, bus and
/// replication speak TLS (a certificate of a private CA, given as
/// `tls_ca_file`). Allocations reach every master over TLS, spread by the
/// shard tags, are read back, and a change is applied and seen; without the
/// CA the store does not connect.
#[tokio::test]
async fn over_tls_with_a_private_ca() {
    use statuslist::domain::{ListFormat, Status};
    use statuslist::ports::Store;

    use crate::contract::{NOW, allocated, client, req};
    use crate::support::redis_cluster::TlsFiles;

    let certs = tempfile::tempdir().unwrap();
    let tls = TlsFiles::make(certs.path());
    let ca = tls.ca.clone();
    let cluster = tokio::task::spawn_blocking(move || RedisCluster::start_tls(&tls))
        .await
        .expect("a TLS cluster");
    let url = cluster.tls_url();
    assert!(url.starts_with("rediss+cluster://"), "{url}");
    let settings = |ca: Option<std::path::PathBuf>| RedisSettings {
        shards_per_client: 3,
        command_timeout: std::time::Duration::from_secs(5),
        tls_ca_file: ca,
        ..RedisSettings::new(url.clone())
    };
    let store = RedisStore::connect(settings(Some(ca)), StoreSettings::default())
        .await
        .expect("TLS to the cluster with the private CA");
    let c = client("tls-cluster");
    let mut lists = std::collections::HashSet::new();
    let mut first = None;
    for i in 0..30 {
        let a = allocated(
            store
                .allocate(&req(
                    c.as_str(),
                    ListFormat::Token,
                    &format!("tls-{i}"),
                    NOW,
                ))
                .await
                .unwrap(),
        );
        first.get_or_insert((a.list, a.indexes[0]));
        lists.insert(a.list);
    }
    assert_eq!(lists.len(), 3, "one current list per shard");
    for list in &lists {
        let snapshot = store.read_list(list).await.unwrap().expect("the list");
        assert!(snapshot.meta.allocated > 0);
    }
    let (list, idx) = first.unwrap();
    let done = crate::contract::set(&store, &c, list, idx, Status::Invalid, NOW)
        .await
        .unwrap();
    assert!(
        matches!(done, statuslist::ports::SetStatusOutcome::Done { .. }),
        "{done:?}"
    );
    // Every master got keys (the tags sit in the three slot ranges).
    let keys = cluster.keys_per_master("statuslist:*");
    assert!(keys.iter().all(|(_, n)| *n > 0), "{keys:?}");

    let untrusted = RedisStore::connect(settings(None), StoreSettings::default()).await;
    assert!(untrusted.is_err(), "connected without trusting the CA");
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}
