//! Deliveries on record: every attempt to notify a client app is a row of the delivery log,
//! and a notification whose client app stays down past the schedule is exhausted.

use std::time::Duration;

use crate::support::*;
use serde_json::json;
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

/// A walk through `GET /transactions` over 10,000 transactions while 2,000 more are inserted:
/// every transaction made before the walk began is seen exactly once, nothing twice, and a
/// cursor from another query is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_walk_sees_every_earlier_transaction_once_while_more_arrive() {
    let stack = spawn_stack(Options {
        run_consumer: false,
        ..Options::default()
    })
    .await;
    let mut db = PgConnection::connect(&stack.database_url).await.unwrap();
    // Terminal rows straight into the table: the list reads Postgres only.
    let insert =
        "INSERT INTO transactions (id, status, amount, currency, client_app_id, created_at)
                  SELECT gen_random_uuid(), 'completed', 100, 'EUR', $1,
                         now() - ($2 - g) * interval '1 millisecond'
                  FROM generate_series(1, $2) g RETURNING id";
    let before: Vec<(uuid::Uuid,)> = sqlx::query_as(insert)
        .bind(stack.client_app.as_uuid())
        .bind(10_000_i32)
        .fetch_all(&mut db)
        .await
        .unwrap();
    let meanwhile = tokio::spawn({
        let (url, app) = (stack.database_url.clone(), stack.client_app.as_uuid());
        async move {
            let mut db = PgConnection::connect(&url).await.unwrap();
            for _ in 0..20 {
                sqlx::query(insert)
                    .bind(app)
                    .bind(100_i32)
                    .execute(&mut db)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let mut seen = std::collections::HashMap::<String, u32>::new();
    let (mut cursor, mut pages, mut times) = (None::<String>, 0, Vec::new());
    loop {
        let path = match &cursor {
            Some(c) => format!("/transactions?limit=200&cursor={c}"),
            None => "/transactions?limit=200".to_string(),
        };
        let started = std::time::Instant::now();
        let r = stack.producer_request(Method::GET, &path).sent().await;
        assert_eq!(r.status(), 200);
        let page: serde_json::Value = r.json().await.unwrap();
        times.push(started.elapsed());
        pages += 1;
        for t in page["data"].as_array().unwrap() {
            *seen
                .entry(t["id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    meanwhile.await.unwrap();
    for (id,) in &before {
        assert_eq!(seen.get(&id.to_string()), Some(&1), "{id} seen once");
    }
    assert!(seen.values().all(|n| *n == 1), "nothing twice");
    // For the record, not a speed target: the median of pages 2–6 (page 1 also reads the
    // key) against the median of the last five.
    let median = |slice: &[Duration]| {
        let mut v = slice.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    eprintln!(
        "{pages} pages, {} rows; page 1 {:?}, pages 2-6 median {:?}, last 5 median {:?}",
        seen.len(),
        times[0],
        median(&times[1..6]),
        median(&times[times.len() - 5..])
    );

    // A cursor is good only for the query that made it, and a made-up one is refused.
    let first = stack.get_json_of("/transactions?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    for path in [
        format!("/transactions?status=pending&cursor={cursor}"),
        "/transactions?cursor=bm90LWEtY3Vyc29y".to_string(),
    ] {
        let r = stack.producer_request(Method::GET, &path).sent().await;
        assert_eq!(r.status(), 400, "{path}");
    }
    let r = stack
        .producer_request(Method::GET, "/transactions?limit=201")
        .sent()
        .await;
    assert_eq!(r.status(), 422);
    stack.shutdown().await;
}

/// A resend goes out under the same `webhook-id` and lands on the log as `manual`; resending
/// a notification still owed to a client app that is down leaves its schedule as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_repeats_the_webhook_id_and_leaves_an_owed_schedule_alone() {
    let mut options = Options::default();
    options.consumer.schedules.notify_schedule = "30s,30s".parse().unwrap();
    let pepper = options.producer.api_key_pepper.clone();
    let stack = spawn_stack(options).await;

    // Heard once; resent; heard again with the same webhook-id.
    let ids = post_all(&stack, 2).await;
    stack.settles(&ids, 60, "both told").await;
    let id = ids[0];
    let path = format!("/transaction/{id}/notification");
    let view = stack.get_json_of(&path).await;
    assert_eq!(view["state"], "delivered", "{view}");
    assert_eq!(view["attempts"].as_array().unwrap().len(), 1, "{view}");
    let delivery = view["delivery_id"].as_str().unwrap().to_string();
    let r = stack
        .producer_request(Method::POST, &format!("{path}/resend"))
        .sent()
        .await;
    assert_eq!(r.status(), 202);
    let answered: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answered["delivery_id"], delivery.as_str());
    eventually(
        Duration::from_secs(20),
        "the client heard it twice",
        || async { stack.received().await.get(&id).map(Vec::len) == Some(2) },
    )
    .await;
    let told = &stack.received().await[&id];
    assert!(told.iter().all(|r| r.delivery_id == delivery), "{told:?}");
    // The client may hear the resend before its attempt is written (writes are batched).
    eventually(Duration::from_secs(10), "the resend on the log", || async {
        stack.get_json_of(&path).await["attempts"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    let view = stack.get_json_of(&path).await;
    let triggers = &view["attempts"].as_array().unwrap();
    assert_eq!(
        (&triggers[0]["trigger"], &triggers[1]["trigger"]),
        (&json!("scheduled"), &json!("manual"))
    );

    // Another client app whose endpoint is down: its notification is owed, a retry due.
    let key = pepper.new_key();
    let down = format!("http://127.0.0.1:{}", testkit::free_port().unwrap());
    let store = store::Store::connect_lazy(&stack.database_url, 1).unwrap();
    let secret = domain::WebhookSecrets::generate().expose();
    store
        .create_client_app(
            &store::NewClientApp {
                name: "down",
                notify_url: &down,
                rate_limit_per_s: None,
                burst: None,
            },
            &key,
            &secret,
        )
        .await
        .unwrap();
    let r = stack
        .http
        .post(format!("{}/transaction", stack.producer))
        .bearer_auth(&key.plaintext)
        .json(&serde_json::json!({}))
        .sent()
        .await;
    assert_eq!(r.status(), 201);
    let owed: serde_json::Value = r.json().await.unwrap();
    let owed = owed["id"].as_str().unwrap().to_string();
    let path = format!("/transaction/{owed}/notification");
    let get = || async {
        stack
            .http
            .get(format!("{}{path}", stack.producer))
            .bearer_auth(&key.plaintext)
            .sent()
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    eventually(
        Duration::from_secs(30),
        "its first attempt failed",
        || async {
            let view = get().await;
            view["state"] == "owed" && view["attempts"].as_array().is_some_and(|a| a.len() == 1)
        },
    )
    .await;
    let before = get().await;
    let r = stack
        .http
        .post(format!("{}{path}/resend", stack.producer))
        .bearer_auth(&key.plaintext)
        .sent()
        .await;
    assert_eq!(r.status(), 202);
    eventually(Duration::from_secs(20), "the resend was tried", || async {
        get().await["attempts"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    let after = get().await;
    assert_eq!(after["attempts"][1]["trigger"], "manual", "{after}");
    assert!(
        after["attempts"][1]["http_status"].is_null(),
        "nobody answered"
    );
    assert_eq!(after["state"], "owed");
    assert_eq!(
        after["next_attempt_at"], before["next_attempt_at"],
        "the schedule is untouched"
    );
    // A transaction of another client app is not this one's to see.
    let r = stack.producer_request(Method::GET, &path).sent().await;
    assert_eq!(r.status(), 404);
    // Each client app's list holds its own transactions and nothing else.
    let theirs: serde_json::Value = stack
        .http
        .get(format!("{}/transactions", stack.producer))
        .bearer_auth(&key.plaintext)
        .json_answered()
        .await;
    assert_eq!(each_str(&theirs["data"], "id"), [owed.as_str()]);
    let ours = stack.get_json_of("/transactions").await;
    let mut ours = each_str(&ours["data"], "id");
    let expected: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    expected.sort();
    ours.sort();
    assert_eq!(ours, expected, "the stack's own two, not the other's");
    stack.shutdown().await;
}

/// A `notify` job queued before jobs named their client app goes to the owner its
/// transaction's row names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_job_that_names_no_client_app_goes_to_the_owner_its_row_names() {
    let stack = spawn_stack(Options::default()).await;
    let store = store::Store::connect_lazy(&stack.database_url, 1).unwrap();
    let id = domain::TransactionId::generate();
    store
        .insert_pending(id, None, stack.client_app)
        .await
        .unwrap();
    let status = domain::Status::Declined;
    let delivery = store
        .apply_status(id, status, domain::Source::Webhook)
        .await
        .unwrap()
        .expect("pending");
    let job = domain::jobs::NotifyJob {
        delivery_id: delivery,
        id,
        status,
        trigger: domain::delivery::Trigger::Scheduled,
        client_app: None,
        trace: None,
    };
    assert!(stack.queues().push(job).await.unwrap());
    eventually(Duration::from_secs(20), "the client heard it", || async {
        stack.received().await.contains_key(&id.as_uuid())
    })
    .await;
    let told = &stack.received().await[&id.as_uuid()];
    assert_eq!(
        (told[0].status.as_str(), told[0].delivery_id.as_str()),
        (status.as_str(), delivery.to_string().as_str())
    );
}
