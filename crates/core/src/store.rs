//! The Postgres store: the record of transactions, their history and their notifications.
//!
//! Every write that implies follow-up work records it in the same statement (the outbox rule:
//! `next_attempt_at`, `next_poll_at`, or the `notifications` row), so the sweeper can redo
//! whatever a lost Redis job would have done.

use std::time::Duration;

use chrono::{DateTime, Utc};
use std::{
    collections::{HashMap, HashSet},
    str::FromStr,
};

use sqlx::{
    PgPool, Row,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use uuid::Uuid;

use crate::{Money, Source, Status, TransactionId, money::InvalidMoney};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres failed or could not be reached.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value this code does not know (a status, say).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<InvalidMoney> for StoreError {
    fn from(e: InvalidMoney) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// The SQL form of [`TransactionRow::owes_submission`], for statements that must only touch
/// rows still owed a submission (a macro so it can be `concat!`ed into literal SQL).
macro_rules! owes_submission_sql {
    () => {
        "status = 'pending' AND submitted_at IS NULL"
    };
}

/// A transaction as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRow {
    /// Its id.
    pub id: TransactionId,
    /// Its current status.
    pub status: Status,
    /// Amount and currency, if it has them.
    pub money: Option<Money>,
    /// When the third party accepted it.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the next submission attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The current poll's number.
    pub poll_number: i32,
    /// When the current poll is due.
    pub next_poll_at: Option<DateTime<Utc>>,
    /// When polling gave up.
    pub poll_expired_at: Option<DateTime<Utc>>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl TransactionRow {
    /// Whether the transaction still needs submitting to the third party: pending and never
    /// accepted there. The SQL guards of the submission statements say the same.
    pub fn owes_submission(&self) -> bool {
        !self.status.is_terminal() && self.submitted_at.is_none()
    }
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The status entered.
    pub status: Status,
    /// Who caused it.
    pub source: Source,
    /// When.
    pub at: DateTime<Utc>,
}

/// A notification owed to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    /// Its id, sent as `webhook-id`.
    pub delivery_id: Uuid,
    /// The transaction.
    pub transaction_id: TransactionId,
    /// The status to tell.
    pub status: Status,
    /// Attempts so far.
    pub attempts: i32,
    /// When the client accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When we gave up.
    pub failed_at: Option<DateTime<Utc>>,
}

/// A notification with what an operator wants to know of its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationDetail {
    /// The notification.
    pub row: NotificationRow,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was recorded (the status change it tells of).
    pub created_at: DateTime<Utc>,
}

/// A transaction to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRow {
    /// Its id.
    pub id: TransactionId,
    /// Amount and currency, if given.
    pub money: Option<Money>,
}

/// Overdue work found by one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overdue {
    /// Transactions owed a submission attempt.
    pub submissions: Vec<TransactionId>,
    /// Transactions owed a poll: (id, poll number).
    pub polls: Vec<(TransactionId, i32)>,
    /// Notifications owed a delivery: (delivery id, transaction, status).
    pub notifications: Vec<(Uuid, TransactionId, Status)>,
}

/// Arbitrary constant naming the sweeper's advisory lock.
const SWEEPER_LOCK: i64 = 0x7478_6e73_7765_6570; // "txnsweep"

fn parse_status(s: &str) -> Result<Status, StoreError> {
    s.parse()
        .map_err(|e: crate::status::UnknownStatus| StoreError::Corrupt(e.to_string()))
}

fn parse_source(s: &str) -> Result<Source, StoreError> {
    s.parse()
        .map_err(|e: crate::status::UnknownSource| StoreError::Corrupt(e.to_string()))
}

/// Handle to the Postgres store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A pool of at most `max_connections` to `url`; connects lazily, so this works while
    /// Postgres is down (calls then fail with [`StoreError::Database`]).
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        // Batch statements filter on `unnest($1::uuid[])`: a generic plan cached on a fresh
        // (unanalysed) table degrades to a sequential scan, so plan with the actual values.
        let options =
            PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// A store over an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations in `migrations/` (under sqlx's advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Checks the connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether any transaction is recorded (a Redis that knows nothing has then lost data).
    pub async fn has_transactions(&self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM transactions)")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Inserts a pending transaction with its `api` history entry and a submission owed now;
    /// false if it already existed (the first row wins).
    pub async fn insert_pending(
        &self,
        id: TransactionId,
        money: Option<Money>,
    ) -> Result<bool, StoreError> {
        let row = NewRow { id, money };
        Ok(self
            .insert_pending_many(&[row])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// [`Store::insert_pending`] for many rows in one statement; one flag per row, in order.
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
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "WITH input AS (
                 SELECT DISTINCT ON (id) id, amount, currency
                 FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS i(id, amount, currency)
             ), inserted AS (
                 INSERT INTO transactions (id, status, amount, currency, next_attempt_at)
                 SELECT id, 'pending', amount, currency, now() FROM input
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id
             ), events AS (
                 INSERT INTO transaction_events (transaction_id, from_status, to_status, source)
                 SELECT id, NULL, 'pending', 'api' FROM inserted
             )
             SELECT id FROM inserted",
        )
        .bind(&ids)
        .bind(&amounts)
        .bind(&currencies)
        .fetch_all(&self.pool)
        .await?;
        let mut inserted: HashSet<Uuid> = inserted.into_iter().collect();
        // A duplicate within the batch did not insert: only its first occurrence reports true.
        Ok(ids.iter().map(|id| inserted.remove(id)).collect())
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
        let uuids: Vec<Uuid> = ids.iter().map(TransactionId::as_uuid).collect();
        let rows = sqlx::query(
            "SELECT id, status, amount, currency::text AS currency, submitted_at, next_attempt_at,
                    poll_number, next_poll_at, poll_expired_at, created_at, updated_at
             FROM transactions WHERE id = ANY($1)",
        )
        .bind(&uuids)
        .fetch_all(&self.pool)
        .await?;
        let mut found: HashMap<Uuid, TransactionRow> = HashMap::with_capacity(rows.len());
        for r in rows {
            let row = TransactionRow {
                id: TransactionId::from(r.try_get::<Uuid, _>("id")?),
                status: parse_status(r.try_get("status")?)?,
                money: Money::from_parts(r.try_get("amount")?, r.try_get("currency")?)?,
                submitted_at: r.try_get("submitted_at")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                poll_number: r.try_get("poll_number")?,
                next_poll_at: r.try_get("next_poll_at")?,
                poll_expired_at: r.try_get("poll_expired_at")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            };
            found.insert(row.id.as_uuid(), row);
        }
        Ok(uuids.iter().map(|id| found.get(id).cloned()).collect())
    }

    /// The history of `id`, oldest first.
    pub async fn history(&self, id: TransactionId) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT to_status, source, created_at FROM transaction_events
             WHERE transaction_id = $1 ORDER BY id",
        )
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(HistoryEntry {
                    status: parse_status(r.try_get("to_status")?)?,
                    source: parse_source(r.try_get("source")?)?,
                    at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Records that the next submission attempt is due at `at` (the outbox of a retry).
    pub async fn submission_due(
        &self,
        id: TransactionId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "UPDATE transactions SET next_attempt_at = $2, updated_at = now() WHERE id = $1 AND ",
            owes_submission_sql!()
        ))
        .bind(id.as_uuid())
        .bind(at)
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
        Ok(self
            .mark_submitted_many(&[(id, first_poll_at)])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// [`Store::mark_submitted`] for many rows in one statement; one flag per row, in order.
    pub async fn mark_submitted_many(
        &self,
        rows: &[(TransactionId, DateTime<Utc>)],
    ) -> Result<Vec<bool>, StoreError> {
        let ids: Vec<Uuid> = rows.iter().map(|(id, _)| id.as_uuid()).collect();
        let polls: Vec<DateTime<Utc>> = rows.iter().map(|(_, at)| *at).collect();
        let updated: Vec<Uuid> = sqlx::query_scalar(concat!(
            "UPDATE transactions t
             SET submitted_at = now(), next_attempt_at = NULL, poll_number = 1,
                 next_poll_at = v.at, updated_at = now()
             FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, at)
             WHERE t.id = v.id AND ",
            owes_submission_sql!(),
            " RETURNING t.id"
        ))
        .bind(&ids)
        .bind(&polls)
        .fetch_all(&self.pool)
        .await?;
        let mut updated: HashSet<Uuid> = updated.into_iter().collect();
        Ok(ids.iter().map(|id| updated.remove(id)).collect())
    }

    /// Moves a pending transaction to terminal `status` with its history entry and its
    /// notification, in one statement. Returns the new notification's delivery id, or `None`
    /// if the transaction was no longer pending (a duplicate or stale report changes nothing).
    pub async fn apply_status(
        &self,
        id: TransactionId,
        status: Status,
        source: Source,
    ) -> Result<Option<Uuid>, StoreError> {
        Ok(self
            .apply_status_many(&[(id, status, source)])
            .await?
            .first()
            .copied()
            .flatten())
    }

    /// [`Store::apply_status`] for many rows in one statement; one answer per row, in order.
    /// Of two changes of one transaction in a batch, only the first can apply.
    pub async fn apply_status_many(
        &self,
        rows: &[(TransactionId, Status, Source)],
    ) -> Result<Vec<Option<Uuid>>, StoreError> {
        // The SQL guard of `Status::can_change_to`: only pending changes, only to terminal.
        let allowed: Vec<&(TransactionId, Status, Source)> = rows
            .iter()
            .filter(|(_, status, _)| Status::Pending.can_change_to(*status))
            .collect();
        let ids: Vec<Uuid> = allowed.iter().map(|(id, ..)| id.as_uuid()).collect();
        let statuses: Vec<&str> = allowed.iter().map(|(_, s, _)| s.as_str()).collect();
        let sources: Vec<&str> = allowed.iter().map(|(.., src)| src.as_str()).collect();
        let deliveries: Vec<Uuid> = allowed.iter().map(|_| Uuid::now_v7()).collect();
        let changed: Vec<(Uuid, Uuid)> = if ids.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
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
                     RETURNING t.id, i.status, i.source, i.delivery_id
                 ), event AS (
                     INSERT INTO transaction_events (transaction_id, from_status, to_status, source)
                     SELECT id, 'pending', status, source FROM changed
                 )
                 INSERT INTO notifications (delivery_id, transaction_id, status, next_attempt_at)
                 SELECT delivery_id, id, status, now() FROM changed
                 RETURNING transaction_id, delivery_id",
            )
            .bind(&ids)
            .bind(&statuses)
            .bind(&sources)
            .bind(&deliveries)
            .fetch_all(&self.pool)
            .await?
        };
        let changed: HashMap<Uuid, Uuid> = changed.into_iter().collect();
        let mut allowed_deliveries = allowed.iter().map(|(id, ..)| id.as_uuid()).zip(deliveries);
        Ok(rows
            .iter()
            .map(|(id, status, _)| {
                if !Status::Pending.can_change_to(*status) {
                    return None;
                }
                let (_, delivery) = allowed_deliveries.next()?;
                (changed.get(&id.as_uuid()) == Some(&delivery)).then_some(delivery)
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
        let updated = sqlx::query(
            "UPDATE transactions SET poll_number = $2 + 1, next_poll_at = $3, updated_at = now()
             WHERE id = $1 AND status = 'pending' AND poll_number = $2",
        )
        .bind(id.as_uuid())
        .bind(n)
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// The third party lost submitted transaction `id` (found by poll `n`): it owes a
    /// submission again, due now, and its poll chain stops. False if it is no longer pending,
    /// not submitted, or past poll `n`.
    pub async fn resubmission_due(&self, id: TransactionId, n: i32) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE transactions
             SET submitted_at = NULL, next_attempt_at = now(), next_poll_at = NULL, updated_at = now()
             WHERE id = $1 AND status = 'pending' AND submitted_at IS NOT NULL AND poll_number = $2",
        )
        .bind(id.as_uuid())
        .bind(n)
        .execute(&self.pool)
        .await?
        .rows_affected();
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

    /// The notification `delivery_id`, if it exists.
    pub async fn notification(
        &self,
        delivery_id: Uuid,
    ) -> Result<Option<NotificationRow>, StoreError> {
        Ok(self.notifications(&[delivery_id]).await?.pop().flatten())
    }

    /// [`Store::notification`] for many in one statement; one answer per id, in order.
    pub async fn notifications(
        &self,
        delivery_ids: &[Uuid],
    ) -> Result<Vec<Option<NotificationRow>>, StoreError> {
        let rows = sqlx::query(
            "SELECT delivery_id, transaction_id, status, attempts, delivered_at, failed_at
             FROM notifications WHERE delivery_id = ANY($1)",
        )
        .bind(delivery_ids)
        .fetch_all(&self.pool)
        .await?;
        let mut found: HashMap<Uuid, NotificationRow> = HashMap::with_capacity(rows.len());
        for r in rows {
            let row = NotificationRow {
                delivery_id: r.try_get("delivery_id")?,
                transaction_id: TransactionId::from(r.try_get::<Uuid, _>("transaction_id")?),
                status: parse_status(r.try_get("status")?)?,
                attempts: r.try_get("attempts")?,
                delivered_at: r.try_get("delivered_at")?,
                failed_at: r.try_get("failed_at")?,
            };
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
        let row = sqlx::query(
            "SELECT delivery_id, transaction_id, status, attempts, delivered_at, failed_at,
                    last_error, next_attempt_at, created_at
             FROM notifications WHERE transaction_id = $1",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(NotificationDetail {
                row: NotificationRow {
                    delivery_id: r.try_get("delivery_id")?,
                    transaction_id: TransactionId::from(r.try_get::<Uuid, _>("transaction_id")?),
                    status: parse_status(r.try_get("status")?)?,
                    attempts: r.try_get("attempts")?,
                    delivered_at: r.try_get("delivered_at")?,
                    failed_at: r.try_get("failed_at")?,
                },
                last_error: r.try_get("last_error")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Records a failed delivery attempt and when the next one is due.
    pub async fn notification_retry(
        &self,
        delivery_id: Uuid,
        attempts: i32,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET attempts = $2, last_error = $3, next_attempt_at = $4
             WHERE delivery_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(delivery_id)
        .bind(attempts)
        .bind(error)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that the client accepted the notification.
    pub async fn notification_delivered(
        &self,
        delivery_id: Uuid,
        attempts: i32,
    ) -> Result<(), StoreError> {
        self.notification_delivered_many(&[(delivery_id, attempts)])
            .await
    }

    /// [`Store::notification_delivered`] for many notifications in one statement.
    pub async fn notification_delivered_many(
        &self,
        rows: &[(Uuid, i32)],
    ) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
        let attempts: Vec<i32> = rows.iter().map(|(_, a)| *a).collect();
        sqlx::query(
            "UPDATE notifications n
             SET attempts = v.attempts, delivered_at = now(), next_attempt_at = NULL
             FROM unnest($1::uuid[], $2::int[]) AS v(delivery_id, attempts)
             WHERE n.delivery_id = v.delivery_id AND n.delivered_at IS NULL",
        )
        .bind(&ids)
        .bind(&attempts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on a notification (the client refused it, or retries ran out).
    pub async fn notification_failed(
        &self,
        delivery_id: Uuid,
        attempts: i32,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET attempts = $2, last_error = $3, failed_at = now(), next_attempt_at = NULL
             WHERE delivery_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(delivery_id)
        .bind(attempts)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Work overdue by more than `grace`, at most `limit` of each kind; `None` if another
    /// sweeper holds the lock.
    pub async fn overdue(
        &self,
        grace: Duration,
        limit: i64,
    ) -> Result<Option<Overdue>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(SWEEPER_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(None);
        }
        let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
        let submissions: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM transactions WHERE next_attempt_at < $1 ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let polls: Vec<(Uuid, i32)> = sqlx::query_as(
            "SELECT id, poll_number FROM transactions WHERE next_poll_at < $1 ORDER BY next_poll_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let notifications: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
            "SELECT delivery_id, transaction_id, status FROM notifications
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at < $1
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Overdue {
            submissions: submissions.into_iter().map(TransactionId::from).collect(),
            polls: polls
                .into_iter()
                .map(|(id, n)| (TransactionId::from(id), n))
                .collect(),
            notifications: notifications
                .into_iter()
                .map(|(d, id, status)| Ok((d, TransactionId::from(id), parse_status(&status)?)))
                .collect::<Result<_, StoreError>>()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> TransactionId {
        TransactionId::generate()
    }

    fn money(amount: i64, currency: &str) -> Option<Money> {
        Money::from_parts(Some(amount), Some(currency)).unwrap()
    }

    #[sqlx::test(migrations = "../../migrations")]
    async fn the_first_insert_wins_and_records_its_history(pool: PgPool) {
        let store = Store::from_pool(pool);
        let id = id();
        assert!(store.insert_pending(id, money(500, "EUR")).await.unwrap());
        assert!(!store.insert_pending(id, money(999, "USD")).await.unwrap());
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
    async fn a_terminal_status_applies_once_with_history_and_one_notification(pool: PgPool) {
        let store = Store::from_pool(pool);
        let id = id();
        store.insert_pending(id, None).await.unwrap();
        let delivery = store
            .apply_status(id, Status::Completed, Source::Webhook)
            .await
            .unwrap();
        assert!(delivery.is_some());
        assert_eq!(
            store
                .apply_status(id, Status::Completed, Source::Poll)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .apply_status(id, Status::Declined, Source::Poll)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .apply_status(id, Status::Pending, Source::Poll)
                .await
                .unwrap(),
            None
        );

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
        store
            .notification_retry(notification.delivery_id, 1, "client said 500", at)
            .await
            .unwrap();
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
        let store = Store::from_pool(pool);
        let (a, b) = (id(), id());
        let row = |id, amount| NewRow {
            id,
            money: money(amount, "EUR"),
        };
        let inserted = store
            .insert_pending_many(&[row(a, 1), row(b, 2), row(a, 3)])
            .await
            .unwrap();
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
                (a, Status::Completed, Source::Poll),
                (a, Status::Declined, Source::Webhook),
                (b, Status::Pending, Source::Poll),
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
            .mark_submitted_many(&[(a, Utc::now()), (b, Utc::now())])
            .await
            .unwrap();
        assert_eq!(
            submitted,
            vec![false, true],
            "a terminal row is not submitted"
        );
    }

    #[sqlx::test(migrations = "../../migrations")]
    async fn a_stale_poll_chain_cannot_fork(pool: PgPool) {
        let store = Store::from_pool(pool);
        let id = id();
        store.insert_pending(id, None).await.unwrap();
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
        for id in [late, fresh, submitted] {
            store.insert_pending(id, None).await.unwrap();
        }
        store
            .submission_due(late, Utc::now() - chrono::Duration::seconds(60))
            .await
            .unwrap();
        store
            .submission_due(fresh, Utc::now() + chrono::Duration::seconds(60))
            .await
            .unwrap();
        store
            .mark_submitted(submitted, Utc::now() - chrono::Duration::seconds(60))
            .await
            .unwrap();
        let done = id();
        store.insert_pending(done, None).await.unwrap();
        let delivered = store
            .apply_status(done, Status::Declined, Source::Poll)
            .await
            .unwrap()
            .unwrap();
        store.notification_delivered(delivered, 1).await.unwrap();

        let overdue = store
            .overdue(Duration::from_secs(30), 100)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(overdue.submissions, vec![late]);
        assert_eq!(overdue.polls, vec![(submitted, 1)]);
        assert!(
            overdue.notifications.is_empty(),
            "a delivered notification is not owed"
        );
    }
}
