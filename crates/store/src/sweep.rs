//! What the sweeper reads: work whose job Redis may have lost, overdue past a grace period.
//!
//! The due times live on the rows the pipeline updates, unindexed (so those updates can be
//! HOT). The sweeper finds them through `open_work`: one row per transaction until its
//! notification is delivered, whose `check_at` is never later than the transaction's earliest
//! due time (`lower_check_sql!`). A sweep looks only at rows whose `check_at` has passed, and
//! moves each to its transaction's next due time, so a transaction that finishes within the
//! grace period is never looked at.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Row, postgres::PgRow};

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

/// The sweep, in one statement: the `open_work` rows to look at before `$1` (at most `$2`,
/// longest waiting first) with their transactions' due work; each row's `check_at` moved to its
/// earliest due time (or `$3` if nothing is owed: looked at again then, in case a re-owe raced
/// this sweep); rows whose notification was delivered (or with no transaction) dropped.
const SWEEP: &str = "WITH candidates AS (
         SELECT id FROM open_work WHERE check_at < $1 ORDER BY check_at LIMIT $2
     ), state AS (
         SELECT c.id, t.id IS NULL OR n.delivered_at IS NOT NULL AS settled,
                t.trace, t.client_app_id, t.poll_number, t.next_attempt_at AS submit_at,
                t.next_poll_at AS poll_at,
                n.delivery_id, n.status,
                CASE WHEN n.delivered_at IS NULL AND n.failed_at IS NULL
                     THEN n.next_attempt_at END AS notify_at
         FROM candidates c
         LEFT JOIN transactions t ON t.id = c.id
         LEFT JOIN notifications n ON n.transaction_id = c.id
     ), dropped AS (
         DELETE FROM open_work o USING state s WHERE o.id = s.id AND s.settled
     ), moved AS (
         UPDATE open_work o
         SET check_at = coalesce(least(s.submit_at, s.poll_at, s.notify_at), $3)
         FROM state s WHERE o.id = s.id AND NOT s.settled
     )
     SELECT id, id AS transaction_id, trace, client_app_id, poll_number, submit_at, poll_at,
            delivery_id, status, notify_at
     FROM state WHERE NOT settled";

/// How long a transaction that owes nothing (a poll chain that expired, a notification given
/// up) waits before the sweeper looks at it again.
const RECHECK: chrono::Duration = chrono::Duration::hours(1);

/// Arbitrary constant naming the sweeper's advisory lock.
const SWEEPER_LOCK: i64 = 0x7478_6e73_7765_6570; // "txnsweep"

impl Store {
    /// Work overdue by more than `grace`, looking at `limit` transactions at most; `None` if
    /// another sweeper holds the lock.
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
        let rows = sqlx::query(SWEEP)
            .bind(cutoff)
            .bind(limit)
            .bind(Utc::now() + RECHECK)
            .fetch_all(&mut *tx)
            .await?;
        let overdue = overdue_of(&rows, cutoff)?;
        tx.commit().await?;
        Ok(Some(overdue))
    }
}

/// The work of `rows` (the sweep's) due before `cutoff`, each kind most overdue first.
fn overdue_of(rows: &[PgRow], cutoff: DateTime<Utc>) -> Result<Overdue, StoreError> {
    let mut submissions = Vec::new();
    let mut polls = Vec::new();
    let mut notifications = Vec::new();
    for row in rows {
        let due = |column: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
            let at: Option<DateTime<Utc>> = row.try_get(column)?;
            Ok(at.filter(|at| *at < cutoff))
        };
        if let Some(at) = due("submit_at")? {
            submissions.push((at, DueSubmission::try_from(row)?));
        }
        if let Some(at) = due("poll_at")? {
            polls.push((at, DuePoll::try_from(row)?));
        }
        if let Some(at) = due("notify_at")? {
            notifications.push((at, DueNotification::try_from(row)?));
        }
    }
    Ok(Overdue {
        submissions: by_due(submissions),
        polls: by_due(polls),
        notifications: by_due(notifications),
    })
}

/// The items of `due`, earliest due first.
fn by_due<T>(mut due: Vec<(DateTime<Utc>, T)>) -> Vec<T> {
    due.sort_by_key(|(at, _)| *at);
    due.into_iter().map(|(_, item)| item).collect()
}
