//! A 201 survives a Redis crash: with `appendonly yes` and `appendfsync always`, every
//! transaction answered 201 is still there after a SIGKILL and a restart of Redis, and reaches
//! a terminal status, submitted once, with the client told.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::support::*;
use domain::QueueName;
use futures::{StreamExt, stream};
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_transactions_survive_a_redis_crash_while_the_consumer_is_stopped() {
    let mut redis = PrivateRedis::start().await.expect("a private redis");
    let stack = spawn_stack(Options::without_consumer().on_redis(redis.url())).await;
    let (code, ready) = stack.readyz().await;
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["durable_acceptance"], true, "{ready}");

    let ids: Vec<Uuid> = (0..2_000).map(|_| Uuid::now_v7()).collect();
    let stack_ref = &stack;
    let codes: Vec<u16> = stream::iter(ids.iter())
        .map(|id| async move { stack_ref.post(json!({"id": id})).await.0 })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(codes.iter().all(|c| *c == 201));
    // With the consumer stopped, each accepted transaction is only a job in Redis.
    let waiting = stack.queue_counts(QueueName::Create).await.waiting;
    assert_eq!(
        waiting,
        ids.len() as u64,
        "the crash hits every accepted job"
    );

    redis.kill();
    redis.restart().await.expect("redis restarted");
    assert_eq!(
        stack.queue_counts(QueueName::Create).await.waiting,
        waiting,
        "every job is back after the restart"
    );
    let _consumer = ChildConsumer::spawn(&stack.consumer_config);
    stack
        .settles(&ids, 120, "every job back after the Redis restart settled")
        .await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_transactions_survive_a_redis_crash_mid_run() {
    let mut redis = PrivateRedis::start().await.expect("a private redis");
    let stack = Arc::new(spawn_stack(Options::default().on_redis(redis.url())).await);
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let posting = {
        let (stack, accepted) = (stack.clone(), accepted.clone());
        tokio::spawn(async move {
            stream::iter(0..1_500)
                .map(|_| {
                    let (stack, accepted) = (stack.clone(), accepted.clone());
                    async move {
                        let id = Uuid::now_v7();
                        let r = stack
                            .producer_request(Method::POST, "/transaction")
                            .json(&json!({"id": id}))
                            .send()
                            .await;
                        // Only a 201 is a promise; a 503 or a broken connection is not.
                        if r.is_ok_and(|r| r.status() == 201) {
                            accepted.lock().unwrap().push(id);
                        }
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await;
        })
    };
    eventually(
        Duration::from_secs(60),
        "a few hundred accepted",
        || async { accepted.lock().unwrap().len() >= 400 },
    )
    .await;
    let at_kill = accepted.lock().unwrap().clone();
    let unfinished = at_kill.len() - stack.terminal_among(&at_kill).await;
    redis.kill();
    assert!(
        unfinished > 0,
        "the crash must hit work in progress ({} accepted, none unfinished)",
        at_kill.len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart().await.expect("redis restarted");
    posting.await.unwrap();

    let ids = accepted.lock().unwrap().clone();
    let what = format!(
        "every accepted transaction ({unfinished} unfinished at the crash) settled after the Redis restart"
    );
    stack.settles(&ids, 120, &what).await;
    match Arc::try_unwrap(stack) {
        Ok(stack) => stack.shutdown().await,
        Err(_) => panic!("the stack is still shared"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_is_noticed_once_and_everything_with_a_row_ends_terminal() {
    let redis = PrivateRedis::start().await.expect("a private redis");
    let mut options = Options {
        redis_url: Some(redis.url()),
        thirdparty: thirdparty_sim::Behaviour {
            // Outcomes come late, and half only by polling: the flush meets work in flight.
            resolve_min_ms: 800,
            resolve_max_ms: 1_500,
            webhook_drop_rate: rate("0.5"),
            ..Options::default().thirdparty
        },
        ..Options::default()
    };
    options.consumer.sweep_interval = Duration::from_millis(300);
    let stack = spawn_stack(options).await;
    let ids = post_all(&stack, 100).await;
    eventually(
        Duration::from_secs(30),
        "every transaction has a row",
        || async { stack.statuses().await.len() == ids.len() },
    )
    .await;
    let terminal = stack.terminal_among(&ids).await;
    assert!(
        terminal < ids.len(),
        "the flush hits unfinished work ({terminal} terminal)"
    );

    let client = queue::redis_client(&queue::RedisSettings::url(&redis.url())).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .expect("FLUSHALL");

    stack
        .settles(&ids, 90, "everything with a row terminal after the flush")
        .await;
    // Both services run in this test's process and share its metrics registry (with the
    // other tests, hence the prefix): one loss each is 2.
    let this_stack = format!("queue_prefix=\"{}\"", stack.prefix);
    assert_eq!(
        metric(&stack.consumer, "redis_data_loss_total", &this_stack).await,
        2,
        "the producer and the consumer each noticed the loss, once"
    );
    stack.shutdown().await;
}
