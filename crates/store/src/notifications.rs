//! The `notifications` table: one row per terminal transaction, what the client app is owed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{ClientAppId, DeliveryId, TransactionId};
use uuid::Uuid;

use crate::{
    AttemptRecord, Delivered, DueNotification, Failing, NotificationDetail, NotificationRow, Store,
    StoreError, rows,
};

/// The start of every statement that appends an attempt to the log: the CTE `a`, numbering
/// it after the notification's last ($1 delivery id, $2 trigger, $3 start, $4 duration, $5
/// HTTP status, $6 error), so the numbering rule is written once.
macro_rules! append_attempt_sql {
    () => {
        "WITH a AS (
             INSERT INTO delivery_attempts
                 (delivery_id, attempt, trigger, started_at, duration_ms, http_status, error)
             SELECT $1, coalesce(max(attempt), 0) + 1, $2, $3, $4, $5, $6
             FROM delivery_attempts WHERE delivery_id = $1
             RETURNING attempt
         )"
    };
}

/// `query` (starting with [`append_attempt_sql`]) with `attempt` bound as $1 to $6.
fn with_attempt<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    attempt: &'q AttemptRecord,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(attempt.delivery_id.as_uuid())
        .bind(<&str>::from(attempt.trigger))
        .bind(attempt.started_at)
        .bind(attempt.duration_ms)
        .bind(attempt.http_status)
        .bind(attempt.error.as_deref())
}

impl Store {
    /// The notification `delivery_id`, if it exists.
    pub async fn notification(
        &self,
        delivery_id: DeliveryId,
    ) -> Result<Option<NotificationRow>, StoreError> {
        Ok(self.notifications(&[delivery_id]).await?.pop().flatten())
    }

    /// [`Store::notification`] for many in one statement; one answer per id, in order.
    pub async fn notifications(
        &self,
        delivery_ids: &[DeliveryId],
    ) -> Result<Vec<Option<NotificationRow>>, StoreError> {
        let rows = sqlx::query(
            "SELECT delivery_id, transaction_id, status, attempts, delivered_at, failed_at
             FROM notifications WHERE delivery_id = ANY($1)",
        )
        .bind(
            delivery_ids
                .iter()
                .map(DeliveryId::as_uuid)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?;
        let mut found: HashMap<DeliveryId, NotificationRow> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let row = NotificationRow::try_from(r)?;
            found.insert(row.delivery_id, row);
        }
        Ok(delivery_ids
            .iter()
            .map(|id| found.get(id).cloned())
            .collect())
    }

    /// The notification of transaction `id` with its delivery state, if one is owed.
    pub async fn notification_of(
        &self,
        id: TransactionId,
    ) -> Result<Option<NotificationDetail>, StoreError> {
        rows::one_by(
            &self.pool,
            "SELECT delivery_id, transaction_id, status, attempts, delivered_at, failed_at,
                    last_error, next_attempt_at, created_at
             FROM notifications WHERE transaction_id = $1",
            id.as_uuid(),
        )
        .await
    }

    /// Records a failed delivery `attempt` and when the next one is due, in one statement;
    /// what the client app's endpoint has been doing since.
    pub async fn notification_retry(
        &self,
        attempt: &AttemptRecord,
        at: DateTime<Utc>,
    ) -> Result<Option<Failing>, StoreError> {
        self.record_failed_attempt(attempt, Some(at)).await
    }

    /// Gives up on a notification after a failed `attempt` (the client refused it, or the
    /// schedule is exhausted), in one statement; what its client app's endpoint has been
    /// doing since.
    pub async fn notification_failed(
        &self,
        attempt: &AttemptRecord,
    ) -> Result<Option<Failing>, StoreError> {
        self.record_failed_attempt(attempt, None).await
    }

    /// Appends `attempt` to the log and moves its notification on: due again at `next`, or
    /// given up without one. The attempt is kept even if the notification was settled
    /// meanwhile (it was made: the client may have seen it). The client app is marked failing
    /// from this attempt unless it already was (only then is its row written); none is
    /// answered when the attempt is older than its last success or change.
    async fn record_failed_attempt(
        &self,
        attempt: &AttemptRecord,
        next: Option<DateTime<Utc>>,
    ) -> Result<Option<Failing>, StoreError> {
        let row = with_attempt(
            sqlx::query(concat!(
                append_attempt_sql!(),
                ", n AS (
                 UPDATE notifications
                 SET attempts = (SELECT attempt FROM a), last_error = $6, next_attempt_at = $7,
                     failed_at = CASE WHEN $7::timestamptz IS NULL THEN now() END
                 WHERE delivery_id = $1 AND delivered_at IS NULL AND failed_at IS NULL
                 RETURNING transaction_id, next_attempt_at
             ), lower AS (",
                lower_check_sql!("SELECT transaction_id, next_attempt_at FROM n"),
                "), owner AS (
                 -- A failure starts a failing period only if it began after the client app's
                 -- last success and its last change (an enable): a late report of an older
                 -- attempt does not.
                 SELECT c.id, c.status,
                        CASE WHEN c.failing_since IS NOT NULL THEN c.failing_since
                             WHEN c.updated_at < $3
                                  AND (c.last_success_at IS NULL OR c.last_success_at < $3)
                             THEN $3
                        END AS failing_since
                 FROM notifications o
                 JOIN transactions t ON t.id = o.transaction_id
                 JOIN client_apps c ON c.id = t.client_app_id
                 WHERE o.delivery_id = $1
             ), marked AS (
                 UPDATE client_apps c SET failing_since = owner.failing_since
                 FROM owner
                 WHERE c.id = owner.id AND c.failing_since IS NULL
                   AND owner.failing_since IS NOT NULL
             )
             SELECT id, failing_since, status FROM owner"
            )),
            attempt,
        )
        .bind(next)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Failing::try_from).transpose()
    }

    /// Appends a failed extra `attempt` (a resend) to the log; the notification's own schedule
    /// and state, and its client app's, are left as they are.
    pub async fn notification_extra_attempt(
        &self,
        attempt: &AttemptRecord,
    ) -> Result<(), StoreError> {
        with_attempt(
            sqlx::query(concat!(
                append_attempt_sql!(),
                " UPDATE notifications SET attempts = (SELECT attempt FROM a) WHERE delivery_id = $1"
            )),
            attempt,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that a disabled client app's notification waits until `at` (no attempt made).
    pub async fn notification_waits(
        &self,
        delivery_id: DeliveryId,
        why: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "WITH n AS (
                 UPDATE notifications SET last_error = $2, next_attempt_at = $3
                 WHERE delivery_id = $1 AND delivered_at IS NULL AND failed_at IS NULL
                 RETURNING transaction_id, next_attempt_at
             ) ",
            lower_check_sql!("SELECT transaction_id, next_attempt_at FROM n")
        ))
        .bind(delivery_id.as_uuid())
        .bind(why)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that `client_app` accepted the notification on `attempt`.
    pub async fn notification_delivered(
        &self,
        attempt: AttemptRecord,
        client_app: ClientAppId,
    ) -> Result<(), StoreError> {
        self.notification_delivered_many(&[Delivered {
            attempt,
            client_app,
        }])
        .await
        .map(drop)
    }

    /// [`Store::notification_delivered`] for many notifications in one statement: each
    /// attempt appended to the log, each notification marked delivered. One answer per row, in
    /// order: when the status change it tells of was recorded, if this attempt delivered it
    /// (none if it was delivered before).
    pub async fn notification_delivered_many(
        &self,
        rows: &[Delivered],
    ) -> Result<Vec<Option<DateTime<Utc>>>, StoreError> {
        let attempts = rows.iter().map(|r| &r.attempt);
        let ids: Vec<Uuid> = attempts.clone().map(|a| a.delivery_id.as_uuid()).collect();
        let triggers: Vec<&str> = attempts.clone().map(|a| a.trigger.into()).collect();
        let started: Vec<DateTime<Utc>> = attempts.clone().map(|a| a.started_at).collect();
        let took: Vec<i32> = attempts.clone().map(|a| a.duration_ms).collect();
        let statuses: Vec<Option<i16>> = attempts.map(|a| a.http_status).collect();
        let mut client_apps: Vec<Uuid> = rows.iter().map(|r| r.client_app.as_uuid()).collect();
        client_apps.sort_unstable();
        client_apps.dedup();
        let delivered: Vec<(Uuid, DateTime<Utc>)> = fetch_all!(
            self,
            sqlx::query_as(
                "WITH v AS (
                 SELECT DISTINCT ON (delivery_id) *
                 FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int[], $5::int2[])
                      AS v(delivery_id, trigger, started_at, duration_ms, http_status)
             ), a AS (
                 INSERT INTO delivery_attempts
                     (delivery_id, attempt, trigger, started_at, duration_ms, http_status)
                 SELECT v.delivery_id,
                        coalesce((SELECT max(d.attempt) FROM delivery_attempts d
                                  WHERE d.delivery_id = v.delivery_id), 0) + 1,
                        v.trigger, v.started_at, v.duration_ms, v.http_status
                 FROM v
                 RETURNING delivery_id, attempt
             ), healthy AS (
                 -- The client apps whose endpoints accepted these: no longer failing. Written
                 -- at most once a second per client app while all is well.
                 UPDATE client_apps SET last_success_at = now(), failing_since = NULL
                 WHERE id = ANY($6)
                   AND (failing_since IS NOT NULL OR last_success_at IS NULL
                        OR last_success_at < now() - interval '1 second')
             ), delivered AS (
                 UPDATE notifications n
                 SET attempts = a.attempt, delivered_at = now(), next_attempt_at = NULL
                 FROM a
                 WHERE n.delivery_id = a.delivery_id AND n.delivered_at IS NULL
                 RETURNING n.transaction_id, n.delivery_id, n.created_at
             ), settled AS (
                 -- Delivered is final: the transaction owes nothing more, ever.
                 DELETE FROM open_work WHERE id IN (SELECT transaction_id FROM delivered)
             )
             SELECT delivery_id, created_at FROM delivered",
            )
            .bind(&ids)
            .bind(&triggers)
            .bind(&started)
            .bind(&took)
            .bind(&statuses)
            .bind(&client_apps)
        );
        // A notification twice in the batch is delivered by its first attempt only.
        let mut delivered: HashMap<Uuid, DateTime<Utc>> = delivered.into_iter().collect();
        Ok(ids.iter().map(|id| delivered.remove(id)).collect())
    }

    /// Every attempt to deliver notification `delivery_id`, oldest first.
    pub async fn attempts_of(
        &self,
        delivery_id: DeliveryId,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        rows::all_by(
            &self.pool,
            "SELECT delivery_id, attempt, trigger, started_at, duration_ms, http_status, error
             FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
            delivery_id.as_uuid(),
        )
        .await
    }

    /// The notifications of `client_app` created in `[since, until)` that it has not accepted,
    /// at most `limit`, oldest first, to be pushed: a given-up one is made owed again from now;
    /// an owed one keeps its next attempt.
    pub async fn recover_notifications(
        &self,
        client_app: ClientAppId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<DueNotification>, StoreError> {
        let rows = sqlx::query(concat!(
            "WITH chosen AS (
                 SELECT n.delivery_id, t.trace FROM notifications n
                 JOIN transactions t ON t.id = n.transaction_id
                 WHERE t.client_app_id = $1 AND n.delivered_at IS NULL
                   AND n.created_at >= $2 AND ($3::timestamptz IS NULL OR n.created_at < $3)
                 ORDER BY n.created_at LIMIT $4
             ), owed AS (
                 UPDATE notifications n SET failed_at = NULL,
                     next_attempt_at = CASE WHEN n.failed_at IS NULL THEN n.next_attempt_at ELSE now() END
                 FROM chosen WHERE n.delivery_id = chosen.delivery_id
                 RETURNING n.delivery_id, n.transaction_id, n.status, n.next_attempt_at, chosen.trace
             ), lower AS (",
            lower_check_sql!("SELECT transaction_id, next_attempt_at FROM owed"),
            ")
             SELECT delivery_id, transaction_id, status, trace, $1::uuid AS client_app_id FROM owed"
        ))
        .bind(client_app.as_uuid())
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DueNotification::try_from).collect()
    }
}
