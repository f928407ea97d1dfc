//! The owner invariant: every accepted transaction has an owner until it is terminal — a job
//! in Redis (waiting, scheduled or running) or a row the sweeper will pick up. A dead job owns
//! nothing, so the sweeper revives the dead jobs this rule says still have work to do.

use crate::store::{NotificationRow, TransactionRow};

/// Whether a dead `create`, `process` or `update` job still has work to do: yes unless its
/// transaction is terminal. No row counts as unfinished (a `create` that died before its
/// insert, or a job that outran it).
pub fn dead_job_owed(row: Option<&TransactionRow>) -> bool {
    row.is_none_or(|row| !row.status.is_terminal())
}

/// Whether a dead `notify` job still has work to do: its notification is neither delivered
/// nor given up.
pub fn dead_notification_owed(notification: Option<&NotificationRow>) -> bool {
    notification.is_some_and(|n| n.delivered_at.is_none() && n.failed_at.is_none())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::{Status, TransactionId};

    fn row(status: Status) -> TransactionRow {
        TransactionRow {
            id: TransactionId::generate(),
            status,
            money: None,
            submitted_at: None,
            next_attempt_at: None,
            poll_number: 0,
            next_poll_at: None,
            poll_expired_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn notification(delivered: bool, failed: bool) -> NotificationRow {
        NotificationRow {
            delivery_id: uuid::Uuid::new_v4(),
            transaction_id: TransactionId::generate(),
            status: Status::Completed,
            attempts: 1,
            delivered_at: delivered.then(Utc::now),
            failed_at: failed.then(Utc::now),
        }
    }

    #[test]
    fn a_dead_job_is_owed_until_its_transaction_is_terminal() {
        assert!(dead_job_owed(None), "no row yet: create never landed");
        assert!(dead_job_owed(Some(&row(Status::Pending))));
        for terminal in [Status::Completed, Status::Declined, Status::Failed] {
            assert!(!dead_job_owed(Some(&row(terminal))), "{terminal}");
        }
    }

    #[test]
    fn a_dead_notification_is_owed_until_delivered_or_given_up() {
        assert!(dead_notification_owed(Some(&notification(false, false))));
        assert!(!dead_notification_owed(Some(&notification(true, false))));
        assert!(!dead_notification_owed(Some(&notification(false, true))));
        assert!(!dead_notification_owed(None), "no such notification");
    }
}
