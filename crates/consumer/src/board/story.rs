//! A transaction's story: its row, its history, its notification and its jobs in Redis, read
//! from Postgres and from every queue by the job ids it can have.

use chrono::{DateTime, Utc};
use domain::{DeliveryId, QueueName, Source, Status, TransactionId, jobs::job_ids_of};
use queue::JobInfo;
use serde::Serialize;
use store::{AttemptRecord, TransactionRow};

use super::{Board, BoardError};

/// Everything known of one transaction.
#[derive(Debug, Serialize)]
pub struct Story {
    /// Its id.
    pub id: TransactionId,
    /// Its row, if `create` has run; the amount only when revealed.
    pub transaction: Option<TransactionRow>,
    /// Its status changes, oldest first.
    pub history: Vec<Step>,
    /// The notification of its outcome, once it has one.
    pub notification: Option<Notification>,
    /// Its jobs the queues hold (or recently completed).
    pub jobs: Vec<QueuedJob>,
}

/// One status change.
#[derive(Debug, Serialize)]
pub struct Step {
    /// The status entered.
    pub status: Status,
    /// Who caused it.
    pub source: Source,
    /// When.
    pub at: DateTime<Utc>,
}

/// The client notification and its delivery.
#[derive(Debug, Serialize)]
pub struct Notification {
    /// Sent as `webhook-id`.
    pub delivery_id: DeliveryId,
    /// The status it tells.
    pub status: Status,
    /// Attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the client accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When delivery was given up.
    pub failed_at: Option<DateTime<Utc>>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Every attempt of its delivery log, oldest first.
    pub log: Vec<AttemptRecord>,
}

/// A job of the transaction and its queue.
#[derive(Debug, Serialize)]
pub struct QueuedJob {
    /// The queue.
    pub queue: QueueName,
    /// The job.
    #[serde(flatten)]
    pub job: JobInfo,
}

impl Story {
    /// Whether anything at all is known of the transaction.
    pub fn is_known(&self) -> bool {
        self.transaction.is_some() || !self.jobs.is_empty()
    }
}

/// Reads the story of `id`; payloads and the amount only when the board reveals them.
pub async fn load(board: &Board, id: TransactionId) -> Result<Story, BoardError> {
    let store = &board.store;
    let (row, history, notification) =
        tokio::try_join!(store.get(id), store.history(id), store.notification_of(id))?;
    let poll_number = row.as_ref().map_or(0, |r| r.poll_number);
    let delivery_id = notification.as_ref().map(|n| n.row.delivery_id);
    let log = match delivery_id {
        Some(delivery) => store.attempts_of(delivery).await?,
        None => Vec::new(),
    };
    let reveal = board.access.reveals();
    let mut jobs = Vec::new();
    let candidates = job_ids_of(id, poll_number, delivery_id);
    for (name, queue) in board.named_queues() {
        let ids: Vec<String> = candidates
            .iter()
            .filter(|(q, _)| *q == name)
            .map(|(_, job)| job.clone())
            .collect();
        for mut job in queue.find_jobs(&ids).await? {
            if !reveal {
                job.payload.clear();
            }
            jobs.push(QueuedJob { queue: name, job });
        }
    }
    Ok(Story {
        id,
        transaction: row.map(|mut r| {
            r.money = r.money.filter(|_| reveal);
            r
        }),
        history: history
            .into_iter()
            .map(|h| Step {
                status: h.status,
                source: h.source,
                at: h.at,
            })
            .collect(),
        notification: notification.map(|n| Notification {
            delivery_id: n.row.delivery_id,
            status: n.row.status,
            attempts: n.row.attempts,
            last_error: n.last_error,
            next_attempt_at: n.next_attempt_at,
            delivered_at: n.row.delivered_at,
            failed_at: n.row.failed_at,
            created_at: n.created_at,
            log,
        }),
        jobs,
    })
}
