//! `POST /transaction` and `GET /transaction/{id}`.

use crate::trace::JobTrace;
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use domain::{
    Amount, ClientAppId, Currency, Source, Status, TransactionId, jobs::CreateJob,
    money::differing_parts,
};
use id_cache::{Cached, IdCacheError, Reread, Reservation, Reserve};
use serde::Serialize;
use store::{HistoryEntry, TransactionRow};
use utoipa::ToSchema;

use crate::{
    acceptance::{Acceptance, Outcome},
    app::Shared,
    auth::Caller,
    extract::{Body, TransactionPath},
    input::{self, NewTransaction, NewTransactionBody},
    openapi::{BodyRefusals, IdRefusals, KeyRefusals, ReadRefusals, Unreadable},
    problem::{ApiError, Problem},
};

/// `{id, status}`: the answer to a POST, and to a webhook (the status recorded after it).
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// The transaction's id.
    #[schema(value_type = uuid::Uuid)]
    pub id: TransactionId,
    /// Its status: pending, completed, declined or failed.
    #[schema(value_type = String, example = "pending")]
    pub status: Status,
}

#[utoipa::path(
    post,
    path = "/transaction",
    request_body(content = Option<NewTransactionBody>, content_type = "application/json"),
    security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[ -~]+$",
        description = "Without an id in the body: the id is derived from this key, so a retry with the same key is answered 200 with the same id (other parameters: 409). With an id in the body: 422.")),
    responses(
        (status = 201, description = "New id: accepted, pending", body = Accepted, headers(("location" = String, description = "/transaction/{id}"))),
        (status = 200, description = "Known id, same parameters: its current status", body = Accepted),
        BodyRefusals,
        KeyRefusals,
        (status = 409, description = "Known id, other parameters (the detail names them); or another client app's id (`/problems/id-taken`, nothing more told)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Over the client app's rate limit: nothing was reserved; retry after Retry-After seconds", body = Problem, content_type = "application/problem+json", headers(("retry-after" = String, description = "Whole seconds until a token comes"))),
        (status = 422, description = "Invalid or unknown fields, each named in `errors`", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "Took longer than REQUEST_TIMEOUT_MS", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not accepted, for certain: Redis was unavailable or did not run the reservation within ACCEPT_DEADLINE_MS (Retry-After)", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "Outcome unknown (the connection to Redis broke after the request was sent): retrying with the id in the body and in Location is always safe", body = Problem, content_type = "application/problem+json", headers(("location" = String, description = "/transaction/{id}"))),
        Unreadable,
    )
)]
/// `POST /transaction`: 201 for a new id (reserved and queued in one atomic Redis script),
/// 200 with the current status for a known id with the same parameters, 409 otherwise; 503
/// only when nothing was accepted, 504 when that cannot be known.
pub async fn create(
    State(state): State<Shared>,
    Caller { client_app, limit }: Caller,
    trace: JobTrace,
    headers: HeaderMap,
    Body(body): Body<NewTransactionBody>,
) -> Result<Response, ApiError> {
    let arrived = std::time::Instant::now();
    let key = headers.get(input::IDEMPOTENCY_KEY).map(|v| v.as_bytes());
    // Idempotency keys are the client app's own: two apps' equal keys name different ids.
    let namespace = format!("{}\u{0}{client_app}", state.queue_prefix);
    let new = body.check(key, &namespace)?;
    let job = CreateJob {
        id: new.id,
        money: new.money,
        client_app,
        trace: trace.into_job(new.id),
    };
    let deadline_ms = queue::now_ms() + state.accept_deadline.as_millis() as u64;
    let reserve = Reserve {
        job,
        deadline_ms,
        limit,
    };
    // An id made here just now has no row anywhere; any other id may have one. Postgres is
    // asked while the reservation runs, not before it, so a row found beside a new
    // reservation is either older than the id cache's margin (a known id: answered as known;
    // the `create` job just pushed finds the row and inserts nothing) or this very POST's,
    // inserted by a fast consumer: no older than the request, by Postgres's clock. No other
    // row can be that young (Redis knows an id until its row is a margin old), so the row's
    // age tells them apart.
    let acceptance = Acceptance {
        reserve,
        look_up: !new.fresh_id,
    };
    // Its batches never fail as a whole: the only error is a stopped batcher.
    let Ok(Outcome { row, reserved }) = state.acceptances.call(acceptance).await else {
        return Err(ApiError::Unavailable {
            service: "the queue",
            cause: "the acceptance batcher has stopped (shutting down)".into(),
        });
    };
    let reserved_new = matches!(reserved, Ok(Ok(Reservation::New)));
    if let Some(row) = row {
        let this_posts_own = reserved_new && row.age <= arrived.elapsed();
        if !this_posts_own {
            return known(&new, client_app, &row_cached(&row.row));
        }
    }
    let reservation = match reserved {
        Ok(reservation) => reservation?,
        Err(e) => after_failed_reserve(&state, &new, client_app, deadline_ms, &e).await?,
    };
    match reservation {
        Reservation::TooLate => Err(ApiError::Unavailable {
            service: "the queue",
            cause: "Redis ran the reservation after the acceptance deadline; nothing was accepted"
                .into(),
        }),
        Reservation::New => {
            replicated(&state, &new).await?;
            // Debug, not info: a line per accepted POST cost a quarter of the producer's time
            // per request (measured); acceptance is counted in the request metrics, and the
            // transaction's later steps are logged where they happen.
            tracing::debug!(txn_id = %new.id, "transaction accepted");
            let location = format!("/transaction/{}", new.id);
            let body = Json(Accepted {
                id: new.id,
                status: Status::Pending,
            });
            Ok((StatusCode::CREATED, [(header::LOCATION, location)], body).into_response())
        }
        Reservation::Known(cached) => known(&new, client_app, &cached),
        Reservation::Limited(wait) => Err(ApiError::RateLimited(wait)),
    }
}

/// With `REDIS_ACK_REPLICAS`, waits until that many replicas hold the reservation (`WAIT`, on
/// the node holding it), so that a failover cannot lose a 201. Fewer in time: the
/// reservation may not survive a failover, so the outcome is unknown (504, retry the id).
async fn replicated(state: &Shared, new: &NewTransaction) -> Result<(), ApiError> {
    if state.ack_replicas == 0 {
        return Ok(());
    }
    let key = state.cache.key(&new.id);
    let acked = state
        .redis
        .clone()
        .wait_for_replicas(&key, state.ack_replicas, state.accept_deadline)
        .await;
    match acked {
        Ok(n) if n >= state.ack_replicas => Ok(()),
        Ok(n) => Err(ApiError::OutcomeUnknown {
            id: new.id.to_string(),
            cause: format!(
                "{n} of {} replicas acknowledged in time",
                state.ack_replicas
            ),
        }),
        Err(e) => Err(ApiError::OutcomeUnknown {
            id: new.id.to_string(),
            cause: format!("WAIT for replicas failed: {e}"),
        }),
    }
}

/// The answer for a known id: 409 `id-taken` if another client app's (nothing more is told),
/// 200 with its status if the parameters are the same, else 409.
fn known(new: &NewTransaction, caller: ClientAppId, cached: &Cached) -> Result<Response, ApiError> {
    if !owned_by(cached, caller) {
        return Err(ApiError::IdTaken(new.id.to_string()));
    }
    same_parameters(new, cached)?;
    let body = Json(Accepted {
        id: new.id,
        status: cached.status,
    });
    Ok((StatusCode::OK, body).into_response())
}

/// What a known id's answer needs of its row.
fn row_cached(row: &TransactionRow) -> Cached {
    Cached {
        money: row.money,
        status: row.status,
        owner: Some(row.client_app_id),
    }
}

/// A reserve that failed may still have landed: the connection can break after the script was
/// written, and a Redis stalled between running it and replying times the call out. An error
/// reply or a refused connection cannot hide one, so those stay 503. Otherwise the
/// reservation is read again (a few times, while Redis does not answer): there with the same
/// parameters → accepted (201); absent once Redis's clock is past the deadline → 503 (a late
/// script does nothing); still unknowable → 504 with the id, which is always safe to retry.
async fn after_failed_reserve(
    state: &Shared,
    new: &NewTransaction,
    client_app: ClientAppId,
    deadline_ms: u64,
    error: &IdCacheError,
) -> Result<Reservation, ApiError> {
    let IdCacheError::Queue(queue::QueueError::Redis(redis_error)) = error else {
        return Err(error.into());
    };
    if !redis_error.is_io_error() || redis_error.is_connection_refusal() {
        return Err(error.into());
    }
    let unknown = |cause: String| ApiError::OutcomeUnknown {
        id: new.id.to_string(),
        cause,
    };
    let mut last_failure = None;
    for _ in 0..REREADS {
        match state
            .cache
            .reread(&state.queues.create, &new.id, deadline_ms)
            .await
        {
            Ok(Reread::Reserved(cached))
                if cached.status == Status::Pending
                    && owned_by(&cached, client_app)
                    && differing_parts(new.money, cached.money).is_empty() =>
            {
                return Ok(Reservation::New);
            }
            Ok(Reread::Reserved(cached)) => return Ok(Reservation::Known(cached)),
            Ok(Reread::NeverAccepted) => return Err(error.into()),
            Ok(Reread::Unknown) => {
                // Redis's clock has not reached the deadline yet: ask again just after it.
                let wait = deadline_ms.saturating_sub(queue::now_ms()) + 10;
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
            // Each failed re-read took a response timeout: Redis may be back for the next.
            Err(reread) => last_failure = Some(reread.to_string()),
        }
    }
    Err(unknown(match last_failure {
        Some(reread) => format!("{error}; re-read: {reread}"),
        None => format!("{error}; Redis's clock had not passed the acceptance deadline"),
    }))
}

/// Whether `caller` may see the cached transaction: its owner, or anyone for an entry written
/// before owners were kept.
pub(crate) fn owned_by(cached: &Cached, caller: ClientAppId) -> bool {
    cached.owner.is_none_or(|owner| owner == caller)
}

/// Re-reads after a reserve whose answer was lost: each may wait a Redis response timeout
/// (2 s), so three stay well inside the request's own timeout.
const REREADS: usize = 3;

/// A known id must come with exactly the parameters it was first accepted with (absent ≠ present).
fn same_parameters(new: &NewTransaction, cached: &Cached) -> Result<(), ApiError> {
    let differing = differing_parts(new.money, cached.money);
    if differing.is_empty() {
        return Ok(());
    }
    Err(ApiError::IdempotencyConflict(format!(
        "transaction {} was accepted with a different {}",
        new.id,
        differing.join(" and ")
    )))
}

/// A transaction as the client app sees it, without its history: an item of
/// `GET /transactions`, and the head of `GET /transaction/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionSummary {
    /// The transaction's id.
    #[schema(value_type = uuid::Uuid)]
    id: TransactionId,
    /// pending, completed, declined or failed.
    #[schema(value_type = String, example = "completed")]
    status: Status,
    /// Amount in minor units.
    #[schema(value_type = Option<i64>)]
    amount: Option<Amount>,
    /// ISO 4217 code.
    #[schema(value_type = Option<String>)]
    currency: Option<Currency>,
    /// When the consumer created the row (null while only accepted).
    created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    updated_at: Option<DateTime<Utc>>,
    /// When the third party accepted it.
    submitted_at: Option<DateTime<Utc>>,
    /// When polling gave up without an outcome.
    poll_expired_at: Option<DateTime<Utc>>,
}

impl From<&TransactionRow> for TransactionSummary {
    fn from(row: &TransactionRow) -> Self {
        Self {
            id: row.id,
            status: row.status,
            amount: row.money.map(|m| m.amount),
            currency: row.money.map(|m| m.currency),
            created_at: Some(row.created_at),
            updated_at: Some(row.updated_at),
            submitted_at: row.submitted_at,
            poll_expired_at: row.poll_expired_at,
        }
    }
}

/// The body of `GET /transaction/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionView {
    /// The transaction.
    #[serde(flatten)]
    transaction: TransactionSummary,
    /// Every status it entered, oldest first.
    history: Vec<HistoryView>,
}

/// One history entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// The status entered.
    #[schema(value_type = String, example = "pending")]
    status: Status,
    /// Who caused it: api, process, webhook or poll.
    #[schema(value_type = String, example = "api")]
    source: Source,
    /// When.
    at: DateTime<Utc>,
}

impl From<HistoryEntry> for HistoryView {
    fn from(h: HistoryEntry) -> Self {
        Self {
            status: h.status,
            source: h.source,
            at: h.at,
        }
    }
}

#[utoipa::path(
    get,
    path = "/transaction/{id}",
    params(TransactionPath),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The transaction with its history", body = TransactionView),
        KeyRefusals,
        IdRefusals,
        ReadRefusals,
    )
)]
/// `GET /transaction/{id}`: the row with its history; an id accepted but not yet created by
/// the consumer is `pending` from the id cache, with an empty history.
pub async fn get(
    State(state): State<Shared>,
    Caller { client_app, .. }: Caller,
    TransactionPath { id }: TransactionPath,
) -> Result<Json<TransactionView>, ApiError> {
    if let Some(row) = state.store.get(id).await? {
        // Another client app's transaction is answered as if it did not exist.
        if row.client_app_id != client_app {
            return Err(ApiError::NotFound(id.to_string()));
        }
        let history = state.store.history(id).await?;
        return Ok(Json(TransactionView {
            transaction: TransactionSummary::from(&row),
            history: history.into_iter().map(HistoryView::from).collect(),
        }));
    }
    let cached = state.cache.get(&state.queues.create, &id).await?;
    let cached = cached
        .filter(|c| owned_by(c, client_app))
        .ok_or_else(|| ApiError::NotFound(id.to_string()))?;
    Ok(Json(TransactionView {
        transaction: TransactionSummary {
            id,
            status: cached.status,
            amount: cached.money.map(|m| m.amount),
            currency: cached.money.map(|m| m.currency),
            created_at: None,
            updated_at: None,
            submitted_at: None,
            poll_expired_at: None,
        },
        history: Vec::new(),
    }))
}
