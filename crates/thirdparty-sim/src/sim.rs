//! The simulator's state and routes.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use domain::{Status, fault, signature::Signer};
use outbound::thirdparty::ApiKey;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Config;

/// What `/stats` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Transactions created.
    pub created: u64,
    /// Creates for an id already held (blind re-submissions).
    pub conflicts: u64,
    /// Status checks answered or faulted.
    pub status_checks: u64,
    /// Webhooks sent (duplicates and stale ones included).
    pub webhooks_sent: u64,
    /// Final webhooks deliberately not sent.
    pub webhooks_dropped: u64,
    /// Calls refused 401 (missing or wrong key, or the injected fault).
    pub unauthorized: u64,
    /// Calls answered 429 with `Retry-After`.
    pub rate_limited: u64,
    /// Calls for an id made before the `Retry-After` it was given had passed.
    pub early_retries: u64,
    /// Creates answered 201 but not recorded (`CREATE_LOST_RATE`).
    pub lost: u64,
    /// Calls answered 503 during an outage (`POST /admin/outage`).
    pub outage_refusals: u64,
}

/// Fault kinds, the salt of each roll.
mod kind {
    pub const CREATE_504_BEFORE: u64 = 1;
    pub const CREATE_4XX: u64 = 2;
    pub const CREATE_HANG: u64 = 3;
    pub const CREATE_504_AFTER: u64 = 4;
    pub const STATUS_504: u64 = 5;
    pub const RESOLVE_DELAY: u64 = 6;
    pub const DECLINE: u64 = 7;
    pub const DROP: u64 = 8;
    pub const DUP: u64 = 9;
    pub const STALE: u64 = 10;
    pub const UNAUTHORIZED: u64 = 11;
    pub const RATE_LIMIT: u64 = 12;
    pub const REQUEST_TIMEOUT: u64 = 13;
    pub const CREATE_LOST: u64 = 14;
}

#[derive(Default)]
struct Counters {
    created: AtomicU64,
    conflicts: AtomicU64,
    status_checks: AtomicU64,
    webhooks_sent: AtomicU64,
    webhooks_dropped: AtomicU64,
    unauthorized: AtomicU64,
    rate_limited: AtomicU64,
    early_retries: AtomicU64,
    lost: AtomicU64,
    outage_refusals: AtomicU64,
}

struct Sim {
    config: Config,
    signer: Signer,
    http: reqwest::Client,
    stop: CancellationToken,
    transactions: Mutex<HashMap<Uuid, Status>>,
    /// Calls so far per (id, route), so every call of a retry rolls afresh, repeatably.
    calls: Mutex<HashMap<(Uuid, u8), u64>>,
    /// The key every call must carry, if one is configured.
    api_key: Option<ApiKey>,
    /// Per id, when the last `Retry-After` given for it runs out.
    not_before: Mutex<HashMap<Uuid, Instant>>,
    /// While set, every call is answered 503 and no webhook is sent (`POST /admin/outage`).
    outage: AtomicBool,
    counters: Counters,
    /// Per id, the W3C `traceparent` of each call about it (submissions and look-ups), in
    /// order; its webhooks carry the first submission's, as a peer that joins traces does.
    traces: Mutex<HashMap<Uuid, Vec<String>>>,
}

type Shared = Arc<Sim>;

impl Sim {
    fn next_call(&self, id: Uuid, route: u8) -> u64 {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let n = calls.entry((id, route)).or_insert(0);
        *n += 1;
        *n
    }

    fn hits(&self, rate: fault::Rate, id: Uuid, call: u64, kind: u64) -> bool {
        fault::hits(rate, self.config.behaviour.seed, id.as_u128(), call, kind)
    }

    async fn latency(&self) {
        if self.config.behaviour.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.behaviour.latency_ms)).await;
        }
    }

    /// Keeps the `traceparent` of a call about `id`, if it has one.
    fn heard_trace(&self, id: Uuid, headers: &HeaderMap) {
        if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            self.traces
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id)
                .or_default()
                .push(traceparent.to_string());
        }
    }

    /// The `traceparent` of the first call about `id`, which its webhooks carry.
    fn first_trace(&self, id: Uuid) -> Option<String> {
        let traces = self.traces.lock().unwrap_or_else(|e| e.into_inner());
        traces.get(&id).and_then(|t| t.first().cloned())
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            created: c.created.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            status_checks: c.status_checks.load(Ordering::Relaxed),
            webhooks_sent: c.webhooks_sent.load(Ordering::Relaxed),
            webhooks_dropped: c.webhooks_dropped.load(Ordering::Relaxed),
            unauthorized: c.unauthorized.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            early_retries: c.early_retries.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            outage_refusals: c.outage_refusals.load(Ordering::Relaxed),
        }
    }

    /// Whether the call carries the configured key (always, when none is configured).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        self.api_key
            .as_ref()
            .is_none_or(|key| key.carried_by(headers))
    }

    /// What every call to `/transactions` passes first, before it has any effect: the
    /// credentials, then the refusals that change nothing (401, 429 with `Retry-After`, 408).
    /// Also counts a call for an id that comes before the `Retry-After` it was given.
    fn gate(&self, headers: &HeaderMap, id: Uuid, call: u64, route: u8) -> Option<Response> {
        if self.outage.load(Ordering::Relaxed) {
            self.counters
                .outage_refusals
                .fetch_add(1, Ordering::Relaxed);
            return Some((StatusCode::SERVICE_UNAVAILABLE, "outage").into_response());
        }
        let now = Instant::now();
        {
            let not_before = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
            if not_before.get(&id).is_some_and(|t| now < *t) {
                self.counters.early_retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(txn_id = %id, "called again before its Retry-After");
            }
        }
        let c = &self.config.behaviour;
        // Every route rolls apart, so a create and a lookup of one call number differ.
        let salt = u64::from(route) << 32;
        if !self.authorized(headers)
            || self.hits(c.unauthorized_rate, id, call, kind::UNAUTHORIZED | salt)
        {
            self.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            return Some((StatusCode::UNAUTHORIZED, "missing or wrong API key").into_response());
        }
        if self.hits(c.rate_limit_rate, id, call, kind::RATE_LIMIT | salt) {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            self.not_before
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, now + Duration::from_secs(c.retry_after_s));
            return Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(RETRY_AFTER, c.retry_after_s.to_string())],
                    "slow down",
                )
                    .into_response(),
            );
        }
        if self.hits(
            c.request_timeout_rate,
            id,
            call,
            kind::REQUEST_TIMEOUT | salt,
        ) {
            return Some(StatusCode::REQUEST_TIMEOUT.into_response());
        }
        None
    }
}

/// The simulator's routes.
pub fn router(
    config: Config,
    stop: CancellationToken,
) -> Result<Router, outbound::http_client::HttpClientError> {
    let sim = Arc::new(Sim {
        signer: Signer::new(&config.webhook_secret),
        api_key: ApiKey::from_settings(config.api_key.as_ref(), config.auth_header.as_deref()),
        http: outbound::http_client::client(
            Duration::from_secs(5),
            config.https_ca_file.as_deref(),
        )?,
        config,
        stop,
        transactions: Mutex::default(),
        calls: Mutex::default(),
        not_before: Mutex::default(),
        outage: AtomicBool::new(false),
        counters: Counters::default(),
        traces: Mutex::default(),
    });
    Ok(Router::new()
        .route("/transactions", post(create))
        .route("/transactions/{id}", get(lookup))
        .route("/admin/outage", post(outage))
        .route("/stats", get(stats))
        .route("/ledger", get(ledger))
        .route("/traces", get(traces))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(sim))
}

#[derive(Deserialize)]
struct CreateBody {
    id: Uuid,
}

#[derive(Serialize)]
struct StatusBody {
    id: Uuid,
    status: Status,
}

fn status_body(id: Uuid, status: Status) -> Json<StatusBody> {
    Json(StatusBody { id, status })
}

const CREATE: u8 = 1;
const LOOKUP: u8 = 2;

async fn create(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<CreateBody>,
) -> Response {
    let id = body.id;
    sim.heard_trace(id, &headers);
    let call = sim.next_call(id, CREATE);
    if let Some(refused) = sim.gate(&headers, id, call, CREATE) {
        sim.latency().await;
        return refused;
    }
    let c = &sim.config.behaviour;
    if sim.hits(c.create_504_before_rate, id, call, kind::CREATE_504_BEFORE) {
        sim.latency().await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    if sim.hits(c.create_4xx_rate, id, call, kind::CREATE_4XX) {
        sim.latency().await;
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "rejected by the processor",
        )
            .into_response();
    }
    if sim.hits(c.create_lost_rate, id, call, kind::CREATE_LOST) {
        sim.counters.lost.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(txn_id = %id, "create answered 201 but lost");
        sim.latency().await;
        return (StatusCode::CREATED, status_body(id, Status::Pending)).into_response();
    }
    // Recorded the moment the request arrives; the faults below happen after.
    let is_new = {
        let mut txns = sim.transactions.lock().unwrap_or_else(|e| e.into_inner());
        let new = !txns.contains_key(&id);
        txns.entry(id).or_insert(Status::Pending);
        new
    };
    let response = if is_new {
        sim.counters.created.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(resolve(sim.clone(), id));
        (StatusCode::CREATED, status_body(id, Status::Pending)).into_response()
    } else {
        sim.counters.conflicts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(txn_id = %id, "create for an id already held (a blind re-submission)");
        (StatusCode::CONFLICT, "transaction already exists").into_response()
    };
    sim.latency().await;
    if sim.hits(c.create_hang_rate, id, call, kind::CREATE_HANG) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = sim.stop.cancelled() => {}
        }
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    if sim.hits(c.create_504_after_rate, id, call, kind::CREATE_504_AFTER) {
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    response
}

async fn lookup(State(sim): State<Shared>, headers: HeaderMap, Path(id): Path<Uuid>) -> Response {
    sim.counters.status_checks.fetch_add(1, Ordering::Relaxed);
    sim.heard_trace(id, &headers);
    let call = sim.next_call(id, LOOKUP);
    sim.latency().await;
    if let Some(refused) = sim.gate(&headers, id, call, LOOKUP) {
        return refused;
    }
    if sim.hits(
        sim.config.behaviour.status_504_rate,
        id,
        call,
        kind::STATUS_504,
    ) {
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    let status = sim
        .transactions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .copied();
    match status {
        Some(status) => status_body(id, status).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The body of `POST /admin/outage`, and its answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Outage {
    /// Whether the outage is on.
    pub on: bool,
}

/// `POST /admin/outage {"on": bool}`: starts or ends an outage (the API key applies, if set).
async fn outage(
    State(sim): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Outage>,
) -> Response {
    if !sim.authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong API key").into_response();
    }
    sim.outage.store(body.on, Ordering::Relaxed);
    tracing::warn!(on = body.on, "outage switched");
    Json(body).into_response()
}

async fn stats(State(sim): State<Shared>) -> Json<Stats> {
    Json(sim.stats())
}

/// `GET /traces`: per id, the `traceparent` of each call about it, in order (for tests).
async fn traces(State(sim): State<Shared>) -> Json<HashMap<Uuid, Vec<String>>> {
    Json(sim.traces.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// `GET /ledger`: every transaction it holds with its status, free of faults (for tests).
async fn ledger(State(sim): State<Shared>) -> Json<HashMap<Uuid, Status>> {
    Json(
        sim.transactions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    )
}

/// Resolves `id` after its delay, then reports the outcome by webhook (or not, or twice, or
/// followed by a stale `pending`, as the fault rates decide).
async fn resolve(sim: Shared, id: Uuid) {
    let c = &sim.config.behaviour;
    let span = c.resolve_max_ms.saturating_sub(c.resolve_min_ms) as f64;
    let delay = c.resolve_min_ms
        + (fault::uniform(c.seed, id.as_u128(), 0, kind::RESOLVE_DELAY) * span) as u64;
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
        _ = sim.stop.cancelled() => return,
    }
    let status = if sim.hits(c.decline_rate, id, 0, kind::DECLINE) {
        Status::Declined
    } else {
        Status::Completed
    };
    sim.transactions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, status);

    // During an outage its API is down but its back office works on: the outcome is there
    // for the first status check after it, and the webhook waits until then.
    while sim.outage.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = sim.stop.cancelled() => return,
        }
    }
    if sim.hits(c.webhook_drop_rate, id, 0, kind::DROP) {
        sim.counters
            .webhooks_dropped
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    let msg_id = format!("msg_{}", Uuid::new_v4().simple());
    send_webhook(&sim, &msg_id, id, status).await;
    if sim.hits(c.webhook_dup_rate, id, 0, kind::DUP) {
        send_webhook(&sim, &msg_id, id, status).await;
    }
    if sim.hits(c.webhook_stale_rate, id, 0, kind::STALE) {
        let stale_id = format!("msg_{}", Uuid::new_v4().simple());
        send_webhook(&sim, &stale_id, id, Status::Pending).await;
    }
}

/// Sends one signed webhook, retrying a few times while the producer is unavailable (a real
/// processor retries too); a 4xx is an answer and is not retried.
async fn send_webhook(sim: &Sim, msg_id: &str, id: Uuid, status: Status) {
    let Ok(body) = serde_json::to_vec(&StatusBody { id, status }) else {
        return;
    };
    sim.counters.webhooks_sent.fetch_add(1, Ordering::Relaxed);
    for attempt in 0..5u32 {
        let mut headers = sim.signer.headers_now(msg_id, &body);
        if let Some(traceparent) = sim
            .first_trace(id)
            .and_then(|t| reqwest::header::HeaderValue::from_str(&t).ok())
        {
            headers.insert("traceparent", traceparent);
        }
        let sent = sim
            .http
            .post(sim.config.webhook_url.as_str())
            .headers(headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send();
        let outcome = tokio::select! {
            r = sent => r,
            _ = sim.stop.cancelled() => return,
        };
        match outcome {
            Ok(r) if r.status().is_success() || r.status().is_client_error() => return,
            Ok(r) => {
                tracing::debug!(txn_id = %id, status = %r.status(), attempt, "webhook not accepted")
            }
            Err(e) => tracing::debug!(txn_id = %id, error = %e, attempt, "webhook not delivered"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200 << attempt)) => {}
            _ = sim.stop.cancelled() => return,
        }
    }
}
