//! Transaction statuses and the one rule for changing them.
//!
//! `pending` → `completed` | `declined` | `failed`; the three terminal statuses never change.
//! The Postgres guard (`WHERE status = 'pending'`) and the webhook's answer both follow
//! [`Status::can_change_to`] and [`webhook_decision`].

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr};

/// A transaction's status; its lower-case name is the same in JSON, Postgres and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(Display, EnumString, IntoStaticStr)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownStatus,
    parse_err_fn = UnknownStatus::of
)]
pub enum Status {
    /// Accepted, outcome not yet known.
    Pending,
    /// The third party completed it.
    Completed,
    /// The third party declined it.
    Declined,
    /// The third party never accepted it (retries exhausted or a permanent error).
    Failed,
}

impl Status {
    /// The lower-case name used in JSON and Postgres.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Status::Pending)
    }

    /// The transition rule: only `pending` changes, and only to a terminal status.
    pub fn can_change_to(&self, next: Status) -> bool {
        *self == Status::Pending && next.is_terminal()
    }
}

/// A status string that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl UnknownStatus {
    fn of(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// Who caused a status change (recorded in the history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(Display, EnumString, IntoStaticStr)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownSource,
    parse_err_fn = UnknownSource::of
)]
pub enum Source {
    /// The API accepted it.
    Api,
    /// The submission failed for good.
    Process,
    /// The third party's webhook.
    Webhook,
    /// A poll of the third party.
    Poll,
}

impl Source {
    /// The lower-case name used in JSON, metrics and Postgres.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// A source string that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source {0:?}")]
pub struct UnknownSource(pub String);

impl UnknownSource {
    fn of(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// What a status reported by the third party does to a transaction with status `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookDecision {
    /// A real change: record it (201).
    Apply,
    /// The same status is already recorded (200).
    AlreadyRecorded,
    /// A different terminal status after a terminal one (409): nothing changes.
    Conflict,
    /// `pending` on pending, or a stale `pending` after a terminal (200): nothing changes.
    Ignore,
}

/// The one transition function: decides what a reported status means for the current one.
pub fn webhook_decision(current: Status, reported: Status) -> WebhookDecision {
    if current.can_change_to(reported) {
        WebhookDecision::Apply
    } else if reported == Status::Pending {
        WebhookDecision::Ignore
    } else if current == reported {
        WebhookDecision::AlreadyRecorded
    } else {
        WebhookDecision::Conflict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;
    use WebhookDecision::*;

    const ALL: [Status; 4] = [Pending, Completed, Declined, Failed];

    #[test]
    fn only_pending_changes_and_only_to_a_terminal_status() {
        for from in ALL {
            for to in ALL {
                let allowed = from == Pending && to != Pending;
                assert_eq!(from.can_change_to(to), allowed, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn webhook_decisions_follow_the_contract() {
        assert_eq!(webhook_decision(Pending, Completed), Apply);
        assert_eq!(webhook_decision(Pending, Declined), Apply);
        assert_eq!(webhook_decision(Pending, Pending), Ignore);
        assert_eq!(webhook_decision(Completed, Pending), Ignore);
        assert_eq!(webhook_decision(Failed, Pending), Ignore);
        assert_eq!(webhook_decision(Completed, Completed), AlreadyRecorded);
        assert_eq!(webhook_decision(Declined, Declined), AlreadyRecorded);
        assert_eq!(webhook_decision(Completed, Declined), Conflict);
        assert_eq!(webhook_decision(Declined, Completed), Conflict);
        assert_eq!(webhook_decision(Failed, Completed), Conflict);
    }

    #[test]
    fn a_decision_to_apply_is_always_an_allowed_transition() {
        for from in ALL {
            for to in ALL {
                assert_eq!(webhook_decision(from, to) == Apply, from.can_change_to(to));
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert!("done".parse::<Status>().is_err());
        for s in [Source::Api, Source::Process, Source::Webhook, Source::Poll] {
            assert_eq!(s.as_str().parse::<Source>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("cron".parse::<Source>().is_err());
    }
}
