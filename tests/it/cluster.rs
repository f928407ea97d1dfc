//! The pipeline on Redis Cluster: queues, id cache and board on a cluster the test starts
//! itself (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`).

use std::time::Duration;

use crate::support::*;
use domain::QueueName;
use testkit::RedisCluster;

/// The `i`th POST of a steady flow of 100 a second from `started` (one the consumer keeps up
/// with): its id and status code.
async fn paced_post(stack: &Stack, started: std::time::Instant, i: u64) -> (uuid::Uuid, u16) {
    tokio::time::sleep_until(
        tokio::time::Instant::from_std(started) + Duration::from_millis(10 * i),
    )
    .await;
    let id = uuid::Uuid::now_v7();
    let body = serde_json::json!({"id": id, "amount": 100, "currency": "EUR"});
    (id, stack.post(body).await.0)
}

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
        .map(|q| (*q, cluster.owner_of(&ready_key(&stack, *q))))
        .collect();
    eprintln!("queue → primary port: {owners:?}");

    let ids = post_all(&stack, 500).await;
    stack
        .settles(&ids, 180, "every transaction settled on the cluster")
        .await;
    assert_eq!(stack.statuses().await.len(), ids.len(), "no other rows");
    stack.shutdown().await;
}

/// What a failover run found.
struct Failover {
    /// Transactions answered 201.
    accepted: usize,
    /// Of those, when each one that never got a row was answered: the failover lost them.
    lost: Vec<Duration>,
    /// The longest time between two 201s while the primary was down and replaced.
    stall: Duration,
}

/// When the failover run kills the primary.
const KILL_AT: Duration = Duration::from_millis(1_500);

/// POSTs for 8 s while the primary that owns the `create` queue's slot is SIGKILLed 1.5 s in;
/// one of its two replicas takes over (the other stays its replica, so acceptance that waits
/// for one replica can go on). Every transaction with a row must end terminal and consistent.
async fn failover_run(ack_replicas: u32) -> Failover {
    use futures::StreamExt;
    let mut cluster = RedisCluster::start(3, 2, 1_000);
    let mut options = Options {
        redis_url: Some(cluster.url()),
        redis_cluster: true,
        ..Options::default()
    };
    options.producer.redis_ack_replicas = ack_replicas;
    let stack = spawn_stack(options).await;
    let create_key = ready_key(&stack, QueueName::Create);
    let primary = cluster.owner_of(&create_key);

    let started = std::time::Instant::now();
    let run_for = Duration::from_secs(8);
    let stack_ref = &stack;
    let posts = futures::stream::unfold(0u64, |i| async move {
        (started.elapsed() < run_for).then_some((i, i + 1))
    })
    .map(|i| async move {
        let (id, code) = paced_post(stack_ref, started, i).await;
        (id, code, started.elapsed())
    })
    .buffer_unordered(16)
    .collect::<Vec<_>>();
    let kill = async {
        tokio::time::sleep(KILL_AT).await;
        cluster.kill(primary);
    };
    let (answers, ()) = tokio::join!(posts, kill);
    let mut codes = std::collections::BTreeMap::new();
    for (_, code, _) in &answers {
        *codes.entry(*code).or_insert(0) += 1;
    }
    let slow = answers
        .iter()
        .filter(|(_, _, at)| *at > KILL_AT && *at < Duration::from_millis(4_000))
        .count();
    eprintln!("answers by status: {codes:?}; answered between 1.5 s and 4 s: {slow}");
    cluster.wait_ok(Duration::from_secs(30));
    assert_ne!(
        cluster.owner_of(&create_key),
        primary,
        "a replica took the slot over"
    );

    let mut accepted: Vec<_> = answers.iter().filter(|(_, code, _)| *code == 201).collect();
    accepted.sort_by_key(|(_, _, at)| *at);
    let stall = accepted
        .windows(2)
        .map(|w| w[1].2 - w[0].2)
        .max()
        .unwrap_or_default();
    let refused = answers.iter().filter(|(_, code, _)| *code != 201).count();
    assert!(refused > 0, "the kill hit requests in flight");
    let after_kill = accepted.iter().filter(|(_, _, at)| *at > KILL_AT).count();
    assert!(
        after_kill > 0,
        "the pipeline accepted again after the failover"
    );

    // Everything the consumer could still find settles; what has no row by then was lost.
    let create = stack.queue::<serde_json::Value>(QueueName::Create);
    eventually(
        Duration::from_secs(60),
        "the create queue drained",
        || async {
            match create.counts().await {
                Ok(c) => c.waiting + c.scheduled + c.running == 0,
                Err(e) => {
                    eprintln!("counts: {e}");
                    false
                }
            }
        },
    )
    .await;
    let rows = stack.statuses().await;
    let with_rows: Vec<uuid::Uuid> = answers
        .iter()
        .map(|(id, _, _)| *id)
        .filter(|id| rows.contains_key(id))
        .collect();
    stack
        .settles(&with_rows, 120, "every transaction with a row terminal")
        .await;
    let lost = accepted
        .iter()
        .filter(|(id, _, _)| !rows.contains_key(id))
        .map(|(_, _, at)| *at)
        .collect();
    stack.shutdown().await;
    Failover {
        accepted: accepted.len(),
        lost,
        stall,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failover_loses_no_201_when_acceptance_waits_for_a_replica() {
    let run = failover_run(1).await;
    eprintln!(
        "REDIS_ACK_REPLICAS=1: {} accepted, {} lost, longest stall {:?}",
        run.accepted,
        run.lost.len(),
        run.stall
    );
    assert_eq!(run.lost, Vec::<Duration>::new(), "no 201 lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failover_without_replica_acks_loses_only_201s_in_flight_at_the_kill() {
    let run = failover_run(0).await;
    eprintln!(
        "REDIS_ACK_REPLICAS=0: {} accepted, lost {:?}, longest stall {:?}",
        run.accepted, run.lost, run.stall
    );
    // Only a reservation the dead primary ran and had not replicated can be lost: one answered
    // by the kill plus the longest a POST may take (its 2 s response timeout). Whatever the
    // promoted replica accepted afterwards is kept.
    let latest = KILL_AT + Duration::from_secs(2);
    assert!(
        run.lost.iter().all(|at| *at <= latest),
        "a 201 answered after {latest:?} was lost: {:?}",
        run.lost
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_follow_a_queue_whose_slot_moves_while_they_run() {
    use futures::StreamExt;
    let cluster = RedisCluster::start(3, 0, 2_000);
    let stack = spawn_stack(Options {
        redis_url: Some(cluster.url()),
        redis_cluster: true,
        ..Options::default()
    })
    .await;
    // The `process` queue moves: its workers block on its node and must find the new one.
    let key = ready_key(&stack, QueueName::Process);
    let from = cluster.owner_of(&key);
    let to = *cluster
        .ports
        .iter()
        .find(|p| **p != from)
        .expect("another primary");

    let started = std::time::Instant::now();
    let stack_ref = &stack;
    let posts = futures::stream::iter(0..300u64)
        .map(|i| paced_post(stack_ref, started, i))
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let reshard = async {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        // The reshard runs redis-cli and waits: off the runtime's async work.
        let moved = tokio::task::block_in_place(|| cluster.move_slot_of(&key, to));
        assert!(moved > 0, "the slot held the queue's live keys");
    };
    let (answers, ()) = tokio::join!(posts, reshard);
    assert_eq!(cluster.owner_of(&key), to, "the slot moved");
    let ids: Vec<uuid::Uuid> = answers
        .iter()
        .filter(|(_, code)| *code == 201)
        .map(|(id, _)| *id)
        .collect();
    assert!(ids.len() >= 290, "accepted through the move: {}", ids.len());
    stack
        .settles(&ids, 120, "every transaction settled after the move")
        .await;
    stack.shutdown().await;
}

/// The Redis key of `queue`'s ready list: where the queue lives in the cluster.
fn ready_key(stack: &Stack, queue: QueueName) -> String {
    stack
        .queue::<serde_json::Value>(queue)
        .keys()
        .ready()
        .to_string()
}
