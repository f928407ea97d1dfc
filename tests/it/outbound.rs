//! The consumer against a third party and a client app that answer like real ones: an API key
//! that can be wrong, rate limits with `Retry-After`, request timeouts. None of these is a
//! reason to fail a transaction, and no retry comes before the `Retry-After` it was given.

use std::time::Duration;

use crate::support::*;
use service::secret::Secret;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_fails_nothing_and_once_fixed_everything_completes() {
    let key = Secret::new("sk_test_the_right_one");
    let stack = spawn_stack(Options {
        thirdparty_api_key: Some(key.clone()),
        ..Options::without_consumer()
    })
    .await;
    let ids = post_all(&stack, 30).await;

    let mut wrong = stack.consumer_config.clone();
    wrong.thirdparty_api_key = Some(Secret::new("sk_test_a_wrong_one"));
    let consumer = stack.start_consumer(wrong).await;
    eventually(
        Duration::from_secs(60),
        "every transaction met the refused key",
        || async {
            consumer
                .counter("outbound_auth_failures_total", r#"target="thirdparty""#)
                .await
                >= ids.len() as u64
        },
    )
    .await;
    consumer.stop().await;
    let refused = stack.thirdparty_stats().await;
    assert_eq!(refused.created, 0, "nothing got through: {refused:?}");
    assert!(refused.unauthorized >= ids.len() as u64, "{refused:?}");
    let statuses = stack.statuses().await;
    assert_eq!(statuses.len(), ids.len());
    assert!(
        statuses.values().all(|s| s == "pending"),
        "refused credentials fail no transaction: {statuses:?}"
    );

    // The key is fixed and the consumer restarted: everything completes.
    let mut fixed = stack.consumer_config.clone();
    fixed.thirdparty_api_key = Some(key);
    let consumer = stack.start_consumer(fixed).await;
    stack.settles(&ids, 60, "every transaction settled").await;
    let statuses = stack.statuses().await;
    assert!(!statuses.values().any(|s| s == "failed"), "{statuses:?}");
    assert_eq!(stack.thirdparty_stats().await.created, ids.len() as u64);
    consumer.stop().await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_request_timeouts_fail_nothing_and_retry_after_is_honoured() {
    let mut options = Options::default();
    // 429 + Retry-After on 15% of calls and 408 on another 15%, submits and lookups alike;
    // the client app rate-limits 30% of notifications.
    options.thirdparty.rate_limit_rate = rate("0.15");
    options.thirdparty.request_timeout_rate = rate("0.15");
    options.thirdparty.retry_after_s = 1;
    options.client.rate_limit_rate = rate("0.3");
    options.client.retry_after_s = 1;
    // A retry budget that outlasts any plausible streak of transient answers.
    options.consumer.schedules.process_retries = 16;
    options.consumer.schedules.notify_schedule = notify_doubling(50, 16);
    options.consumer.max_deliveries = 60;
    let stack = spawn_stack(options).await;
    let ids = post_all(&stack, 100).await;
    stack.settles(&ids, 120, "every transaction settled").await;

    let statuses = stack.statuses().await;
    assert!(
        !statuses.values().any(|s| s == "failed"),
        "a transient answer fails nothing: {statuses:?}"
    );
    let third = stack.thirdparty_stats().await;
    assert!(third.rate_limited > 0, "the faults happened: {third:?}");
    assert_eq!(
        third.early_retries, 0,
        "no call came before its Retry-After: {third:?}"
    );
    let client = stack.client_stats().await;
    assert!(client.rate_limited > 0, "the faults happened: {client:?}");
    assert_eq!(
        client.early_retries, 0,
        "no notification came before its Retry-After: {client:?}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_declined_before_its_first_submission_is_never_submitted() {
    use domain::signature::Signer;
    let stack = spawn_stack(Options::without_consumer()).await;
    let ids = post_all(&stack, 10).await;
    // The third party reports them declined before anything was submitted…
    let signer = Signer::new(&stack.webhook_secret);
    for id in &ids {
        let body =
            serde_json::to_vec(&serde_json::json!({"id": id, "status": "declined"})).unwrap();
        let r = stack
            .producer_request(Method::POST, "/webhook")
            .headers(signer.headers_now(&format!("msg_{}", id.simple()), &body))
            .header("content-type", "application/json")
            .body(body)
            .sent()
            .await;
        assert_eq!(r.status(), 201);
    }
    // …and a consumer without the `process` pool creates the rows and applies the declines,
    let mut no_process = stack.consumer_config.clone();
    no_process.queues = "create,update,notify".parse().unwrap();
    let consumer = stack.start_consumer(no_process).await;
    eventually(Duration::from_secs(60), "every decline applied", || async {
        let statuses = stack.statuses().await;
        statuses.len() == ids.len() && statuses.values().all(|s| s == "declined")
    })
    .await;
    consumer.stop().await;
    let waiting = stack.queue_counts(domain::QueueName::Process).await.waiting;
    assert_eq!(
        waiting,
        ids.len() as u64,
        "their submissions wait in the queue"
    );
    // …so when the `process` pool runs those submissions, it submits none of them.
    let mut only_process = stack.consumer_config.clone();
    only_process.queues = "process".parse().unwrap();
    let consumer = stack.start_consumer(only_process).await;
    eventually(Duration::from_secs(30), "the submissions ran", || async {
        let counts = stack.queue_counts(domain::QueueName::Process).await;
        counts.waiting == 0 && counts.running == 0
    })
    .await;
    consumer.stop().await;
    assert_eq!(
        stack.thirdparty_stats().await.created,
        0,
        "a terminal transaction is never submitted"
    );
    stack.shutdown().await;
}
