//! `POST /webhook`: the third party reports a status.

use crate::trace::JobTrace;
use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use domain::{Status, TransactionId, WebhookDecision, jobs::UpdateJob, status::webhook_decision};

use super::transaction::Accepted;
use crate::{
    app::{AppState, Shared},
    extract::Signed,
    input::WebhookBody,
    openapi::{BodyRefusals, ReadRefusals},
    problem::{ApiError, Problem},
};

#[utoipa::path(
    post,
    path = "/webhook",
    request_body(content = WebhookBody, description = "Signed per Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature headers"),
    responses(
        (status = 201, description = "A new terminal status: recorded", body = Accepted),
        (status = 200, description = "Already recorded, or `pending` (changes nothing)", body = Accepted),
        BodyRefusals,
        (status = 401, description = "Unsigned, bad signature, or timestamp outside ±5 min", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown id", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A different terminal status after a terminal one", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Status not one of pending, completed, declined", body = Problem, content_type = "application/problem+json"),
        ReadRefusals,
    )
)]
/// Verifies the signature, decides the answer with the one transition function, and for a
/// real change queues an *apply* job: 201 new terminal status, 200 already recorded or a
/// (stale) `pending`, 409 a different terminal, 404 unknown id.
pub async fn receive(
    State(state): State<Shared>,
    trace: JobTrace,
    Signed(body): Signed<WebhookBody>,
) -> Result<Response, ApiError> {
    let reported = body.check()?;
    let (id, status) = (reported.id, reported.status);

    let (decision, current) = decide_and_queue(&state, id, status, trace.into_job(id)).await?;
    tracing::info!(txn_id = %id, reported = %status, ?decision, "webhook");
    let code = match decision {
        WebhookDecision::Apply => StatusCode::CREATED,
        WebhookDecision::AlreadyRecorded | WebhookDecision::Ignore => StatusCode::OK,
        WebhookDecision::Conflict => {
            return Err(ApiError::StatusConflict(format!(
                "transaction {id} is already {current}; {status} cannot replace it"
            )));
        }
    };
    let shown = if decision == WebhookDecision::Apply {
        status
    } else {
        current
    };
    Ok((code, Json(Accepted { id, status: shown })).into_response())
}

/// Decides from the id cache (compare-and-set, so of two identical webhooks exactly one
/// applies), or from Postgres once the id has left the cache. Returns the decision and the
/// status it was made against.
async fn decide_and_queue(
    state: &AppState,
    id: TransactionId,
    reported: Status,
    trace: Option<String>,
) -> Result<(WebhookDecision, Status), ApiError> {
    let apply = UpdateJob::Apply {
        id,
        status: reported,
        trace,
    };
    loop {
        let Some(cached) = state.cache.get(&state.queues.create, &id).await? else {
            let row = state
                .store
                .get(id)
                .await?
                .ok_or_else(|| ApiError::NotFound(id.to_string()))?;
            let decision = webhook_decision(row.status, reported);
            if decision == WebhookDecision::Apply {
                state.queues.push(apply).await?;
            }
            return Ok((decision, row.status));
        };
        let decision = webhook_decision(cached.status, reported);
        if decision != WebhookDecision::Apply {
            return Ok((decision, cached.status));
        }
        if !state
            .cache
            .compare_and_set(&state.queues.create, &id, cached.status, reported)
            .await?
        {
            // Someone changed it first: decide again against what they wrote.
            continue;
        }
        if let Err(e) = state.queues.push(apply.clone()).await {
            // Undo, so the third party's retry is decided afresh rather than answered 200.
            let _ = state
                .cache
                .compare_and_set(&state.queues.create, &id, reported, cached.status)
                .await;
            return Err(e.into());
        }
        return Ok((decision, cached.status));
    }
}
