//! The consumer against a third party and a client app that answer like real ones: an API key
//! that can be wrong, rate limits with `Retry-After`, request timeouts. None of these is a
//! reason to fail a transaction, and no retry comes before the `Retry-After` it was given.

use std::time::Duration;

use crate::support::*;
use service::secret::Secret;
use sqlx::Connection;

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
    // Throttling spends no submission retry, so the default budget stands; a notification's
    // schedule is long enough to outlast a plausible streak of the client's 429s.
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
async fn throttling_over_tls_with_an_api_key_spends_no_retry_and_fails_nothing() {
    let pki = crate::tls::Pki::make();
    let key = Secret::new("sk_test_throttled");
    let mut options = Options {
        tls: Some((pki.cert.clone(), pki.key.clone())),
        ca_file: Some(pki.ca.clone()),
        thirdparty_api_key: Some(key.clone()),
        ..Options::default()
    };
    options.consumer.thirdparty_api_key = Some(key);
    // The third party answers 25 % of calls 429 (Retry-After: 1) and 10 % 408, submits and
    // lookups alike; it never refuses a transaction. The retry budget is the default one.
    options.thirdparty.rate_limit_rate = rate("0.25");
    options.thirdparty.request_timeout_rate = rate("0.10");
    options.thirdparty.retry_after_s = 1;
    options.consumer.schedules.process_backoff_ms = 50;
    assert_eq!(
        options.consumer.schedules.process_retries,
        domain::schedule::Schedules::DEFAULT.process_retries
    );
    let stack = spawn_stack(options).await;
    assert!(stack.producer.starts_with("https://"));
    let ids = post_all(&stack, 200).await;
    stack.settles(&ids, 180, "every transaction settled").await;

    let statuses = stack.statuses().await;
    let failed: Vec<_> = statuses.iter().filter(|(_, s)| *s == "failed").collect();
    assert!(failed.is_empty(), "throttling failed {failed:?}");
    let third = stack.thirdparty_stats().await;
    assert_eq!(third.created, ids.len() as u64, "{third:?}");
    assert_eq!(third.unauthorized, 0, "the key was sent: {third:?}");
    // The faults hit submissions in progress: more throttled calls than the budget allows.
    assert!(
        third.rate_limited > 3 * 20,
        "the faults happened: {third:?}"
    );
    assert_eq!(
        third.early_retries, 0,
        "no call came before its Retry-After: {third:?}"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_party_failing_every_submission_fails_it_once_the_budget_is_spent() {
    let mut options = Options::default();
    // Every submit answers 504 and creates nothing; lookups answer truthfully (404).
    options.thirdparty.create_504_before_rate = rate("1");
    options.consumer.schedules.process_backoff_ms = 20;
    let stack = spawn_stack(options).await;
    let ids = post_all(&stack, 5).await;
    stack.settles(&ids, 60, "every transaction settled").await;

    let statuses = stack.statuses().await;
    assert!(
        statuses.values().all(|s| s == "failed"),
        "a failure that spends the budget ends in failed: {statuses:?}"
    );
    let mut conn = sqlx::PgConnection::connect(&stack.database_url)
        .await
        .unwrap();
    let spent: Vec<i32> = sqlx::query_scalar("SELECT submit_failures FROM transactions")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let budget = domain::schedule::Schedules::DEFAULT.process_retries as i32;
    assert!(
        spent.iter().all(|&n| n == budget),
        "each spent exactly its {budget} retries before the last attempt: {spent:?}"
    );
    assert_eq!(stack.thirdparty_stats().await.created, 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_declined_before_its_row_exists_is_never_submitted() {
    use domain::signature::Signer;
    let stack = spawn_stack(Options::without_consumer()).await;
    let ids = post_all(&stack, 10).await;
    // The consumer is down; the third party reports them declined before any row exists…
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
    // …and the whole consumer comes up: every pool at once, create, process and update alike.
    let consumer = stack.start_consumer(stack.consumer_config.clone()).await;
    // Not `settles`: its end state has the third party hold every transaction, and here it
    // must hold none.
    eventually(
        Duration::from_secs(60),
        "every decline applied and told",
        || settled_ids(&stack.database_url, &ids),
    )
    .await;
    consumer.stop().await;

    let statuses = stack.statuses().await;
    assert!(statuses.values().all(|s| s == "declined"), "{statuses:?}");
    let received = stack.received().await;
    for id in &ids {
        let told = received.get(id).map(Vec::as_slice).unwrap_or_default();
        assert!(
            !told.is_empty() && told.iter().all(|r| r.status == "declined"),
            "{id}: told {told:?}"
        );
    }
    let third = stack.thirdparty_stats().await;
    assert_eq!(
        (third.created, third.conflicts),
        (0, 0),
        "a transaction whose outcome is known is never submitted: {third:?}"
    );
    let mut conn = sqlx::PgConnection::connect(&stack.database_url)
        .await
        .unwrap();
    let owed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transactions WHERE next_attempt_at IS NOT NULL OR submitted_at IS NOT NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owed, 0, "no row ever owed a submission");
    for id in &ids {
        let history: Vec<(String, String)> = sqlx::query_as(
            "SELECT to_status, source FROM transaction_events
             WHERE transaction_id = $1 ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            history,
            vec![
                ("pending".into(), "api".into()),
                ("declined".into(), "webhook".into())
            ],
            "{id}"
        );
    }
    stack.shutdown().await;
}
