//! `POST /transaction` and `GET /transaction/{id}`.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use txn_core::{
    Status, TransactionId,
    id_cache::{Cached, Reservation},
    jobs::CreateJob,
    store::HistoryEntry,
};

use crate::{
    app::AppState,
    input::{self, NewTransaction},
    problem::{ApiError, FieldError},
};

/// `{id, status}`: the answer to a POST.
#[derive(Debug, Serialize)]
pub struct Accepted {
    id: TransactionId,
    status: Status,
}

/// `POST /transaction`: 201 for a new id (reserved and queued in one atomic Redis script),
/// 200 with the current status for a known id with the same parameters, 409 otherwise.
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = super::body(body, state.body_limit)?;
    let new = input::new_transaction(&body)?;
    let job = CreateJob {
        id: new.id,
        amount: new.money.map(|(a, _)| a.minor_units()),
        currency: new.money.map(|(_, c)| c.to_string()),
    };
    match state.cache.reserve(&state.create, &job).await? {
        Reservation::New => {
            tracing::info!(txn_id = %new.id, "transaction accepted");
            let location = format!("/transaction/{}", new.id);
            let body = Json(Accepted {
                id: new.id,
                status: Status::Pending,
            });
            Ok((StatusCode::CREATED, [(header::LOCATION, location)], body).into_response())
        }
        Reservation::Known(cached) => {
            same_parameters(&new, &job, &cached)?;
            Ok((
                StatusCode::OK,
                Json(Accepted {
                    id: new.id,
                    status: cached.status,
                }),
            )
                .into_response())
        }
    }
}

/// A known id must come with exactly the parameters it was first accepted with (absent ≠ present).
fn same_parameters(new: &NewTransaction, job: &CreateJob, cached: &Cached) -> Result<(), ApiError> {
    let mut differing = Vec::new();
    if job.amount != cached.amount {
        differing.push("amount");
    }
    if job.currency != cached.currency {
        differing.push("currency");
    }
    if differing.is_empty() {
        return Ok(());
    }
    Err(ApiError::IdempotencyConflict(format!(
        "transaction {} was accepted with a different {}",
        new.id,
        differing.join(" and ")
    )))
}

/// The body of `GET /transaction/{id}`.
#[derive(Debug, Serialize)]
pub struct TransactionView {
    id: TransactionId,
    status: Status,
    amount: Option<i64>,
    currency: Option<String>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    submitted_at: Option<DateTime<Utc>>,
    poll_expired_at: Option<DateTime<Utc>>,
    history: Vec<HistoryEntry>,
}

/// `GET /transaction/{id}`: the row with its history; an id accepted but not yet created by
/// the consumer is `pending` from the id cache, with an empty history.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TransactionView>, ApiError> {
    let id = TransactionId::parse(&id)
        .map_err(|_| ApiError::Invalid(vec![FieldError::new("id", "must be a UUID")]))?;
    if let Some(row) = state.store.get(id).await? {
        let history = state.store.history(id).await?;
        return Ok(Json(TransactionView {
            id,
            status: row.status,
            amount: row.amount,
            currency: row.currency,
            created_at: Some(row.created_at),
            updated_at: Some(row.updated_at),
            submitted_at: row.submitted_at,
            poll_expired_at: row.poll_expired_at,
            history,
        }));
    }
    let cached = state.cache.get(&mut state.redis.clone(), &id).await?;
    let cached = cached.ok_or_else(|| ApiError::NotFound(id.to_string()))?;
    Ok(Json(TransactionView {
        id,
        status: cached.status,
        amount: cached.amount,
        currency: cached.currency,
        created_at: None,
        updated_at: None,
        submitted_at: None,
        poll_expired_at: None,
        history: Vec::new(),
    }))
}
