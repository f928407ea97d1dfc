//! The callback receiver and what it recorded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use domain::{Status, fault, signature::Verifier};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Config;

/// One accepted callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The transaction.
    pub id: Uuid,
    /// The status it was told.
    pub status: Status,
    /// The `webhook-id` header: the same on every retry of one notification.
    pub delivery_id: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// Its W3C `traceparent` header, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

struct Receiver {
    config: Config,
    verifier: Verifier,
    received: Mutex<Vec<Received>>,
    /// Transactions heard of, kept as they arrive so `/stats` stays cheap.
    heard: Mutex<std::collections::HashSet<Uuid>>,
    calls: Mutex<HashMap<String, u64>>,
    /// Per delivery, when the last `Retry-After` given for it runs out.
    not_before: Mutex<HashMap<String, Instant>>,
    rate_limited: std::sync::atomic::AtomicU64,
    early_retries: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct Callback {
    id: Uuid,
    status: Status,
}

/// The simulator's routes.
pub fn router(config: Config) -> Router {
    let receiver = Arc::new(Receiver {
        verifier: Verifier::new(&config.client_webhook_secret),
        config,
        received: Mutex::default(),
        heard: Mutex::default(),
        calls: Mutex::default(),
        not_before: Mutex::default(),
        rate_limited: Default::default(),
        early_retries: Default::default(),
    });
    Router::new()
        .route("/transactions/{id}/status", post(callback))
        .route("/received", get(all))
        .route("/received/{id}", get(of_one))
        .route("/stats", get(stats))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(receiver)
}

async fn callback(
    State(receiver): State<Arc<Receiver>>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = receiver.verifier.verify(&body, &headers) {
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    let Ok(callback) = serde_json::from_slice::<Callback>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not {id, status}").into_response();
    };
    if callback.id != id {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "body id differs from the path",
        )
            .into_response();
    }
    let delivery_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let call = {
        let mut calls = receiver.calls.lock().unwrap_or_else(|e| e.into_inner());
        let n = calls.entry(delivery_id.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let now = Instant::now();
    if receiver
        .not_before
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&delivery_id)
        .is_some_and(|t| now < *t)
    {
        receiver
            .early_retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(delivery_id, "notified again before its Retry-After");
    }
    if receiver.config.faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(receiver.config.faults.latency_ms)).await;
    }
    let subject = Uuid::parse_str(&delivery_id)
        .map(|u| u.as_u128())
        .unwrap_or(id.as_u128());
    if fault::hits(
        receiver.config.faults.fail_rate,
        receiver.config.faults.seed,
        subject,
        call,
        1,
    ) {
        return (StatusCode::SERVICE_UNAVAILABLE, "failing on purpose").into_response();
    }
    let retry_after = receiver.config.faults.retry_after_s;
    if fault::hits(
        receiver.config.faults.rate_limit_rate,
        receiver.config.faults.seed,
        subject,
        call,
        2,
    ) {
        receiver
            .not_before
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(delivery_id, now + Duration::from_secs(retry_after));
        receiver
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, retry_after.to_string())],
            "slow down",
        )
            .into_response();
    }
    receiver
        .heard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id);
    receiver
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            id,
            status: callback.status,
            delivery_id,
            received_at: Utc::now(),
            traceparent: headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
    StatusCode::OK.into_response()
}

async fn all(State(receiver): State<Arc<Receiver>>) -> Json<Vec<Received>> {
    Json(
        receiver
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    )
}

async fn of_one(
    State(receiver): State<Arc<Receiver>>,
    Path(id): Path<Uuid>,
) -> Json<Vec<Received>> {
    let received = receiver.received.lock().unwrap_or_else(|e| e.into_inner());
    Json(received.iter().filter(|r| r.id == id).cloned().collect())
}

/// What `/stats` reports: cheap counts for load tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedStats {
    /// Callbacks accepted (duplicates included).
    pub received: usize,
    /// Distinct transactions among them.
    pub transactions: usize,
    /// Callbacks answered 429 with `Retry-After`.
    pub rate_limited: u64,
    /// Callbacks of a delivery that came before the `Retry-After` it was given had passed.
    pub early_retries: u64,
}

async fn stats(State(receiver): State<Arc<Receiver>>) -> Json<ReceivedStats> {
    let received = receiver
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    let transactions = receiver
        .heard
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    Json(ReceivedStats {
        received,
        transactions,
        rate_limited: receiver
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed),
        early_retries: receiver
            .early_retries
            .load(std::sync::atomic::Ordering::Relaxed),
    })
}
