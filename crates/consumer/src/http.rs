//! The consumer's small HTTP side: liveness and readiness.

use std::sync::Arc;

use axum::{Router, extract::State, http::StatusCode, routing::get};

use crate::pipeline::Pipeline;

/// Routes: `/healthz` (the process is up), `/readyz` (Redis and Postgres answer).
pub fn router(p: Arc<Pipeline>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(p)
}

async fn ready(State(p): State<Arc<Pipeline>>) -> (StatusCode, &'static str) {
    let redis = redis::cmd("PING")
        .query_async::<String>(&mut p.redis.clone())
        .await
        .is_ok();
    let postgres = p.store.ping().await.is_ok();
    match (redis, postgres) {
        (true, true) => (StatusCode::OK, "ready"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable"),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "postgres unavailable"),
    }
}
