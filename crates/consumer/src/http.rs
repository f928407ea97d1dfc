//! The consumer's HTTP side: liveness, readiness, metrics, the queue board and the admin API.

use std::sync::Arc;

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};

use crate::{board::Board, pipeline::Pipeline, readiness};

#[derive(Clone)]
struct Side {
    pipeline: Arc<Pipeline>,
    board: Board,
}

/// Routes: `/healthz` (the process is up), `/readyz` (Redis and Postgres answer), `/metrics`,
/// the board under `/board`, the admin API under `/admin`, and its OpenAPI document at
/// `/openapi.json`.
pub fn router(pipeline: Arc<Pipeline>, board: Board, admin: Option<crate::admin::Admin>) -> Router {
    let side = Side {
        pipeline,
        board: board.clone(),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .with_state(side)
        .merge(crate::board::router(board))
        .merge(crate::admin::router(admin))
}

/// The admin API's OpenAPI document (served whether or not the admin API is enabled).
async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(crate::admin::document())
}

/// 200 `ready`, or 503 naming the dependency that did not answer and why; when retrying will
/// not help, what to change (and it is counted).
async fn ready(State(side): State<Side>) -> (StatusCode, String) {
    match readiness::check(&side.pipeline).await {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        Err(not) => {
            if let Some(wrong) = &not.misconfigured {
                service::misconfiguration::count(wrong);
            }
            (StatusCode::SERVICE_UNAVAILABLE, not.to_string())
        }
    }
}

/// Prometheus text; queue depths (Redis) and disabled client apps (Postgres) are read at
/// scrape time.
async fn metrics(State(side): State<Side>) -> impl IntoResponse {
    match side.board.counts().await {
        Ok(queues) => {
            for q in queues {
                let c = q.counts;
                for (state, n) in [
                    ("waiting", c.waiting),
                    ("scheduled", c.scheduled),
                    ("running", c.running),
                    ("failed", c.failed),
                ] {
                    metrics::gauge!("queue_jobs", "queue" => q.name.clone(), "state" => state)
                        .set(n as f64);
                }
                metrics::gauge!("queue_paused", "queue" => q.name.clone()).set(if c.paused {
                    1.0
                } else {
                    0.0
                });
            }
        }
        Err(e) => tracing::warn!(error = %e, "queue depths unavailable for /metrics"),
    }
    match side.pipeline.store.disabled_client_apps().await {
        Ok(n) => metrics::gauge!("client_apps_disabled").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "disabled client apps unavailable for /metrics"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        service::telemetry::render_metrics(),
    )
}
