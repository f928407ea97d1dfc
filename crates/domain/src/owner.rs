//! The owner invariant: every accepted transaction has an owner until it is terminal — a job
//! in Redis (waiting, scheduled or running) or a row the sweeper will pick up. A dead job owns
//! nothing, so the sweeper revives the dead jobs this rule says still have work to do.

use crate::Status;

/// Where a notification's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Neither delivered nor given up: the client is still owed it.
    Owed,
    /// The client acknowledged it.
    Delivered,
    /// Given up after the last retry.
    GivenUp,
}

/// Whether a dead `create`, `process` or `update` job still has work to do: yes unless its
/// transaction's `status` is terminal. No row (`None`) counts as unfinished (a `create` that
/// died before its insert, or a job that outran it).
pub fn dead_job_owed(status: Option<Status>) -> bool {
    status.is_none_or(|status| !status.is_terminal())
}

/// Whether a dead `notify` job still has work to do: its notification exists and is owed.
pub fn dead_notification_owed(delivery: Option<Delivery>) -> bool {
    delivery == Some(Delivery::Owed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_job_is_owed_until_its_transaction_is_terminal() {
        assert!(dead_job_owed(None), "no row yet: create never landed");
        assert!(dead_job_owed(Some(Status::Pending)));
        for terminal in [Status::Completed, Status::Declined, Status::Failed] {
            assert!(!dead_job_owed(Some(terminal)), "{terminal}");
        }
    }

    #[test]
    fn a_dead_notification_is_owed_until_delivered_or_given_up() {
        assert!(dead_notification_owed(Some(Delivery::Owed)));
        assert!(!dead_notification_owed(Some(Delivery::Delivered)));
        assert!(!dead_notification_owed(Some(Delivery::GivenUp)));
        assert!(!dead_notification_owed(None), "no such notification");
    }
}
