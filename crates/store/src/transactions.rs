//! The `transactions` table and its history (`transaction_events`): inserts, reads, the
//! submission and poll chain, and status changes (which write their notification too).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use domain::{ClientAppId, DeliveryId, Money, Source, Status, TransactionId};
use uuid::Uuid;

use crate::{
    AgedRow, HistoryEntry, NewRow, OwedNotification, StatusChange, Store, StoreError, Submitted,
    TransactionRow, rows,
};

impl Store {
    /// Inserts a pending transaction, in no trace, with its `api` history entry and a
    /// submission owed now; false if it already existed (the first row wins).
    pub async fn insert_pending(
        &self,
        id: TransactionId,
        money: Option<Money>,
        client_app: ClientAppId,
    ) -> Result<bool, StoreError> {
        let row = NewRow {
            id,
            money,
            client_app,
            owes_submission: true,
            trace: None,
        };
        Ok(single(self.insert_pending_many(&[row]).await?))
    }

    /// [`Store::insert_pending`] for many rows in one statement, each owing a submission only if
    /// it says so; one flag per row, in order.
    pub async fn insert_pending_many(&self, rows: &[NewRow]) -> Result<Vec<bool>, StoreError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id.as_uuid()).collect();
        let amounts: Vec<Option<i64>> = rows
            .iter()
            .map(|r| r.money.map(|m| m.amount.minor_units()))
            .collect();
        let currencies: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.money.as_ref().map(|m| m.currency.as_str()))
            .collect();
        let owners: Vec<Uuid> = rows.iter().map(|r| r.client_app.as_uuid()).collect();
        let owed: Vec<bool> = rows.iter().map(|r| r.owes_submission).collect();
        let traces: Vec<Option<&str>> = rows.iter().map(|r| r.trace.as_deref()).collect();
        let inserted: Vec<Uuid> = fetch_all!(self, sqlx::query_scalar(
            "WITH input AS (
                 SELECT DISTINCT ON (id) id, amount, currency, client_app_id, owed, trace
                 FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::bool[], $6::text[])
                      AS i(id, amount, currency, client_app_id, owed, trace)
             ), inserted AS (
                 INSERT INTO transactions (id, status, amount, currency, client_app_id, next_attempt_at, trace)
                 SELECT id, 'pending', amount, currency, client_app_id, CASE WHEN owed THEN now() END, trace
                 FROM input
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id
             ), events AS (
                 INSERT INTO transaction_events (transaction_id, from_status, to_status, source)
                 SELECT id, NULL, 'pending', 'api' FROM inserted
             ), open AS (
                 INSERT INTO open_work (id, check_at) SELECT id, now() FROM inserted
             )
             SELECT id FROM inserted",
        )
        .bind(&ids)
        .bind(&amounts)
        .bind(&currencies)
        .bind(&owners)
        .bind(&owed)
        .bind(&traces));
        // A duplicate within the batch did not insert: only its first occurrence reports true.
        Ok(returned(&ids, inserted))
    }

    /// The transaction `id`, if it exists.
    pub async fn get(&self, id: TransactionId) -> Result<Option<TransactionRow>, StoreError> {
        Ok(self.get_many(&[id]).await?.pop().flatten())
    }

    /// [`Store::get`] for many ids in one statement; one answer per id, in order.
    pub async fn get_many(
        &self,
        ids: &[TransactionId],
    ) -> Result<Vec<Option<TransactionRow>>, StoreError> {
        let aged = self.get_many_aged(ids).await?;
        Ok(aged.into_iter().map(|a| a.map(|a| a.row)).collect())
    }

    /// [`Store::get_many`], each row with its age at the look-up.
    pub async fn get_many_aged(
        &self,
        ids: &[TransactionId],
    ) -> Result<Vec<Option<AgedRow>>, StoreError> {
        let uuids: Vec<Uuid> = ids.iter().map(TransactionId::as_uuid).collect();
        let rows = fetch_all!(
            self,
            sqlx::query(concat!(
            "SELECT ",
            transaction_columns_sql!(),
            ", (extract(epoch FROM statement_timestamp() - created_at) * 1000)::bigint AS age_ms
             FROM transactions WHERE id = ANY($1)"
        ))
            .bind(&uuids)
        );
        let mut found: HashMap<Uuid, AgedRow> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let row = TransactionRow::try_from(r)?;
            let age_ms: i64 = sqlx::Row::try_get(r, "age_ms")?;
            let age = std::time::Duration::from_millis(age_ms.max(0) as u64);
            found.insert(row.id.as_uuid(), AgedRow { row, age });
        }
        Ok(uuids.iter().map(|id| found.get(id).cloned()).collect())
    }

    /// The history of `id`, oldest first.
    pub async fn history(&self, id: TransactionId) -> Result<Vec<HistoryEntry>, StoreError> {
        rows::all_by(
            &self.pool,
            "SELECT to_status, source, created_at FROM transaction_events
             WHERE transaction_id = $1 ORDER BY id",
            id.as_uuid(),
        )
        .await
    }

    /// Records that the next submission attempt is due at `at` (the outbox of a retry), and
    /// one more failure spent if `spent_a_failure`.
    pub async fn submission_due(
        &self,
        id: TransactionId,
        at: DateTime<Utc>,
        spent_a_failure: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "WITH changed AS (
                 UPDATE transactions SET next_attempt_at = $2, updated_at = now(),
                        submit_failures = submit_failures + $3
                 WHERE id = $1 AND ",
            owes_submission_sql!(),
            " RETURNING id, next_attempt_at
             ) ",
            lower_check_sql!("SELECT id, next_attempt_at FROM changed")
        ))
        .bind(id.as_uuid())
        .bind(at)
        .bind(i32::from(spent_a_failure))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the submission and that poll 1 is due at `first_poll_at`; false if the row was
    /// already submitted or terminal.
    pub async fn mark_submitted(
        &self,
        id: TransactionId,
        first_poll_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(single(
            self.mark_submitted_many(&[Submitted { id, first_poll_at }])
                .await?,
        ))
    }

    /// [`Store::mark_submitted`] for many rows in one statement; one flag per row, in order.
    pub async fn mark_submitted_many(&self, rows: &[Submitted]) -> Result<Vec<bool>, StoreError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id.as_uuid()).collect();
        let polls: Vec<DateTime<Utc>> = rows.iter().map(|r| r.first_poll_at).collect();
        let updated: Vec<Uuid> = fetch_all!(
            self,
            sqlx::query_scalar(concat!(
                "WITH changed AS (
                 UPDATE transactions t
                 SET submitted_at = now(), next_attempt_at = NULL, poll_number = 1,
                     next_poll_at = v.at, updated_at = now()
                 FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, at)
                 WHERE t.id = v.id AND ",
                owes_submission_sql!(),
                " RETURNING t.id, t.next_poll_at
             ), lower AS (",
                lower_check_sql!("SELECT id, next_poll_at FROM changed"),
                ") SELECT id FROM changed"
            ))
            .bind(&ids)
            .bind(&polls)
        );
        Ok(returned(&ids, updated))
    }

    /// Moves a pending transaction to terminal `status` with its history entry and its
    /// notification, in one statement. Returns the new notification's delivery id, or `None`
    /// if the transaction was no longer pending (a duplicate or stale report changes nothing).
    pub async fn apply_status(
        &self,
        id: TransactionId,
        status: Status,
        source: Source,
    ) -> Result<Option<DeliveryId>, StoreError> {
        let changed = single(
            self.apply_status_many(&[StatusChange { id, status, source }])
                .await?,
        );
        Ok(changed.map(|owed| owed.delivery_id))
    }

    /// [`Store::apply_status`] for many rows in one statement, each answered with the
    /// notification it owes and to whom; one answer per row, in order. Of two changes of one
    /// transaction in a batch, only the first can apply.
    pub async fn apply_status_many(
        &self,
        rows: &[StatusChange],
    ) -> Result<Vec<Option<OwedNotification>>, StoreError> {
        // The SQL guard of `Status::can_change_to`: only pending changes, only to terminal.
        let allowed: Vec<&StatusChange> = rows
            .iter()
            .filter(|r| Status::Pending.can_change_to(r.status))
            .collect();
        let ids: Vec<Uuid> = allowed.iter().map(|r| r.id.as_uuid()).collect();
        let statuses: Vec<&str> = allowed.iter().map(|r| r.status.as_str()).collect();
        let sources: Vec<&str> = allowed.iter().map(|r| r.source.as_str()).collect();
        let deliveries: Vec<DeliveryId> = allowed.iter().map(|_| DeliveryId::generate()).collect();
        let changed: Vec<(Uuid, Uuid, Uuid)> = if ids.is_empty() {
            Vec::new()
        } else {
            fetch_all!(self, sqlx::query_as(concat!(
                "WITH input AS (
                     SELECT DISTINCT ON (id) id, status, source, delivery_id
                     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[])
                          WITH ORDINALITY AS i(id, status, source, delivery_id, n)
                     ORDER BY id, n
                 ), changed AS (
                     UPDATE transactions t
                     SET status = i.status, next_attempt_at = NULL, next_poll_at = NULL, updated_at = now()
                     FROM input i
                     WHERE t.id = i.id AND t.status = 'pending'
                     RETURNING t.id, i.status, i.source, i.delivery_id, t.client_app_id
                 ), event AS (
                     INSERT INTO transaction_events (transaction_id, from_status, to_status, source)
                     SELECT id, 'pending', status, source FROM changed
                 ), lower AS (",
                lower_check_sql!("SELECT id, now() FROM changed"),
                "), notification AS (
                     INSERT INTO notifications (delivery_id, transaction_id, status, next_attempt_at)
                     SELECT delivery_id, id, status, now() FROM changed
                 )
                 SELECT id, delivery_id, client_app_id FROM changed",
            ))
            .bind(&ids)
            .bind(&statuses)
            .bind(&sources)
            .bind(deliveries.iter().map(DeliveryId::as_uuid).collect::<Vec<_>>()))
        };
        let changed: HashMap<Uuid, (Uuid, Uuid)> = changed
            .into_iter()
            .map(|(id, delivery, owner)| (id, (delivery, owner)))
            .collect();
        let mut allowed_deliveries = deliveries.into_iter();
        Ok(rows
            .iter()
            .map(|row| {
                if !Status::Pending.can_change_to(row.status) {
                    return None;
                }
                let delivery = allowed_deliveries.next()?;
                let (changed_by, owner) = changed.get(&row.id.as_uuid())?;
                (*changed_by == delivery.as_uuid()).then(|| OwedNotification {
                    delivery_id: delivery,
                    client_app: ClientAppId::from(*owner),
                })
            })
            .collect())
    }

    /// Moves the poll chain from poll `n` to poll `n + 1`, due at `at`; false if the row is
    /// terminal or already past poll `n` (a stale chain must not fork).
    pub async fn schedule_next_poll(
        &self,
        id: TransactionId,
        n: i32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let updated: i64 = sqlx::query_scalar(concat!(
            "WITH changed AS (
                 UPDATE transactions SET poll_number = $2 + 1, next_poll_at = $3, updated_at = now()
                 WHERE id = $1 AND status = 'pending' AND poll_number = $2
                 RETURNING id, next_poll_at
             ), lower AS (",
            lower_check_sql!("SELECT id, next_poll_at FROM changed"),
            ") SELECT count(*) FROM changed"
        ))
        .bind(id.as_uuid())
        .bind(n)
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        Ok(updated == 1)
    }

    /// The third party lost submitted transaction `id` (found by poll `n`): it owes a
    /// submission again, due now, and its poll chain stops. False if it is no longer pending,
    /// not submitted, or past poll `n`.
    pub async fn resubmission_due(&self, id: TransactionId, n: i32) -> Result<bool, StoreError> {
        let updated: i64 = sqlx::query_scalar(concat!(
            "WITH changed AS (
                 UPDATE transactions
                 SET submitted_at = NULL, next_attempt_at = now(), next_poll_at = NULL,
                     updated_at = now(), submit_failures = 0
                 WHERE id = $1 AND status = 'pending' AND submitted_at IS NOT NULL
                   AND poll_number = $2
                 RETURNING id, next_attempt_at
             ), lower AS (",
            lower_check_sql!("SELECT id, next_attempt_at FROM changed"),
            ") SELECT count(*) FROM changed"
        ))
        .bind(id.as_uuid())
        .bind(n)
        .fetch_one(&self.pool)
        .await?;
        Ok(updated == 1)
    }

    /// Stops polling for good and flags the transaction; false if it was not pending.
    pub async fn mark_poll_expired(&self, id: TransactionId) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE transactions SET poll_expired_at = now(), next_poll_at = NULL, updated_at = now()
             WHERE id = $1 AND status = 'pending' AND poll_expired_at IS NULL",
        )
        .bind(id.as_uuid())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }
}

/// The answer of a batch of one row (a batch answers each of its rows, in order).
fn single<T: Default>(answers: Vec<T>) -> T {
    answers.into_iter().next().unwrap_or_default()
}

/// One flag per id of a batch, in order: whether the statement returned it (an id twice in
/// the batch only for its first occurrence).
fn returned(ids: &[Uuid], returned: Vec<Uuid>) -> Vec<bool> {
    let mut returned: HashSet<Uuid> = returned.into_iter().collect();
    ids.iter().map(|id| returned.remove(id)).collect()
}
