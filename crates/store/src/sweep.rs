//! What the sweeper reads: work whose job Redis may have lost, overdue past a grace period.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, postgres::PgRow};

use crate::{DueNotification, DuePoll, DueSubmission, Store, StoreError};

/// Overdue work found by one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overdue {
    /// Transactions owed a submission attempt.
    pub submissions: Vec<DueSubmission>,
    /// Polls owed.
    pub polls: Vec<DuePoll>,
    /// Notifications owed a delivery.
    pub notifications: Vec<DueNotification>,
}

/// Submissions due before `$1`, at most `$2`, most overdue first.
const SUBMISSIONS_DUE: &str = "SELECT id, trace FROM transactions
     WHERE next_attempt_at < $1 ORDER BY next_attempt_at LIMIT $2";

/// Polls due before `$1`, at most `$2`, most overdue first.
const POLLS_DUE: &str = "SELECT id, poll_number, trace FROM transactions
     WHERE next_poll_at < $1 ORDER BY next_poll_at LIMIT $2";

/// Notifications owed and due before `$1`, at most `$2`, most overdue first.
const NOTIFICATIONS_DUE: &str = "SELECT n.delivery_id, n.transaction_id, n.status, t.trace
     FROM notifications n JOIN transactions t ON t.id = n.transaction_id
     WHERE n.delivered_at IS NULL AND n.failed_at IS NULL AND n.next_attempt_at < $1
     ORDER BY n.next_attempt_at LIMIT $2";

/// Arbitrary constant naming the sweeper's advisory lock.
const SWEEPER_LOCK: i64 = 0x7478_6e73_7765_6570; // "txnsweep"

impl Store {
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
        let Some(cutoff) = chrono::Duration::from_std(grace)
            .ok()
            .and_then(|grace| Utc::now().checked_sub_signed(grace))
        else {
            // A grace beyond chrono's range: nothing can be that overdue.
            tracing::warn!(
                ?grace,
                "sweep grace out of range: nothing counts as overdue"
            );
            return Ok(Some(Overdue::default()));
        };
        let overdue = Overdue {
            submissions: due(&mut tx, SUBMISSIONS_DUE, cutoff, limit).await?,
            polls: due(&mut tx, POLLS_DUE, cutoff, limit).await?,
            notifications: due(&mut tx, NOTIFICATIONS_DUE, cutoff, limit).await?,
        };
        tx.commit().await?;
        Ok(Some(overdue))
    }
}

/// The rows of `sql` due before `cutoff` (`$1`), at most `limit` (`$2`), each read as `T`.
async fn due<T>(
    tx: &mut PgConnection,
    sql: &str,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<T>, StoreError>
where
    T: for<'r> TryFrom<&'r PgRow, Error = StoreError>,
{
    let rows = sqlx::query(sql)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(tx)
        .await?;
    rows.iter().map(T::try_from).collect()
}
