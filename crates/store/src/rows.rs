//! The rows the store reads and writes.

use chrono::{DateTime, Utc};
use domain::{
    ClientAppId, DeliveryId, Money, Source, Status, TransactionId, delivery::Trigger,
    owner::Delivery,
};
use sqlx::{PgPool, Postgres, Row, postgres::PgRow};
use uuid::Uuid;

use crate::StoreError;

/// A transaction as stored; its JSON (the board's) carries the money as `amount` and
/// `currency`, left out when there is none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransactionRow {
    /// Its id.
    pub id: TransactionId,
    /// Its current status.
    pub status: Status,
    /// Amount and currency, if it has them.
    #[serde(flatten)]
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
    /// The client app it belongs to.
    pub client_app_id: ClientAppId,
    /// Submission attempts whose outcome was an error or unknown (throttling not counted).
    pub submit_failures: i32,
}

/// A row with its age when it was read: how long before the read statement began it was
/// created, both by Postgres's clock.
#[derive(Debug, Clone)]
pub struct AgedRow {
    /// The row.
    pub row: TransactionRow,
    /// Its age at the read (zero if Postgres's clock went back since).
    pub age: std::time::Duration,
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
    pub delivery_id: DeliveryId,
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

impl NotificationRow {
    /// Where its delivery stands (the owner rule reads this).
    pub fn delivery(&self) -> Delivery {
        if self.delivered_at.is_some() {
            Delivery::Delivered
        } else if self.failed_at.is_some() {
            Delivery::GivenUp
        } else {
            Delivery::Owed
        }
    }
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

/// A submission the third party accepted, and when its first poll is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// The transaction.
    pub id: TransactionId,
    /// When poll 1 is due.
    pub first_poll_at: DateTime<Utc>,
}

/// A terminal status to apply, and who reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    /// The transaction.
    pub id: TransactionId,
    /// Its new status (terminal).
    pub status: Status,
    /// Who caused it.
    pub source: Source,
}

/// The notification a status change owes, and the client app it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwedNotification {
    /// Its id.
    pub delivery_id: DeliveryId,
    /// Its transaction's owner.
    pub client_app: ClientAppId,
}

/// A notification the client accepted, and the attempt it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The accepted attempt.
    pub attempt: AttemptRecord,
    /// The notification's client app, whose endpoint this shows to work.
    pub client_app: ClientAppId,
}

/// A client app whose endpoint has just failed a delivery attempt: since when every attempt
/// has failed, and whether it is still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    /// The client app.
    pub client_app: ClientAppId,
    /// Since when every attempt to it has failed; none if this attempt began before its last
    /// success or change (it tells nothing of the endpoint now).
    pub since: Option<DateTime<Utc>>,
    /// Its status now.
    pub status: domain::ClientStatus,
}

impl TryFrom<&PgRow> for Failing {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(Failing {
            client_app: id(r, "id")?,
            since: r.try_get("failing_since")?,
            status: named(r, "status")?,
        })
    }
}

/// One attempt to deliver a notification, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptRecord {
    /// The notification.
    pub delivery_id: DeliveryId,
    /// Its number among the notification's attempts, from 1 (0 before it is recorded).
    pub attempt: i32,
    /// What started it.
    pub trigger: Trigger,
    /// When the call began.
    pub started_at: DateTime<Utc>,
    /// How long the call took.
    pub duration_ms: i32,
    /// The client's HTTP status, if it answered.
    pub http_status: Option<i16>,
    /// Why it failed, at most 512 bytes; none when it was accepted.
    pub error: Option<String>,
}

impl AttemptRecord {
    /// An attempt that began at `started_at`, took `took`, and got `http_status` (if any) and
    /// `error` (if it failed, clipped to what the log keeps).
    pub fn new(
        delivery_id: DeliveryId,
        trigger: Trigger,
        started_at: DateTime<Utc>,
        took: std::time::Duration,
        http_status: Option<u16>,
        error: Option<&str>,
    ) -> Self {
        Self {
            delivery_id,
            attempt: 0,
            trigger,
            started_at,
            duration_ms: i32::try_from(took.as_millis()).unwrap_or(i32::MAX),
            http_status: http_status.and_then(|s| i16::try_from(s).ok()),
            error: error.map(|e| domain::delivery::clipped(e).to_string()),
        }
    }
}

/// A submission that is due: the transaction, and the trace it was accepted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSubmission {
    /// The transaction.
    pub id: TransactionId,
    /// The W3C `traceparent` its row keeps.
    pub trace: Option<String>,
}

/// A poll that is due: the transaction, the poll's number in its chain, and the trace the
/// transaction was accepted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePoll {
    /// The transaction.
    pub id: TransactionId,
    /// The poll's number.
    pub n: i32,
    /// The W3C `traceparent` its row keeps.
    pub trace: Option<String>,
}

/// A notification whose delivery is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueNotification {
    /// The notification.
    pub delivery_id: DeliveryId,
    /// The transaction it tells of.
    pub id: TransactionId,
    /// The client app it goes to.
    pub client_app: ClientAppId,
    /// The status it tells.
    pub status: Status,
    /// The W3C `traceparent` its transaction's row keeps.
    pub trace: Option<String>,
}

/// A transaction to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRow {
    /// Its id.
    pub id: TransactionId,
    /// Amount and currency, if given.
    pub money: Option<Money>,
    /// The client app it belongs to.
    pub client_app: ClientAppId,
    /// Whether it is inserted owing a submission: not when the third party's outcome is
    /// already known (a webhook that came before the row).
    pub owes_submission: bool,
    /// The W3C `traceparent` of the span that accepted it.
    pub trace: Option<String>,
}

// How each row is read from its columns: one place per row type, whatever statement
// selected it. A value this code does not know is `StoreError::Corrupt`, naming the value.
// (sqlx's `FromRow` derive would say "unprintable error" for a status it cannot convert.)

impl TryFrom<&PgRow> for TransactionRow {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(TransactionRow {
            id: id(r, "id")?,
            status: named(r, "status")?,
            money: Money::from_parts(r.try_get("amount")?, r.try_get("currency")?)?,
            submitted_at: r.try_get("submitted_at")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            poll_number: r.try_get("poll_number")?,
            next_poll_at: r.try_get("next_poll_at")?,
            poll_expired_at: r.try_get("poll_expired_at")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            client_app_id: id(r, "client_app_id")?,
            submit_failures: r.try_get("submit_failures")?,
        })
    }
}

impl TryFrom<&PgRow> for HistoryEntry {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(HistoryEntry {
            status: named(r, "to_status")?,
            source: named(r, "source")?,
            at: r.try_get("created_at")?,
        })
    }
}

impl TryFrom<&PgRow> for DueNotification {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(DueNotification {
            delivery_id: id(r, "delivery_id")?,
            id: id(r, "transaction_id")?,
            client_app: id(r, "client_app_id")?,
            status: named(r, "status")?,
            trace: r.try_get("trace")?,
        })
    }
}

impl TryFrom<&PgRow> for DueSubmission {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(DueSubmission {
            id: id(r, "id")?,
            trace: r.try_get("trace")?,
        })
    }
}

impl TryFrom<&PgRow> for DuePoll {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(DuePoll {
            id: id(r, "id")?,
            n: r.try_get("poll_number")?,
            trace: r.try_get("trace")?,
        })
    }
}

impl TryFrom<&PgRow> for NotificationRow {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(NotificationRow {
            delivery_id: id(r, "delivery_id")?,
            transaction_id: id(r, "transaction_id")?,
            status: named(r, "status")?,
            attempts: r.try_get("attempts")?,
            delivered_at: r.try_get("delivered_at")?,
            failed_at: r.try_get("failed_at")?,
        })
    }
}

impl TryFrom<&PgRow> for NotificationDetail {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(NotificationDetail {
            row: NotificationRow::try_from(r)?,
            last_error: r.try_get("last_error")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// `value`, a name this code parses (a status, a source, a trigger) read from column
/// `column`; a name it does not know is `Corrupt`, naming the column and the value.
pub(crate) fn parse_named<T: std::str::FromStr>(
    value: &str,
    column: &str,
) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {column} {value:?}")))
}

/// Column `column` of `r`, a name this code parses (see [`parse_named`]).
pub(crate) fn named<T: std::str::FromStr>(r: &PgRow, column: &str) -> Result<T, StoreError> {
    parse_named(r.try_get(column)?, column)
}

/// The rows `sql` returns with `key` bound to `$1`, each read as `T`.
pub(crate) async fn all_by<'q, K, T>(
    pool: &PgPool,
    sql: &'q str,
    key: K,
) -> Result<Vec<T>, StoreError>
where
    K: 'q + Send + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
    T: for<'r> TryFrom<&'r PgRow, Error = StoreError>,
{
    let rows = sqlx::query(sql).bind(key).fetch_all(pool).await?;
    rows.iter().map(T::try_from).collect()
}

/// The row `sql` returns with `key` bound to `$1`, if any, read as `T`.
pub(crate) async fn one_by<'q, K, T>(
    pool: &PgPool,
    sql: &'q str,
    key: K,
) -> Result<Option<T>, StoreError>
where
    K: 'q + Send + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
    T: for<'r> TryFrom<&'r PgRow, Error = StoreError>,
{
    let row = sqlx::query(sql).bind(key).fetch_optional(pool).await?;
    row.as_ref().map(T::try_from).transpose()
}

/// Column `column` of `r`, a UUID read as the id type `T`.
pub(crate) fn id<T: From<Uuid>>(r: &PgRow, column: &str) -> Result<T, StoreError> {
    Ok(T::from(r.try_get::<Uuid, _>(column)?))
}

impl TryFrom<&PgRow> for AttemptRecord {
    type Error = StoreError;
    fn try_from(r: &PgRow) -> Result<Self, StoreError> {
        Ok(AttemptRecord {
            delivery_id: id(r, "delivery_id")?,
            attempt: r.try_get("attempt")?,
            trigger: named(r, "trigger")?,
            started_at: r.try_get("started_at")?,
            duration_ms: r.try_get("duration_ms")?,
            http_status: r.try_get("http_status")?,
            error: r.try_get("error")?,
        })
    }
}
