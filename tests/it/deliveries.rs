//! Deliveries on record: every attempt to notify a client app is a row of the delivery log,
//! and a notification whose client app stays down past the schedule is exhausted.

use std::time::Duration;

use crate::support::*;
use sqlx::{Connection, PgConnection};

/// A notification with its delivery log, as the test reads it.
#[derive(Debug, sqlx::FromRow)]
struct Log {
    given_up: bool,
    delivered: bool,
    attempts: i32,
    numbers: Vec<i32>,
    statuses: Vec<Option<i16>>,
    triggers: Vec<String>,
    shortest: i32,
}

/// A client app that answers 503 to everything for longer than the (shortened) schedule:
/// every notification is exhausted after exactly the schedule's attempts, each on record with
/// the status, its duration and what started it, and it is counted per client app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_down_past_the_schedule_exhausts_each_notification_every_attempt_logged() {
    let mut options = Options::default();
    options.client.fail_rate = rate("1.0");
    options.consumer.schedules.notify_schedule = "50ms,100ms,150ms".parse().unwrap();
    let stack = spawn_stack(options).await;
    let ids = post_all(&stack, 20).await;
    eventually(
        Duration::from_secs(60),
        "every transaction terminal, no notification owed",
        || settled_ids(&stack.database_url, &ids),
    )
    .await;

    let mut db = PgConnection::connect(&stack.database_url).await.unwrap();
    let logs: Vec<Log> = sqlx::query_as(
        "SELECT n.failed_at IS NOT NULL AS given_up, n.delivered_at IS NOT NULL AS delivered,
                n.attempts, array_agg(a.attempt ORDER BY a.attempt) AS numbers,
                array_agg(a.http_status ORDER BY a.attempt) AS statuses,
                array_agg(a.trigger ORDER BY a.attempt) AS triggers,
                min(a.duration_ms) AS shortest
         FROM notifications n JOIN delivery_attempts a USING (delivery_id)
         GROUP BY n.delivery_id, n.failed_at, n.delivered_at, n.attempts",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        logs.len(),
        ids.len(),
        "one notification each, each with its log"
    );
    for log in logs {
        assert!(log.given_up && !log.delivered);
        assert_eq!(
            log.numbers,
            [1, 2, 3, 4],
            "the first attempt and three retries"
        );
        assert_eq!(log.attempts, 4);
        assert!(log.statuses.iter().all(|s| *s == Some(503)), "{log:?}");
        assert!(log.triggers.iter().all(|t| t == "scheduled"));
        assert!(log.shortest >= 0);
    }
    let exhausted = metric(
        &stack.consumer,
        "notifications_exhausted_total",
        &format!("client_app=\"{}\"", stack.client_app),
    )
    .await;
    assert_eq!(exhausted, ids.len() as u64);
    stack.shutdown().await;
}
