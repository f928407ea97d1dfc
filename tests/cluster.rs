//! The pipeline on Redis Cluster: queues, id cache and board on a cluster the test starts
//! itself (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`).

#[path = "../crates/queue/tests/support/cluster.rs"]
mod cluster;
mod support;

use std::time::Duration;

use cluster::RedisCluster;
use support::*;
use txn_core::QueueName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_on_a_three_primary_cluster_under_every_fault() {
    let cluster = RedisCluster::start(3, 0, 2_000);
    let mut options = heavy_faults();
    options.redis_url = Some(cluster.url());
    options.redis_cluster = true;
    let stack = spawn_stack(options).await;
    let (code, ready) = stack.readyz().await;
    assert_eq!(code, 200, "{ready}");

    // Where the queues live (the prefix is random: usually on more than one primary, and a
    // node asked for a key it does not own answers MOVED, so nothing works unrouted).
    let owners: Vec<(QueueName, u16)> = QueueName::ALL
        .iter()
        .map(|q| {
            (
                *q,
                cluster.owner_of(stack.queue::<serde_json::Value>(*q).keys().ready()),
            )
        })
        .collect();
    eprintln!("queue → primary port: {owners:?}");

    let ids = post_all(&stack, 500).await;
    stack
        .settles(
            &ids,
            Duration::from_secs(180),
            "every transaction settled on the cluster",
        )
        .await;
    assert_eq!(stack.statuses().await.len(), ids.len(), "no other rows");
    stack.shutdown().await;
}
