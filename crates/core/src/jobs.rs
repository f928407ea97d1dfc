//! The four queues, their job payloads, and the deterministic job ids that make a repeated
//! push (a retry, the sweeper) a no-op while the job is held.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Status, TransactionId};

/// Queue names (under the deployment's `QUEUE_PREFIX`).
pub mod queue_name {
    /// Insert the row.
    pub const CREATE: &str = "create";
    /// Submit to the third party.
    pub const PROCESS: &str = "process";
    /// Poll the third party, or apply a status it reported.
    pub const UPDATE: &str = "update";
    /// Tell the client app.
    pub const NOTIFY: &str = "notify";
    /// All four, in pipeline order.
    pub const ALL: [&str; 4] = [CREATE, PROCESS, UPDATE, NOTIFY];
}

/// Insert the transaction's row (pushed by the producer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateJob {
    /// The transaction.
    pub id: TransactionId,
    /// Amount in minor units, if given.
    pub amount: Option<i64>,
    /// ISO 4217 code, if given.
    pub currency: Option<String>,
}

impl CreateJob {
    /// `create:<id>`.
    pub fn job_id(&self) -> String {
        format!("create:{}", self.id)
    }
}

/// Submit the transaction to the third party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessJob {
    /// The transaction.
    pub id: TransactionId,
    /// Pushed by the sweeper: an earlier attempt may have reached the third party, so ask it
    /// before submitting (delivery counts restart with a new job).
    #[serde(default)]
    pub recovered: bool,
    /// Amount and currency as inserted, so a first attempt needs no read (None: read the row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub money: Option<(Option<i64>, Option<String>)>,
}

impl ProcessJob {
    /// `process:<id>`.
    pub fn job_id(&self) -> String {
        format!("process:{}", self.id)
    }
}

/// Learn the outcome: poll number `n`, or apply a status the third party reported by webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum UpdateJob {
    /// Poll the third party (`poll:<id>:<n>`).
    Poll {
        /// The transaction.
        id: TransactionId,
        /// The poll's number in its chain (1-based).
        n: i32,
    },
    /// Apply a reported terminal status (`apply:<id>:<status>`).
    Apply {
        /// The transaction.
        id: TransactionId,
        /// The reported status.
        status: Status,
    },
}

impl UpdateJob {
    /// `poll:<id>:<n>` or `apply:<id>:<status>`.
    pub fn job_id(&self) -> String {
        match self {
            UpdateJob::Poll { id, n } => format!("poll:{id}:{n}"),
            UpdateJob::Apply { id, status } => format!("apply:{id}:{status}"),
        }
    }
}

/// Deliver one notification to the client app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyJob {
    /// The notification (also the `webhook-id` the client sees).
    pub delivery_id: Uuid,
    /// The transaction it is about.
    pub id: TransactionId,
    /// The terminal status to tell.
    pub status: Status,
}

impl NotifyJob {
    /// `notify:<delivery id>`.
    pub fn job_id(&self) -> String {
        format!("notify:{}", self.delivery_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_deterministic() {
        let id = TransactionId::parse("0193a6f0-0000-7000-8000-000000000001").unwrap();
        assert_eq!(
            ProcessJob {
                id,
                recovered: true,
                money: None,
            }
            .job_id(),
            format!("process:{id}")
        );
        assert_eq!(
            UpdateJob::Poll { id, n: 3 }.job_id(),
            format!("poll:{id}:3")
        );
        assert_eq!(
            UpdateJob::Apply {
                id,
                status: Status::Completed
            }
            .job_id(),
            format!("apply:{id}:completed")
        );
    }

    #[test]
    fn update_jobs_round_trip_as_tagged_json() {
        let id = TransactionId::generate();
        let job = UpdateJob::Poll { id, n: 2 };
        let json = serde_json::to_string(&job).unwrap();
        assert!(json.contains("\"kind\":\"poll\""));
        assert_eq!(serde_json::from_str::<UpdateJob>(&json).unwrap(), job);
    }
}
