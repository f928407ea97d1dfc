//! Correct under an unreliable third party, a failing client, a crashing consumer and a Redis
//! that loses its data: every transaction ends terminal, consistent with the third party,
//! submitted once, and told to the client.

use std::time::Duration;

use crate::support::*;
use domain::QueueName;
use uuid::Uuid;

async fn count_terminal(stack: &Stack) -> usize {
    stack
        .statuses()
        .await
        .values()
        .filter(|s| *s != "pending")
        .count()
}

/// Every one of `ids` settles consistently within `secs` seconds, and they are all there is;
/// returns how long it took.
async fn settle_all(stack: &Stack, ids: &[Uuid], secs: u64, what: &str) -> Duration {
    let took = stack.settles(ids, secs, what).await;
    assert_eq!(stack.statuses().await.len(), ids.len(), "no other rows");
    took
}

/// After a `fault` that hit work in progress as `hit` says, every transaction settles; the
/// stack is shut down.
async fn settles_after(stack: Stack, ids: &[Uuid], fault: &str, hit: &str) {
    let what = format!("every transaction settled after the {fault}");
    let took = settle_all(&stack, ids, 120, &what).await;
    eprintln!("{hit}; settled {took:?} after the {fault}");
    stack.shutdown().await;
}

/// A stack with `options` settles 50 transactions, each resolved by `source` (`poll` or
/// `webhook`); the stack is handed back for the test's own checks.
async fn all_resolved_by(options: Options, source: &str) -> Stack {
    let stack = spawn_stack(options).await;
    let ids = post_all(&stack, 50).await;
    settle_all(&stack, &ids, 60, "every transaction settled").await;
    let mut sources = Vec::new();
    for id in &ids {
        let (_, body) = stack.get(&id.to_string()).await;
        sources.push(body["history"][1]["source"].clone());
    }
    assert_eq!(sources, vec![source; ids.len()]);
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_heavy_faults_every_transaction_ends_consistent_with_the_third_party() {
    let stack = spawn_stack(heavy_faults()).await;
    let ids = post_all(&stack, 200).await;
    settle_all(&stack, &ids, 120, "every transaction settled").await;
    let stats = stack.thirdparty_stats().await;
    assert!(
        stats.webhooks_dropped > 0 && stats.status_checks > 0,
        "the faults happened: {stats:?}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_run_loses_nothing() {
    let mut options = heavy_faults();
    options.run_consumer = false;
    options.consumer.lease = Duration::from_secs(2);
    let stack = spawn_stack(options).await;
    let child = ChildConsumer::spawn(&stack.consumer_config);
    let ids = post_all(&stack, 400).await;
    eventually(
        Duration::from_secs(60),
        "a quarter of the transactions finished",
        || async { count_terminal(&stack).await >= ids.len() / 4 },
    )
    .await;
    let (running, terminal) = (stack.running_jobs().await, count_terminal(&stack).await);
    child.kill();
    let in_flight = ids.len() - terminal;
    assert!(
        in_flight > 0 && running > 0,
        "the kill must hit work in progress: {in_flight} transactions unfinished, {running} jobs leased"
    );

    let _restarted = ChildConsumer::spawn(&stack.consumer_config);
    let hit = format!("killed with {in_flight} unfinished and {running} jobs leased");
    settles_after(stack, &ids, "kill", &hit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_loses_every_queue_key_the_sweeper_brings_each_transaction_home() {
    let mut options = Options::default();
    options.resolve_within(500, 1500);
    options.thirdparty.webhook_drop_rate = rate("0.5");
    let stack = spawn_stack(options).await;
    let ids = post_all(&stack, 200).await;
    // The rows must exist: a transaction lost before its row was written is another story
    // (durable acceptance).
    eventually(Duration::from_secs(60), "every row created", || async {
        stack.statuses().await.len() == ids.len()
    })
    .await;
    let unfinished = ids.len() - count_terminal(&stack).await;
    let wiped = delete_keys(&stack.prefix).await;
    assert!(
        unfinished > 0 && wiped > 0,
        "the wipe must hit work in progress: {unfinished} transactions unfinished, {wiped} keys deleted"
    );
    let hit = format!("{unfinished} unfinished at the wipe of {wiped} keys");
    settles_after(stack, &ids, "wipe", &hit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_alone_resolve_transactions_when_polling_is_off() {
    let mut options = Options::default();
    options.consumer.schedules.poll_initial_ms = 3_600_000;
    options.consumer.schedules.poll_max_interval_ms = 3_600_000;
    let stack = all_resolved_by(options, "webhook").await;
    assert_eq!(
        stack.thirdparty_stats().await.status_checks,
        0,
        "no poll ran"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_alone_resolves_transactions_when_every_webhook_is_lost() {
    let mut options = Options::default();
    options.thirdparty.webhook_drop_rate = rate("1.0");
    let stack = all_resolved_by(options, "poll").await;
    assert_eq!(stack.thirdparty_stats().await.webhooks_sent, 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_gives_up_after_its_maximum_and_a_late_webhook_still_applies() {
    let mut options = Options::default();
    options.resolve_within(2500, 2500);
    options.consumer.schedules.poll_initial_ms = 100;
    options.consumer.schedules.poll_max_total_ms = 600;
    let stack = spawn_stack(options).await;
    let ids = post_all(&stack, 5).await;
    for id in &ids {
        let id = id.to_string();
        eventually(Duration::from_secs(10), "polling expired", || async {
            let (_, body) = stack.get(&id).await;
            body["status"] == "pending" && body["poll_expired_at"].is_string()
        })
        .await;
    }
    settle_all(&stack, &ids, 30, "the late webhooks applied").await;
    for id in &ids {
        let (_, body) = stack.get(&id.to_string()).await;
        assert!(body["poll_expired_at"].is_string(), "the flag stays");
        assert_eq!(body["history"][1]["source"], "webhook");
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stops_cleanly_on_sigterm_and_nothing_is_lost() {
    let mut options = Options::without_consumer();
    // Slow notifications: some are always in a handler when the signal comes.
    options.client.latency_ms = 300;
    let stack = spawn_stack(options).await;
    let child = ChildConsumer::spawn(&stack.consumer_config);
    let ids = post_all(&stack, 100).await;
    eventually(Duration::from_secs(60), "work is in flight", || async {
        count_terminal(&stack).await >= 10
    })
    .await;
    let notifying = stack.queue_counts(QueueName::Notify).await.running;
    let unfinished = ids.len() - count_terminal(&stack).await;
    let (code, took) = child.terminate();
    assert!(
        unfinished > 0,
        "the signal must hit work in progress: {unfinished} transactions unfinished ({notifying} notifications running)"
    );
    assert_eq!(code, Some(0), "exit status after SIGTERM");
    assert!(
        took < Duration::from_secs(5),
        "stopped within the grace period ({took:?})"
    );

    let _restarted = ChildConsumer::spawn(&stack.consumer_config);
    settle_all(
        &stack,
        &ids,
        60,
        "every transaction settled after the restart",
    )
    .await;
    stack.shutdown().await;
}
