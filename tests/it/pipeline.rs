//! The happy path end to end: hundreds of concurrent POSTs, every transaction terminal in
//! Postgres and over HTTP with its history, submitted once, and the client told each outcome.

use std::{collections::HashSet, time::Duration};

use crate::support::*;
use futures::{StreamExt, stream};
use serde_json::json;
use uuid::Uuid;

const TRANSACTIONS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transaction_reaches_a_terminal_status_and_the_client_hears_it() {
    let stack = spawn_stack(Options::default()).await;

    let ids: Vec<Uuid> = (0..TRANSACTIONS).map(|_| Uuid::now_v7()).collect();
    let answers: Vec<(u16, serde_json::Value)> = stream::iter(ids.iter())
        .map(|id| stack.post(json!({"id": id, "amount": 1250, "currency": "EUR"})))
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        answers
            .iter()
            .all(|(code, body)| *code == 201 && body["status"] == "pending"),
        "every POST answered 201 pending"
    );

    let (code, body) = stack
        .post(json!({"id": ids[0], "amount": 1250, "currency": "EUR"}))
        .await;
    assert_eq!(code, 200, "a known id with the same parameters: {body}");
    let (code, _) = stack
        .post(json!({"id": ids[0], "amount": 99, "currency": "EUR"}))
        .await;
    assert_eq!(code, 409, "a known id with another amount");

    eventually(
        Duration::from_secs(90),
        "the client heard every transaction",
        || async { stack.received().await.len() == TRANSACTIONS },
    )
    .await;

    let statuses = stack.statuses().await;
    assert_eq!(statuses.len(), TRANSACTIONS);
    let received = stack.received().await;
    for id in &ids {
        let status = &statuses[id];
        assert!(
            status == "completed" || status == "declined",
            "{id} is {status}"
        );
        let (code, body) = stack.get(&id.to_string()).await;
        assert_eq!(code, 200);
        assert_eq!(&body["status"], status.as_str());
        assert_eq!(
            each_str(&body["history"], "status"),
            ["pending", status.as_str()],
            "{id}'s history"
        );
        let told = &received[id];
        assert!(
            told.iter().all(|r| &r.status == status),
            "{id}: the client was told {told:?}, Postgres says {status}"
        );
        let deliveries: HashSet<&str> = told.iter().map(|r| r.delivery_id.as_str()).collect();
        assert_eq!(
            deliveries.len(),
            1,
            "one notification per transaction (retries share its delivery id)"
        );
    }
    let declined = statuses.values().filter(|s| *s == "declined").count();
    assert!(
        declined > 0 && declined < TRANSACTIONS,
        "both outcomes occur ({declined} declined)"
    );

    let heard: serde_json::Value = stack
        .http
        .get(format!("{}/stats", stack.client))
        .json_answered()
        .await;
    assert_eq!(
        heard["transactions"], TRANSACTIONS,
        "the client simulator's count (txn-bench relies on it)"
    );
    let stats = stack.thirdparty_stats().await;
    assert_eq!(
        stats.created, TRANSACTIONS as u64,
        "each transaction submitted once"
    );
    assert_eq!(stats.conflicts, 0, "no blind re-submission");
    stack.shutdown().await;
}

/// The budget: a transaction's whole path, from the POST to the client's notification
/// (the commands inside the queue's scripts included), costs at most this many Redis commands.
/// One script per push cost 34; concurrent pushes now share scripts.
const REDIS_COMMANDS_PER_TRANSACTION: f64 = 30.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_cost_at_most_30_redis_commands_each() {
    // A Redis of its own, so that its command counts are this test's alone.
    let redis = PrivateRedis::start().await.expect("a private redis");
    // The setting the budget is set for: the third party resolves within 5 ms, by webhook.
    let mut options = Options::default().on_redis(redis.url());
    options.resolve_within(0, 5);
    let stack = spawn_stack(options).await;
    let mut conn = bench::redis(&redis.url(), false).expect("redis connection");
    let before = bench::command_counts(&mut conn)
        .await
        .expect("commandstats");
    let ids = post_all(&stack, TRANSACTIONS).await;
    stack.settles(&ids, 90, "every transaction settled").await;
    // The first polls of transactions a webhook finished run too (they find the row terminal).
    eventually(Duration::from_secs(30), "every queue drained", || async {
        let mut busy = 0;
        for &name in domain::QueueName::ALL {
            let counts = stack.queue_counts(name).await;
            busy += counts.waiting + counts.scheduled + counts.running;
        }
        busy == 0
    })
    .await;
    let after = bench::command_counts(&mut conn)
        .await
        .expect("commandstats");
    let per_transaction = bench::delta(&before, &after) as f64 / TRANSACTIONS as f64;
    eprintln!("{per_transaction:.1} Redis commands per transaction");
    assert!(
        per_transaction <= REDIS_COMMANDS_PER_TRANSACTION,
        "{per_transaction:.1} Redis commands per transaction"
    );
    stack.shutdown().await;
}
