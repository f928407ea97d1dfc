//! A transaction's notification as its client app may see it: where its delivery stands,
//! every attempt on the delivery log, and one more attempt on request.

use crate::trace::JobTrace;
use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use domain::{ClientAppId, DeliveryId, Status, TransactionId, delivery::Trigger, jobs::NotifyJob};
use serde::Serialize;
use store::{AttemptRecord, NotificationDetail};
use utoipa::ToSchema;

use crate::{
    app::{AppState, Shared},
    auth::Caller,
    extract::TransactionPath,
    openapi::{IdRefusals, KeyRefusals, NotTerminal, ReadRefusals},
    problem::ApiError,
    routes::transaction::owned_by,
};

/// The body of `GET /transaction/{id}/notification`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Its id: the `webhook-id` of every attempt.
    #[schema(value_type = uuid::Uuid)]
    delivery_id: DeliveryId,
    /// The status it tells.
    #[schema(value_type = String, example = "completed")]
    status: Status,
    /// `owed` (retries to come), `delivered`, or `given_up` (refused, or past the schedule).
    #[schema(example = "delivered")]
    state: &'static str,
    /// When the client app accepted it.
    delivered_at: Option<DateTime<Utc>>,
    /// When it was given up.
    given_up_at: Option<DateTime<Utc>>,
    /// When the next scheduled attempt is due (owed only).
    next_attempt_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first.
    attempts: Vec<AttemptView>,
}

/// One attempt of the delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// Its number, from 1.
    attempt: i32,
    /// `scheduled`, `manual` or `recover`.
    #[schema(value_type = String, example = "scheduled")]
    trigger: Trigger,
    /// When the call began.
    started_at: DateTime<Utc>,
    /// How long it took.
    duration_ms: i32,
    /// The client app's HTTP status, or null when it gave no answer.
    http_status: Option<i16>,
    /// Why it failed (at most 512 bytes); null when accepted.
    error: Option<String>,
}

impl From<AttemptRecord> for AttemptView {
    fn from(a: AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            trigger: a.trigger,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            http_status: a.http_status,
            error: a.error,
        }
    }
}

/// The answer of a resend: accepted, and under which `webhook-id` it goes out.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resending {
    /// The notification's id, the same as every earlier attempt's.
    #[schema(value_type = uuid::Uuid)]
    delivery_id: DeliveryId,
}

/// The caller's transaction `id`'s notification; 404 for an unknown or another client app's
/// transaction, 409 for one with no notification yet (not terminal).
async fn notification_of(
    state: &AppState,
    client_app: ClientAppId,
    id: TransactionId,
) -> Result<NotificationDetail, ApiError> {
    let not_yet = |status: Status| {
        ApiError::NotTerminal(format!(
            "transaction {id} is {status}: it is notified once it is terminal"
        ))
    };
    match state.store.get(id).await? {
        Some(row) if row.client_app_id == client_app => state
            .store
            .notification_of(id)
            .await?
            .ok_or(not_yet(row.status)),
        Some(_) => Err(ApiError::NotFound(id.to_string())),
        // Accepted, and not created by the consumer yet: pending, as `GET /transaction/{id}`
        // says.
        None => match state.cache.get(&state.queues.create, &id).await? {
            Some(cached) if owned_by(&cached, client_app) => Err(not_yet(cached.status)),
            _ => Err(ApiError::NotFound(id.to_string())),
        },
    }
}

#[utoipa::path(
    get,
    path = "/transaction/{id}/notification",
    params(TransactionPath),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The notification, where its delivery stands and every attempt", body = NotificationView),
        KeyRefusals,
        IdRefusals,
        NotTerminal,
        ReadRefusals,
    )
)]
/// `GET /transaction/{id}/notification`: the notification and its delivery log.
pub async fn get(
    State(state): State<Shared>,
    Caller { client_app, .. }: Caller,
    TransactionPath { id }: TransactionPath,
) -> Result<Json<NotificationView>, ApiError> {
    let detail = notification_of(&state, client_app, id).await?;
    let row = &detail.row;
    let attempts = state.store.attempts_of(row.delivery_id).await?;
    let state = match (row.delivered_at, row.failed_at) {
        (Some(_), _) => "delivered",
        (None, Some(_)) => "given_up",
        (None, None) => "owed",
    };
    Ok(Json(NotificationView {
        delivery_id: row.delivery_id,
        status: row.status,
        state,
        delivered_at: row.delivered_at,
        given_up_at: row.failed_at,
        next_attempt_at: detail.next_attempt_at,
        attempts: attempts.into_iter().map(AttemptView::from).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/transaction/{id}/notification/resend",
    params(TransactionPath),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "One more attempt is queued, under the same webhook-id; an owed notification keeps its own schedule. Resends asked for while one is queued are that one.", body = Resending),
        KeyRefusals,
        IdRefusals,
        NotTerminal,
        ReadRefusals,
    )
)]
/// `POST /transaction/{id}/notification/resend`: queues one more attempt.
pub async fn resend(
    State(state): State<Shared>,
    Caller { client_app, .. }: Caller,
    TransactionPath { id }: TransactionPath,
    trace: JobTrace,
) -> Result<(StatusCode, Json<Resending>), ApiError> {
    let detail = notification_of(&state, client_app, id).await?;
    let row = &detail.row;
    let job = NotifyJob {
        delivery_id: row.delivery_id,
        id: row.transaction_id,
        status: row.status,
        trigger: Trigger::Manual,
        client_app: Some(client_app),
        trace: trace.into_job(row.transaction_id),
    };
    // Already queued (asked twice) is the same answer: one attempt is coming.
    state.queues.push(job).await?;
    tracing::info!(txn_id = %row.transaction_id, delivery_id = %row.delivery_id, "resend queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(Resending {
            delivery_id: row.delivery_id,
        }),
    ))
}
