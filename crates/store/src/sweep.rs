//! What the sweeper reads: work whose job Redis may have lost, overdue past a grace period.

use std::time::Duration;

use chrono::Utc;
use domain::TransactionId;
use uuid::Uuid;

use crate::{DueNotification, DuePoll, Store, StoreError};

/// Overdue work found by one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overdue {
    /// Transactions owed a submission attempt.
    pub submissions: Vec<TransactionId>,
    /// Polls owed.
    pub polls: Vec<DuePoll>,
    /// Notifications owed a delivery.
    pub notifications: Vec<DueNotification>,
}

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
        let notifications = sqlx::query(
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
                .map(|(id, n)| DuePoll { id: id.into(), n })
                .collect(),
            notifications: notifications
                .iter()
                .map(DueNotification::try_from)
                .collect::<Result<_, StoreError>>()?,
        }))
    }
}
