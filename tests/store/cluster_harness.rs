//! The Redis Cluster harness itself (`support::redis_cluster`): it comes up
//! with three masters and three replicas agreeing on the slots, a key
//! written on the master that owns it is read through the redis crate's
//! cluster client (and the other way round), keys spread over all masters,
//! a killed master's replica is promoted with the master's acknowledged
//! writes, and the nodes die with the test binary even when it aborts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::cluster::ClusterClient;

use crate::support::RedisCluster;
use crate::support::redis_cluster::{MASTERS, describe};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_cluster_serves_keys_on_every_master_and_fails_over_to_a_replica() {
    let cluster = RedisCluster::start();
    let masters = cluster.masters();
    assert_eq!(masters.len(), MASTERS, "{masters:?}");
    assert_eq!(
        masters.iter().map(|m| m.slot_count()).sum::<u32>(),
        16_384,
        "{masters:?}"
    );
    for m in &masters {
        assert_eq!(m.replicas.len(), 1, "one replica per master: {masters:?}");
    }
    let url = cluster.url();
    assert!(url.starts_with("redis+cluster://127.0.0.1:"), "{url}");
    for port in cluster.ports() {
        assert!(url.contains(&format!("127.0.0.1:{port}")), "{url}");
    }

    let client = ClusterClient::new(cluster.node_urls()).unwrap();
    runtime().block_on(async {
        let mut conn = client.get_async_connection().await.unwrap();
        // Written on the owning master alone, read through the cluster.
        for i in 0..30 {
            let key = format!("harness:direct:{{tag{i}}}");
            let owner = cluster.master_of(&key);
            let _: () = cluster
                .query(owner.port, redis::cmd("SET").arg(&key).arg(i))
                .unwrap();
            let got: Option<i64> = conn.get(&key).await.unwrap();
            assert_eq!(got, Some(i), "{key} on {}", owner.port);
        }
        // Written through the cluster, found on every master.
        for i in 0..300 {
            let _: () = conn.set(format!("harness:spread:{i}"), i).await.unwrap();
        }
    });
    let counts = cluster.keys_per_master("harness:spread:*");
    assert_eq!(
        counts.iter().map(|c| c.1).sum::<u64>(),
        300,
        "{}",
        describe(&counts)
    );
    assert!(counts.iter().all(|c| c.1 > 0), "{}", describe(&counts));

    // A write master 0 acknowledged and replicated (WAIT 1) survives its
    // death: the replica that takes over has it.
    let key = (0..)
        .map(|i| format!("harness:kept:{{k{i}}}"))
        .find(|k| masters[0].serves(cluster.slot_of(k)))
        .unwrap();
    let _: () = cluster
        .query(masters[0].port, redis::cmd("SET").arg(&key).arg("before"))
        .unwrap();
    let replicated: i64 = cluster
        .query(masters[0].port, redis::cmd("WAIT").arg(1).arg(5_000))
        .unwrap();
    assert_eq!(replicated, 1);

    let killed = cluster.kill_master(0);
    assert_eq!(killed, masters[0]);
    assert!(!cluster.is_running(killed.port));
    let promoted = cluster.wait_promoted(&killed);
    assert_eq!(promoted.slots, killed.slots);
    assert_eq!(promoted.port, killed.replicas[0]);
    let direct: Option<String> = cluster
        .query(promoted.port, redis::cmd("GET").arg(&key))
        .unwrap();
    assert_eq!(direct.as_deref(), Some("before"));
    runtime().block_on(async {
        let mut conn = client.get_async_connection().await.unwrap();
        let got: Option<String> = conn.get(&key).await.unwrap();
        assert_eq!(got.as_deref(), Some("before"));
        let _: () = conn.set(&key, "after").await.unwrap();
    });
    let direct: Option<String> = cluster
        .query(promoted.port, redis::cmd("GET").arg(&key))
        .unwrap();
    assert_eq!(
        direct.as_deref(),
        Some("after"),
        "the new master takes writes"
    );
}

/// Set in the child run of the test below.
const CHILD: &str = "STATUSLIST_CLUSTER_HARNESS_CHILD";

/// Run as itself, this test starts a copy of the test binary that starts a
/// cluster, prints its ports and aborts (no destructor, no exit handler);
/// afterwards none of those ports may answer. Run as that copy (the
/// variable set), it is the aborting side.
#[test]
fn nodes_die_with_a_test_binary_that_aborts() {
    if std::env::var_os(CHILD).is_some() {
        let cluster = RedisCluster::start();
        let ports: Vec<String> = cluster.ports().iter().map(u16::to_string).collect();
        let dirs: Vec<String> = cluster
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        println!("DIRS {}", dirs.join("\t"));
        println!("PORTS {}", ports.join(","));
        std::process::abort();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "cluster_harness::nodes_die_with_a_test_binary_that_aborts",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    // The directories are left behind by the abort: removed here.
    let dirs = lines
        .find_map(|l| l.strip_prefix("DIRS ").map(str::to_owned))
        .expect("the child printed its directories");
    let ports: Vec<u16> = lines
        .find_map(|l| l.strip_prefix("PORTS ").map(str::to_owned))
        .expect("the child printed its ports")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let status = child.wait().unwrap();
    for dir in dirs.split('\t') {
        let _ = std::fs::remove_dir_all(dir);
    }
    assert!(!status.success(), "the child aborted: {status}");
    assert_eq!(ports.len(), 6);
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in ports {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "the node on port {port} outlived the test binary"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
