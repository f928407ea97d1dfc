//! The store against a real Postgres (a database of its own per test).

use chrono::Utc;
use domain::{ClientAppId, DeliveryId, Money, Source, Status, TransactionId};

const LEGACY: ClientAppId = ClientAppId::LEGACY;

use super::*;

fn id() -> TransactionId {
    TransactionId::generate()
}

fn change(id: TransactionId, status: Status, source: Source) -> StatusChange {
    StatusChange { id, status, source }
}

/// A new transaction moved to `status`: its id and its notification's.
async fn terminal(store: &Store, status: Status, source: Source) -> (TransactionId, DeliveryId) {
    let id = id();
    store.insert_pending(id, None, LEGACY).await.unwrap();
    let delivery = store.apply_status(id, status, source).await.unwrap();
    (id, delivery.expect("a pending row changes"))
}

/// A scheduled attempt of `delivery` that took 7 ms.
fn attempt(delivery: DeliveryId, status: Option<u16>, error: Option<&str>) -> AttemptRecord {
    let took = std::time::Duration::from_millis(7);
    let trigger = domain::delivery::Trigger::Scheduled;
    AttemptRecord::new(delivery, trigger, Utc::now(), took, status, error)
}

fn money(amount: i64, currency: &str) -> Option<Money> {
    Money::from_parts(Some(amount), Some(currency)).unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_first_insert_wins_and_records_its_history(pool: PgPool) {
    let store = Store::from_pool(pool);
    let id = id();
    assert!(
        store
            .insert_pending(id, money(500, "EUR"), LEGACY)
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_pending(id, money(999, "USD"), LEGACY)
            .await
            .unwrap()
    );
    let row = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.money),
        (Status::Pending, money(500, "EUR"))
    );
    assert!(row.next_attempt_at.is_some(), "a submission is owed");
    assert!(row.owes_submission());
    let history = store.history(id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].status, history[0].source),
        (Status::Pending, Source::Api)
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn rows_read_with_their_age_are_as_old_as_postgres_says(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (new, old, absent) = (id(), id(), id());
    for id in [new, old] {
        store.insert_pending(id, None, LEGACY).await.unwrap();
    }
    sqlx::query("UPDATE transactions SET created_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(old.as_uuid())
        .execute(&pool)
        .await
        .unwrap();
    let aged = store.get_many_aged(&[new, old, absent]).await.unwrap();
    let found = |i: usize| aged[i].as_ref().expect("a row");
    assert_eq!((found(0).row.id, found(1).row.id), (new, old), "in order");
    let second = std::time::Duration::from_secs(1);
    assert!(found(0).age < 5 * second, "just made: {:?}", found(0).age);
    assert!(
        (120 * second..125 * second).contains(&found(1).age),
        "two minutes: {:?}",
        found(1).age
    );
    assert!(aged[2].is_none());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_terminal_status_applies_once_with_history_and_one_notification(pool: PgPool) {
    let store = Store::from_pool(pool);
    let id = id();
    store.insert_pending(id, None, LEGACY).await.unwrap();
    let delivery = store
        .apply_status(id, Status::Completed, Source::Webhook)
        .await
        .unwrap();
    assert!(delivery.is_some());
    // Once terminal, no report changes it: the same status, another, or `pending`.
    for status in [Status::Completed, Status::Declined, Status::Pending] {
        assert_eq!(
            store.apply_status(id, status, Source::Poll).await.unwrap(),
            None,
            "{status:?} after completed"
        );
    }

    let row = store.get(id).await.unwrap().unwrap();
    assert_eq!(row.status, Status::Completed);
    let history: Vec<_> = store
        .history(id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.status, h.source))
        .collect();
    assert_eq!(
        history,
        vec![
            (Status::Pending, Source::Api),
            (Status::Completed, Source::Webhook)
        ]
    );
    let notification = store
        .notification(delivery.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (notification.transaction_id, notification.status),
        (id, Status::Completed)
    );
    let at = Utc::now();
    let failed = attempt(notification.delivery_id, Some(500), Some("client said 500"));
    store.notification_retry(&failed, at).await.unwrap();
    let detail = store.notification_of(id).await.unwrap().unwrap();
    assert_eq!(detail.row.delivery_id, notification.delivery_id);
    assert_eq!(detail.row.attempts, 1);
    assert_eq!(detail.last_error.as_deref(), Some("client said 500"));
    assert!(detail.next_attempt_at.is_some());
    assert!(
        store
            .notification_of(super::tests::id())
            .await
            .unwrap()
            .is_none()
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn batches_answer_row_by_row_and_the_first_change_of_a_row_wins(pool: PgPool) {
    // As the batchers run them: on a connection the store keeps.
    let store = Store::from_pool(pool).held();
    let (a, b) = (id(), id());
    let row = |id, amount| NewRow {
        id,
        money: money(amount, "EUR"),
        client_app: ClientAppId::LEGACY,
        owes_submission: id == a,
        trace: None,
    };
    let inserted = store
        .insert_pending_many(&[row(a, 1), row(b, 2), row(a, 3)])
        .await
        .unwrap();
    assert!(
        store
            .get(a)
            .await
            .unwrap()
            .unwrap()
            .next_attempt_at
            .is_some()
    );
    assert_eq!(
        store.get(b).await.unwrap().unwrap().next_attempt_at,
        None,
        "a row whose outcome is known owes no submission"
    );
    assert_eq!(
        inserted,
        vec![true, true, false],
        "a duplicate within the batch inserts once"
    );
    assert_eq!(
        store.get(a).await.unwrap().unwrap().money,
        money(1, "EUR"),
        "the first row wins"
    );

    let applied = store
        .apply_status_many(&[
            change(a, Status::Completed, Source::Poll),
            change(a, Status::Declined, Source::Webhook),
            change(b, Status::Pending, Source::Poll),
        ])
        .await
        .unwrap();
    assert!(
        applied[0].is_some() && applied[1].is_none() && applied[2].is_none(),
        "{applied:?}"
    );
    assert_eq!(
        store.get(a).await.unwrap().unwrap().status,
        Status::Completed
    );
    assert_eq!(store.get(b).await.unwrap().unwrap().status, Status::Pending);
    assert_eq!(
        store.history(a).await.unwrap().len(),
        2,
        "one change, one history row"
    );

    let submitted = store
        .mark_submitted_many(&[a, b].map(|id| Submitted {
            id,
            first_poll_at: Utc::now(),
        }))
        .await
        .unwrap();
    assert_eq!(
        submitted,
        vec![false, true],
        "a terminal row is not submitted"
    );
}

/// Ends every connection to this test's database but the caller's, and waits until they are
/// gone.
async fn end_other_connections(pool: &PgPool) {
    let mut admin = pool.acquire().await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut *admin)
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if others == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{others} still connected"
        );
    }
}

/// Waits until exactly `n` of the pool's connections are out of it (sqlx hands a connection
/// back to the pool in a task of its own, after the statement's caller has its answer).
async fn in_use_settles_at(pool: &PgPool, n: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let in_use = pool.size() - pool.num_idle() as u32;
        if in_use == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{in_use} in use, not {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_held_store_keeps_one_connection_and_replaces_it_when_it_dies(pool: PgPool) {
    let read = |store: Store, id| async move { store.get_many_aged(&[id]).await };
    let (a, b) = (id(), id());
    let plain = Store::from_pool(pool.clone());
    plain.insert_pending(a, None, LEGACY).await.unwrap();

    // Kept between statements: out of the pool while the store lives.
    let held = plain.held();
    for _ in 0..3 {
        assert!(read(held.clone(), a).await.unwrap()[0].is_some());
    }
    in_use_settles_at(&pool, 1).await;
    held.insert_pending_many(&[NewRow {
        id: b,
        money: None,
        client_app: LEGACY,
        owes_submission: true,
        trace: None,
    }])
    .await
    .unwrap();
    assert!(
        plain.get(b).await.unwrap().is_some(),
        "written on it, committed"
    );

    // Held with no check, its death fails one statement; the next one runs on a new
    // connection.
    let held_with = |check_if_idle_for| Store {
        pool: pool.clone(),
        held: Some(Arc::new(HeldConnection::new(check_if_idle_for))),
    };
    let unchecked = held_with(Duration::MAX);
    read(unchecked.clone(), a).await.unwrap();
    end_other_connections(&pool).await;
    let failed = read(unchecked.clone(), a).await;
    assert!(matches!(failed, Err(StoreError::Database(_))), "{failed:?}");
    assert!(read(unchecked.clone(), a).await.unwrap()[0].is_some());

    // Checked when idle (here: always), a dead one is replaced before use.
    let checked = held_with(Duration::ZERO);
    read(checked.clone(), a).await.unwrap();
    end_other_connections(&pool).await;
    assert!(read(checked.clone(), a).await.unwrap()[0].is_some());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_stale_poll_chain_cannot_fork(pool: PgPool) {
    let store = Store::from_pool(pool);
    let id = id();
    store.insert_pending(id, None, LEGACY).await.unwrap();
    assert!(store.mark_submitted(id, Utc::now()).await.unwrap());
    assert!(!store.get(id).await.unwrap().unwrap().owes_submission());
    assert!(
        !store.mark_submitted(id, Utc::now()).await.unwrap(),
        "submitted once"
    );
    assert!(store.schedule_next_poll(id, 1, Utc::now()).await.unwrap());
    assert!(
        !store.schedule_next_poll(id, 1, Utc::now()).await.unwrap(),
        "poll 1 already moved on"
    );
    assert_eq!(store.get(id).await.unwrap().unwrap().poll_number, 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_sweeper_sees_only_overdue_work(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (late, fresh, submitted) = (id(), id(), id());
    let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let late_row = NewRow {
        id: late,
        money: None,
        client_app: LEGACY,
        owes_submission: true,
        trace: Some(traced.into()),
    };
    store.insert_pending_many(&[late_row]).await.unwrap();
    for id in [fresh, submitted] {
        store.insert_pending(id, None, LEGACY).await.unwrap();
    }
    store
        .submission_due(late, Utc::now() - chrono::Duration::seconds(60), false)
        .await
        .unwrap();
    store
        .submission_due(fresh, Utc::now() + chrono::Duration::seconds(60), true)
        .await
        .unwrap();
    store
        .mark_submitted(submitted, Utc::now() - chrono::Duration::seconds(60))
        .await
        .unwrap();
    let (_, delivered) = terminal(&store, Status::Declined, Source::Poll).await;
    store
        .notification_delivered(attempt(delivered, Some(200), None), LEGACY)
        .await
        .unwrap();

    let overdue = store
        .overdue(Duration::from_secs(30), 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        overdue.submissions,
        vec![DueSubmission {
            id: late,
            trace: Some(traced.into()),
        }],
        "revived work keeps the trace its row was accepted in"
    );
    assert_eq!(
        overdue.polls,
        vec![DuePoll {
            id: submitted,
            n: 1,
            trace: None,
        }]
    );
    assert!(
        overdue.notifications.is_empty(),
        "a delivered notification is not owed"
    );
}

/// When the sweeper will next look at transaction `id`; `None` once it owes nothing more.
async fn check_at(pool: &PgPool, id: TransactionId) -> Option<chrono::DateTime<Utc>> {
    sqlx::query_scalar("SELECT check_at FROM open_work WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await
        .unwrap()
}

/// The delivery ids of `due`, in order.
fn delivery_ids(due: &[DueNotification]) -> Vec<DeliveryId> {
    due.iter().map(|n| n.delivery_id).collect()
}

/// As if transaction `id`'s row had last been looked at an hour ago.
async fn an_hour_old(pool: &PgPool, id: TransactionId) {
    sqlx::query("UPDATE open_work SET check_at = now() - interval '1 hour' WHERE id = $1")
        .bind(id.as_uuid())
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_sweeper_looks_again_only_when_work_falls_due_and_a_late_outcome_is_found(
    pool: PgPool,
) {
    let store = Store::from_pool(pool.clone());
    let sweep = |grace: u64| {
        let store = store.clone();
        async move {
            store
                .overdue(Duration::from_secs(grace), 100)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let id = id();
    store.insert_pending(id, None, LEGACY).await.unwrap();
    let inserted = check_at(&pool, id).await.expect("open from its insert");
    assert!(inserted <= Utc::now());

    // Submitted long ago, poll 1 due in a minute: the sweep moves its look to that poll.
    let poll_at = Utc::now() + chrono::Duration::seconds(60);
    assert!(store.mark_submitted(id, poll_at).await.unwrap());
    an_hour_old(&pool, id).await;
    assert_eq!(sweep(30).await, Overdue::default(), "nothing is due yet");
    let moved = check_at(&pool, id).await.unwrap();
    assert_eq!(moved.timestamp_micros(), poll_at.timestamp_micros());

    // The poll chain expires: nothing is owed, the sweep looks again an hour later.
    assert!(store.mark_poll_expired(id).await.unwrap());
    an_hour_old(&pool, id).await;
    assert_eq!(sweep(30).await, Overdue::default());
    let recheck = check_at(&pool, id).await.unwrap();
    assert!(
        recheck > Utc::now() + chrono::Duration::minutes(59),
        "{recheck}"
    );

    // A late outcome owes a notification now: its statement brings the look back to now.
    let delivery = store
        .apply_status(id, Status::Completed, Source::Webhook)
        .await
        .unwrap()
        .expect("still pending");
    assert!(check_at(&pool, id).await.unwrap() <= Utc::now());
    let overdue = sweep(0).await;
    assert_eq!(delivery_ids(&overdue.notifications), vec![delivery]);

    // Delivered: it owes nothing more, ever.
    store
        .notification_delivered(attempt(delivery, Some(200), None), LEGACY)
        .await
        .unwrap();
    assert_eq!(check_at(&pool, id).await, None);
    assert_eq!(sweep(0).await, Overdue::default());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_given_up_notification_recovered_is_owed_again_and_the_sweeper_sees_it(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (id, delivery) = terminal(&store, Status::Declined, Source::Poll).await;
    store
        .notification_failed(&attempt(delivery, Some(400), Some("refused")))
        .await
        .unwrap();
    an_hour_old(&pool, id).await;
    let swept = store.overdue(Duration::ZERO, 100).await.unwrap().unwrap();
    assert_eq!(
        swept,
        Overdue::default(),
        "a given-up notification is not owed"
    );
    assert!(check_at(&pool, id).await.unwrap() > Utc::now() + chrono::Duration::minutes(59));

    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    let recovered = store
        .recover_notifications(LEGACY, an_hour_ago, None, 10)
        .await
        .unwrap();
    assert_eq!(delivery_ids(&recovered), vec![delivery]);
    assert!(check_at(&pool, id).await.unwrap() <= Utc::now());
    let swept = store.overdue(Duration::ZERO, 100).await.unwrap().unwrap();
    assert_eq!(delivery_ids(&swept.notifications), vec![delivery]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_value_this_version_cannot_read_is_corrupt_not_an_outage(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let id = id();
    store.insert_pending(id, None, LEGACY).await.unwrap();
    let delivery = store
        .apply_status(id, Status::Declined, Source::Poll)
        .await
        .unwrap()
        .expect("a notification");
    // A status a later version might write: the notification's column has no CHECK.
    sqlx::query("UPDATE notifications SET status = 'refunded' WHERE delivery_id = $1")
        .bind(delivery.as_uuid())
        .execute(&pool)
        .await
        .unwrap();
    for result in [
        store.notification(delivery).await.map(|_| ()),
        store.notification_of(id).await.map(|_| ()),
    ] {
        assert!(
            matches!(&result, Err(StoreError::Corrupt(e)) if e.contains("refunded")),
            "{result:?}"
        );
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_attempt_is_logged_numbered_with_the_change_it_made(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (id, delivery) = terminal(&store, Status::Completed, Source::Webhook).await;
    let (_, untouched) = terminal(&store, Status::Declined, Source::Webhook).await;
    let long = "x".repeat(2_000);
    let next = Utc::now();
    store
        .notification_retry(&attempt(delivery, None, Some(&long)), next)
        .await
        .unwrap();
    store
        .notification_retry(&attempt(delivery, Some(503), Some("HTTP 503")), next)
        .await
        .unwrap();
    store
        .notification_failed(&attempt(delivery, Some(503), Some("HTTP 503")))
        .await
        .unwrap();
    // An attempt made after it was given up (a redelivered job) is on record too, and an
    // accepted one is a delivery whatever came before.
    store
        .notification_delivered(attempt(delivery, Some(200), None), LEGACY)
        .await
        .unwrap();

    let log = store.attempts_of(delivery).await.unwrap();
    let numbers: Vec<i32> = log.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let statuses: Vec<Option<i16>> = log.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [None, Some(503), Some(503), Some(200)]);
    assert_eq!(log[0].error.as_ref().map(String::len), Some(512), "clipped");
    assert!(log.iter().all(|a| a.duration_ms == 7));
    assert_eq!(log[3].error, None);
    let late = store.notification_of(id).await.unwrap().unwrap();
    assert_eq!(late.row.attempts, 4, "the counter is the log's");
    assert!(late.row.failed_at.is_some(), "it was given up…");
    assert_eq!(
        late.row.delivery(),
        domain::owner::Delivery::Delivered,
        "…and then heard"
    );
    assert!(late.next_attempt_at.is_none());
    assert!(store.attempts_of(untouched).await.unwrap().is_empty());
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_failing_period_starts_with_a_failure_newer_than_the_last_change(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (_, delivery) = terminal(&store, Status::Completed, Source::Webhook).await;
    let at = |seconds_ago: i64| {
        let mut a = attempt(delivery, Some(503), Some("HTTP 503"));
        a.started_at = Utc::now() - chrono::Duration::seconds(seconds_ago);
        a
    };
    let next = Utc::now();
    let first = store.notification_retry(&at(0), next).await.unwrap();
    let since = first.and_then(|f| f.since).expect("a failing period");
    let later = store.notification_retry(&at(0), next).await.unwrap();
    assert_eq!(
        later.and_then(|f| f.since),
        Some(since),
        "it keeps its start"
    );

    // Enabled again (both ways of setting a status clear the period)…
    store
        .set_client_status(LEGACY, domain::ClientStatus::Active)
        .await
        .unwrap();
    let app = store.client_app(LEGACY).await.unwrap().unwrap();
    assert_eq!(app.failing_since, None);
    store.notification_retry(&at(0), next).await.unwrap();
    store
        .update_client_app(LEGACY, None, None, None, Some(domain::ClientStatus::Active))
        .await
        .unwrap();
    let app = store.client_app(LEGACY).await.unwrap().unwrap();
    assert_eq!(app.failing_since, None);
    // …and a late report of an attempt older than that starts nothing…
    let stale = store.notification_retry(&at(60), next).await.unwrap();
    assert_eq!(stale.map(|f| f.since), Some(None));
    // …a new failure does.
    let fresh = store.notification_retry(&at(-1), next).await.unwrap();
    assert!(fresh.and_then(|f| f.since).is_some_and(|s| s > since));
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_notification_names_its_owner_and_its_first_delivery_when_it_was_owed(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let shop = ClientAppId::from(uuid::Uuid::now_v7());
    sqlx::query(
        "INSERT INTO client_apps (id, name, notify_url) VALUES ($1, 'shop', 'http://shop')",
    )
    .bind(shop.as_uuid())
    .execute(&pool)
    .await
    .unwrap();
    let (a, b) = (id(), id());
    store.insert_pending(a, None, shop).await.unwrap();
    store.insert_pending(b, None, LEGACY).await.unwrap();

    let owed = store
        .apply_status_many(&[
            change(a, Status::Completed, Source::Poll),
            change(b, Status::Declined, Source::Webhook),
            change(a, Status::Declined, Source::Webhook),
        ])
        .await
        .unwrap();
    let owners: Vec<Option<ClientAppId>> = owed.iter().map(|o| o.map(|o| o.client_app)).collect();
    assert_eq!(owners, vec![Some(shop), Some(LEGACY), None]);
    let (da, db) = (owed[0].unwrap().delivery_id, owed[1].unwrap().delivery_id);

    // The sweeper's and a recovery's notifications name their owners too.
    let due = store.overdue(Duration::ZERO, 100).await.unwrap().unwrap();
    let mut swept: Vec<(DeliveryId, ClientAppId)> = due
        .notifications
        .iter()
        .map(|n| (n.delivery_id, n.client_app))
        .collect();
    swept.sort();
    let mut expected = vec![(da, shop), (db, LEGACY)];
    expected.sort();
    assert_eq!(swept, expected);
    let recovered = store
        .recover_notifications(shop, Utc::now() - chrono::Duration::hours(1), None, 10)
        .await
        .unwrap();
    let recovered: Vec<(DeliveryId, ClientAppId)> = recovered
        .iter()
        .map(|n| (n.delivery_id, n.client_app))
        .collect();
    assert_eq!(recovered, vec![(da, shop)]);

    // Both endpoints fail; a delivery to one ends its failing period only.
    let failing_since = |owner| {
        let store = store.clone();
        async move {
            store
                .client_app(owner)
                .await
                .unwrap()
                .unwrap()
                .failing_since
        }
    };
    let next = Utc::now();
    for delivery in [da, db] {
        let failed = attempt(delivery, Some(503), Some("HTTP 503"));
        store.notification_retry(&failed, next).await.unwrap();
    }
    assert!(failing_since(shop).await.is_some() && failing_since(LEGACY).await.is_some());
    let delivered = |delivery, client_app| Delivered {
        attempt: attempt(delivery, Some(200), None),
        client_app,
    };
    let changed_at = |id| {
        let store = store.clone();
        async move { store.notification_of(id).await.unwrap().unwrap().created_at }
    };
    // A delivery answers when its status change was recorded, the first time only (of two
    // in one batch, the first delivers).
    let answers = store
        .notification_delivered_many(&[delivered(da, shop), delivered(da, shop)])
        .await
        .unwrap();
    assert_eq!(answers, vec![Some(changed_at(a).await), None]);
    assert_eq!(failing_since(shop).await, None);
    assert!(
        failing_since(LEGACY).await.is_some(),
        "the other still fails"
    );
    let answers = store
        .notification_delivered_many(&[delivered(db, LEGACY)])
        .await
        .unwrap();
    assert_eq!(answers, vec![Some(changed_at(b).await)]);
    assert_eq!(failing_since(LEGACY).await, None);
    let again = store
        .notification_delivered_many(&[delivered(db, LEGACY)])
        .await
        .unwrap();
    assert_eq!(again, vec![None], "already delivered");
}
