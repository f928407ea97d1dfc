//! The four queues, their job payloads, and the deterministic job ids that make a repeated
//! push (a retry, the sweeper) a no-op while the job is held.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

use crate::{ClientAppId, DeliveryId, Money, Status, TransactionId, delivery::Trigger};

/// The four queues (their keys sit under the deployment's `QUEUE_PREFIX`), in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(Display, EnumString, IntoStaticStr, VariantArray)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownQueue,
    parse_err_fn = UnknownQueue::of
)]
pub enum QueueName {
    /// Insert the row.
    Create,
    /// Submit to the third party.
    Process,
    /// Poll the third party, or apply a status it reported.
    Update,
    /// Tell the client app.
    Notify,
}

impl QueueName {
    /// All four, in pipeline order.
    pub const ALL: &[QueueName] = QueueName::VARIANTS;

    /// The name in keys, settings and metrics.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// A queue name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown queue {0:?} (expected create, process, update or notify)")]
pub struct UnknownQueue(pub String);

impl UnknownQueue {
    fn of(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// A kind of job: the queue it goes to and its deterministic id, which makes a repeated push
/// (a retry, the sweeper) a no-op while the job is held.
pub trait JobKind: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The queue jobs of this kind go to.
    const QUEUE: QueueName;

    /// The job's id in its queue.
    fn job_id(&self) -> String;

    /// The W3C `traceparent` its handling continues, if it has one.
    fn trace(&self) -> Option<&str>;
}

/// Insert the transaction's row (pushed by the producer).
///
/// Written as a positional array, `[id, [amount, currency] | null, client_app, trace?]`: a
/// backlog holds one of these per waiting transaction, and the field names were a third of it.
/// The trace is left out when it is the transaction's implied one
/// ([`TransactionId::implied_trace`]), and written as `null` when there is none. Reading takes
/// that array and the object form jobs had before, so jobs already queued still run; a job
/// that names no trace continues its transaction's implied one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "CreateJobRead")]
pub struct CreateJob {
    /// The transaction.
    pub id: TransactionId,
    /// Amount and currency, if given.
    pub money: Option<Money>,
    /// The client app whose key made it. A job queued before client apps existed names none
    /// and belongs to `legacy`, as the rows of that time do.
    pub client_app: ClientAppId,
    /// The W3C `traceparent` of the span that queued it: its handling continues that trace.
    pub trace: Option<String>,
}

/// A `create` job as read, array or object: a trace left out (`None`) differs from a `null`
/// one (`Some(None)`).
#[derive(Deserialize)]
struct CreateJobRead {
    id: TransactionId,
    #[serde(default)]
    money: Option<Money>,
    #[serde(default = "legacy_owner")]
    client_app: ClientAppId,
    #[serde(default, deserialize_with = "present")]
    trace: Option<Option<String>>,
}

/// A field that is present, `null` or not.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl From<CreateJobRead> for CreateJob {
    fn from(read: CreateJobRead) -> Self {
        Self {
            id: read.id,
            money: read.money,
            client_app: read.client_app,
            trace: read.trace.unwrap_or_else(|| read.id.implied_trace()),
        }
    }
}

impl Serialize for CreateJob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let implied = self
            .trace
            .as_deref()
            .is_some_and(|trace| self.id.is_implied_trace(trace));
        let mut fields = serializer.serialize_tuple(if implied { 3 } else { 4 })?;
        fields.serialize_element(&self.id)?;
        fields.serialize_element(&self.money.map(|m| (m.amount, m.currency)))?;
        fields.serialize_element(&self.client_app)?;
        if !implied {
            fields.serialize_element(&self.trace)?;
        }
        fields.end()
    }
}

fn legacy_owner() -> ClientAppId {
    ClientAppId::LEGACY
}

impl CreateJob {
    /// The job id of transaction `id`'s `create` job: `create:<id>`.
    pub fn id_of(id: TransactionId) -> String {
        format!("create:{id}")
    }
}

impl JobKind for CreateJob {
    const QUEUE: QueueName = QueueName::Create;

    /// `create:<id>`.
    fn job_id(&self) -> String {
        Self::id_of(self.id)
    }

    fn trace(&self) -> Option<&str> {
        self.trace.as_deref()
    }
}

/// Submit the transaction to the third party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessJob {
    /// The transaction.
    pub id: TransactionId,
    /// Where the job comes from, which decides what its first attempt may trust.
    pub from: ProcessFrom,
    /// The W3C `traceparent` of the span that queued it: its handling continues that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// Where a submission job comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProcessFrom {
    /// `create` inserted the row just now: nothing can have reached the third party yet, so
    /// the first attempt submits without asking first.
    Insert,
    /// The row already existed, or the sweeper found its submission overdue: an earlier
    /// attempt may have reached the third party, so ask it before submitting (delivery counts
    /// restart with a new job).
    Recovery,
}

impl JobKind for ProcessJob {
    const QUEUE: QueueName = QueueName::Process;

    /// `process:<id>`.
    fn job_id(&self) -> String {
        format!("process:{}", self.id)
    }

    fn trace(&self) -> Option<&str> {
        self.trace.as_deref()
    }
}

impl ProcessJob {
    /// The job to run when this one is run again after it died (revived by the sweeper or
    /// retried from the board): its delivery count starts again at 1 and an earlier delivery
    /// may have reached the third party, so it always asks first.
    pub fn rerun(&self) -> ProcessJob {
        ProcessJob {
            id: self.id,
            from: ProcessFrom::Recovery,
            trace: self.trace.clone(),
        }
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
        /// Polls before this one answered 404 in a row.
        #[serde(default, skip_serializing_if = "is_zero")]
        not_found: u32,
        /// The W3C `traceparent` of the span that queued it: its handling continues that trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<String>,
    },
    /// Apply a reported terminal status (`apply:<id>:<status>`).
    Apply {
        /// The transaction.
        id: TransactionId,
        /// The reported status.
        status: Status,
        /// The W3C `traceparent` of the span that queued it: its handling continues that trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<String>,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl UpdateJob {
    /// The transaction it is about.
    pub fn transaction(&self) -> TransactionId {
        match self {
            UpdateJob::Poll { id, .. } | UpdateJob::Apply { id, .. } => *id,
        }
    }
}

impl JobKind for UpdateJob {
    const QUEUE: QueueName = QueueName::Update;

    /// `poll:<id>:<n>` or `apply:<id>:<status>`.
    fn job_id(&self) -> String {
        match self {
            UpdateJob::Poll { id, n, .. } => format!("poll:{id}:{n}"),
            UpdateJob::Apply { id, status, .. } => format!("apply:{id}:{status}"),
        }
    }

    fn trace(&self) -> Option<&str> {
        match self {
            UpdateJob::Poll { trace, .. } | UpdateJob::Apply { trace, .. } => trace.as_deref(),
        }
    }
}

/// Deliver one notification to the client app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyJob {
    /// The notification (also the `webhook-id` the client sees).
    pub delivery_id: DeliveryId,
    /// The transaction it is about.
    pub id: TransactionId,
    /// The terminal status to tell.
    pub status: Status,
    /// What asked for it: the schedule, or one extra attempt a client app asked for.
    #[serde(default)]
    pub trigger: Trigger,
    /// The client app it goes to (its transaction's owner, which never changes), so the
    /// delivery reads no row; none in a job queued before jobs carried it: the row says then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_app: Option<ClientAppId>,
    /// The W3C `traceparent` of the span that queued it: its handling continues that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl JobKind for NotifyJob {
    const QUEUE: QueueName = QueueName::Notify;

    /// `notify:<delivery id>` on the schedule, a recovery's too (so neither the sweeper nor a
    /// second recovery runs a notification twice at once); `notify:<delivery id>:manual` for
    /// an extra attempt, so resends asked for while one is held are one job.
    fn job_id(&self) -> String {
        match self.trigger {
            Trigger::Scheduled | Trigger::Recover => format!("notify:{}", self.delivery_id),
            Trigger::Manual => format!("notify:{}:manual", self.delivery_id),
        }
    }

    fn trace(&self) -> Option<&str> {
        self.trace.as_deref()
    }
}

/// Every job id the transaction `id` can have in each queue, given its current poll number and
/// its notification's delivery id: what to look for to see its jobs in Redis.
pub fn job_ids_of(
    id: TransactionId,
    poll_number: i32,
    delivery_id: Option<DeliveryId>,
) -> Vec<(QueueName, String)> {
    let mut ids = vec![
        (
            CreateJob::QUEUE,
            CreateJob {
                id,
                money: None,
                client_app: ClientAppId::LEGACY,
                trace: None,
            }
            .job_id(),
        ),
        (
            ProcessJob::QUEUE,
            ProcessJob {
                id,
                from: ProcessFrom::Insert,
                trace: None,
            }
            .job_id(),
        ),
    ];
    // The chain's earlier polls are done and forgotten, but one may have failed and be dead.
    for n in 1..=poll_number.saturating_add(1).clamp(1, 1_000) {
        let poll = UpdateJob::Poll {
            id,
            n,
            not_found: 0,
            trace: None,
        };
        ids.push((UpdateJob::QUEUE, poll.job_id()));
    }
    for status in [Status::Completed, Status::Declined, Status::Failed] {
        let apply = UpdateJob::Apply {
            id,
            status,
            trace: None,
        };
        ids.push((UpdateJob::QUEUE, apply.job_id()));
    }
    if let Some(delivery_id) = delivery_id {
        for trigger in [Trigger::Scheduled, Trigger::Manual] {
            let notify = NotifyJob {
                delivery_id,
                id,
                status: Status::Completed,
                trigger,
                client_app: None,
                trace: None,
            };
            ids.push((NotifyJob::QUEUE, notify.job_id()));
        }
    }
    ids
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
                from: ProcessFrom::Recovery,
                trace: None,
            }
            .job_id(),
            format!("process:{id}")
        );
        assert_eq!(
            UpdateJob::Poll {
                id,
                n: 3,
                not_found: 1,
                trace: None,
            }
            .job_id(),
            format!("poll:{id}:3")
        );
        assert_eq!(
            UpdateJob::Apply {
                id,
                status: Status::Completed,
                trace: None,
            }
            .job_id(),
            format!("apply:{id}:completed")
        );
    }

    #[test]
    fn a_transactions_job_ids_cover_every_queue_and_poll() {
        let id = TransactionId::parse("0193a6f0-0000-7000-8000-000000000001").unwrap();
        let delivery = DeliveryId::from(uuid::Uuid::nil());
        let ids = job_ids_of(id, 2, Some(delivery));
        let wanted = [
            (QueueName::Create, format!("create:{id}")),
            (QueueName::Process, format!("process:{id}")),
            (QueueName::Update, format!("poll:{id}:1")),
            (QueueName::Update, format!("poll:{id}:3")),
            (QueueName::Update, format!("apply:{id}:declined")),
            (QueueName::Notify, format!("notify:{delivery}")),
            (QueueName::Notify, format!("notify:{delivery}:manual")),
        ];
        for w in &wanted {
            assert!(ids.contains(w), "{w:?} missing");
        }
        assert!(!ids.iter().any(|(_, j)| j == &format!("poll:{id}:4")));
        assert_eq!(job_ids_of(id, 0, None).len(), 2 + 1 + 3);
    }

    #[test]
    fn a_process_job_run_again_asks_the_third_party_first_in_the_same_trace() {
        let id = TransactionId::parse("0193a6f0-0000-7000-8000-000000000001").unwrap();
        let job = ProcessJob {
            id,
            from: ProcessFrom::Insert,
            trace: Some(TRACEPARENT.into()),
        };
        assert_eq!(job.rerun().from, ProcessFrom::Recovery);
        assert_eq!(job.rerun().job_id(), job.job_id());
        assert_eq!(job.rerun().trace(), Some(TRACEPARENT));
    }

    #[test]
    fn queue_names_round_trip_through_text() {
        for &q in QueueName::ALL {
            assert_eq!(q.as_str().parse::<QueueName>().unwrap(), q);
        }
        assert!("Create".parse::<QueueName>().is_err());
    }

    #[test]
    fn update_jobs_round_trip_as_tagged_json() {
        let id = TransactionId::generate();
        let job = UpdateJob::Poll {
            id,
            n: 2,
            not_found: 0,
            trace: None,
        };
        let json = serde_json::to_string(&job).unwrap();
        assert!(json.contains("\"kind\":\"poll\""));
        assert!(
            !json.contains("not_found") && !json.contains("trace"),
            "a zero count and no trace are left out: {json}"
        );
        assert_eq!(serde_json::from_str::<UpdateJob>(&json).unwrap(), job);
        let counted = UpdateJob::Poll {
            id,
            n: 2,
            not_found: 2,
            trace: Some(TRACEPARENT.into()),
        };
        let json = serde_json::to_string(&counted).unwrap();
        assert_eq!(serde_json::from_str::<UpdateJob>(&json).unwrap(), counted);
        assert_eq!(counted.trace(), Some(TRACEPARENT));
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn create_job(money: Option<Money>, trace: Option<&str>) -> CreateJob {
        CreateJob {
            id: TransactionId::generate(),
            money,
            client_app: ClientAppId::from(uuid::Uuid::new_v4()),
            trace: trace.map(str::to_string),
        }
    }

    #[test]
    fn create_jobs_are_positional_arrays_that_round_trip() {
        let eur = Money {
            amount: crate::Amount::try_from(1250).unwrap(),
            currency: crate::Currency::parse("EUR").unwrap(),
        };
        let implied = |money| {
            let mut job = create_job(money, None);
            job.trace = job.id.implied_trace();
            job
        };
        for job in [
            create_job(Some(eur), Some(TRACEPARENT)),
            create_job(Some(eur), None),
            create_job(None, Some(TRACEPARENT)),
            create_job(None, None),
            implied(Some(eur)),
            implied(None),
        ] {
            let json = serde_json::to_string(&job).unwrap();
            assert_eq!(
                serde_json::from_str::<CreateJob>(&json).unwrap(),
                job,
                "{json}"
            );
        }
        let job = create_job(Some(eur), Some(TRACEPARENT));
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            serde_json::json!([job.id, [1250, "EUR"], job.client_app, TRACEPARENT])
        );
        let job = create_job(None, None);
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            serde_json::json!([job.id, null, job.client_app, null])
        );
        // The implied trace is left out, and read back from the id.
        let job = implied(Some(eur));
        assert_eq!(
            serde_json::to_value(&job).unwrap(),
            serde_json::json!([job.id, [1250, "EUR"], job.client_app])
        );
    }

    #[test]
    fn create_jobs_queued_as_objects_still_read() {
        let id = TransactionId::generate();
        let owner = uuid::Uuid::new_v4();
        let full = format!(
            r#"{{"id":"{id}","money":{{"amount":1250,"currency":"EUR"}},"client_app":"{owner}","trace":"{TRACEPARENT}"}}"#
        );
        let job: CreateJob = serde_json::from_str(&full).unwrap();
        assert_eq!(
            (
                job.id,
                job.money
                    .map(|m| (i64::from(m.amount), m.currency.to_string()))
            ),
            (id, Some((1250, "EUR".to_string())))
        );
        assert_eq!(
            (job.client_app, job.trace()),
            (owner.into(), Some(TRACEPARENT))
        );
        // Queued before client apps and traces existed: the legacy owner's, in the
        // transaction's implied trace.
        let bare: CreateJob = serde_json::from_str(&format!(r#"{{"id":"{id}"}}"#)).unwrap();
        assert_eq!(
            bare,
            CreateJob {
                id,
                money: None,
                client_app: ClientAppId::LEGACY,
                trace: id.implied_trace(),
            }
        );
    }

    #[test]
    fn a_job_queued_before_traces_existed_reads_without_one() {
        let id = TransactionId::generate();
        let old = format!(
            r#"{{"delivery_id":"{}","id":"{id}","status":"completed"}}"#,
            uuid::Uuid::nil()
        );
        let job: NotifyJob = serde_json::from_str(&old).unwrap();
        assert_eq!(job.trace(), None);
        assert_eq!(job.client_app, None, "nor its client app: the row says");
    }

    #[test]
    fn a_notify_job_carries_its_client_app() {
        let job = NotifyJob {
            delivery_id: DeliveryId::generate(),
            id: TransactionId::generate(),
            status: Status::Declined,
            trigger: Trigger::Recover,
            client_app: Some(ClientAppId::from(uuid::Uuid::new_v4())),
            trace: None,
        };
        let read: NotifyJob = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(read, job);
    }
}
