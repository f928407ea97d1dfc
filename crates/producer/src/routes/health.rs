//! Liveness, readiness, and the problem+json answers for unknown routes and methods.

use axum::{Json, extract::State, http::Uri, response::IntoResponse};
use serde::Serialize;
use service::misconfiguration::{Dependency, count, diagnose, text};

use crate::{
    app::Shared,
    problem::{ApiError, Problem},
};

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up", body = String)))]
/// `GET /healthz`: the process is up.
pub async fn live() -> &'static str {
    "ok"
}

/// The body of a successful `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always "ready".
    status: &'static str,
    /// Whether Redis fsyncs every write before replying (a 201 survives a Redis crash).
    durable_acceptance: bool,
    /// What was found at start-up.
    redis: String,
}

#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "Redis answers; the body says whether acceptance is durable", body = Readiness),
    (status = 503, description = "Redis unavailable; `/problems/misconfigured` with what to change when retrying will not help (an untrusted certificate, refused credentials, an unknown host)", body = Problem, content_type = "application/problem+json"),
))]
/// `GET /readyz`: the Redis nodes of both its queues answer (Postgres is not checked: its
/// outage only degrades `GET` and the known-id look-up).
pub async fn ready(State(state): State<Shared>) -> Result<Json<Readiness>, ApiError> {
    state.queues.create.reachable().await.map_err(not_ready)?;
    state.queues.update.reachable().await.map_err(not_ready)?;
    let durability = state.durability.read().unwrap_or_else(|e| e.into_inner());
    Ok(Json(Readiness {
        status: "ready",
        durable_acceptance: durability.is_durable(),
        redis: durability.to_string(),
    }))
}

/// Why Redis did not answer: what to change when retrying will not fix it (counted), the
/// outage otherwise.
fn not_ready(error: queue::QueueError) -> ApiError {
    match diagnose(Dependency::Redis, &text(&error)) {
        Some(wrong) => {
            count(&wrong);
            ApiError::Misconfigured(wrong)
        }
        None => error.into(),
    }
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain")))]
/// `GET /metrics`: Prometheus text.
pub async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        service::telemetry::render_metrics(),
    )
}

/// Any unknown route.
pub async fn no_route(uri: Uri) -> impl IntoResponse {
    ApiError::NoRoute(uri.path().to_string())
}

/// A known route with the wrong method.
pub async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed
}
