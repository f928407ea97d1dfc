//! The transaction API: accepts transactions and queues their `create` job in one
//! Redis round trip, answers status reads from Postgres, and turns signed third-party webhooks
//! into *apply* jobs. It never writes transactions to Postgres.
#![deny(unsafe_code)]

pub mod acceptance;
pub mod app;
pub mod auth;
mod config;
pub mod durability;
mod extract;
mod input;
pub mod openapi;
pub mod problem;
mod routes;
pub mod trace;

pub use config::Config;

use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::durability::Durability;

/// Logs what is known of Redis's durability and sets `redis_durable_acceptance`.
fn report(durability: &Durability) {
    match durability {
        Durability::Durable => tracing::info!(redis = %durability, "acceptance is durable"),
        Durability::Assumed => tracing::warn!(
            redis = %durability,
            "acceptance durability is asserted by REDIS_DURABILITY=assume, not checked"
        ),
        Durability::Unreachable(_) => {
            tracing::warn!(redis = %durability, "Redis durability not known yet; asking again")
        }
        _ => tracing::warn!(
            redis = %durability,
            "ACCEPTANCE IS NOT DURABLE: a Redis crash can lose transactions already answered 201; \
             run Redis with appendonly yes and appendfsync always (set REQUIRE_DURABLE_REDIS=true to enforce)"
        ),
    }
    metrics::gauge!("redis_durable_acceptance").set(if durability.is_durable() {
        1.0
    } else {
        0.0
    });
}

/// Serves the API on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish for at most `SHUTDOWN_GRACE_MS`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut state = app::AppState::new(&config)?;
    // A strict producer must know before it serves; otherwise it serves at once and keeps
    // asking while Redis is unreachable (compose starts everything together).
    let wait = if config.require_durable_redis {
        std::time::Duration::from_secs(30)
    } else {
        std::time::Duration::ZERO
    };
    let mut conn = state.redis.clone();
    let durability = Durability::learn(config.redis_durability, &mut conn, wait).await;
    if config.require_durable_redis && !durability.is_durable() {
        anyhow::bail!("REQUIRE_DURABLE_REDIS is set but Redis is {durability}");
    }
    let unreachable = matches!(durability, Durability::Unreachable(_));
    report(&durability);
    state.durability = Arc::new(RwLock::new(durability));
    if unreachable {
        let (known, mode, stop) = (
            state.durability.clone(),
            config.redis_durability,
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let learned = tokio::select! {
                // Until it answers: a year is "forever" without overflowing the deadline.
                d = Durability::learn(mode, &mut conn, std::time::Duration::from_secs(365 * 86_400)) => d,
                _ = stop.cancelled() => return,
            };
            report(&learned);
            *known.write().unwrap_or_else(|e| e.into_inner()) = learned;
        });
    }
    // Install the recorder before the first request is counted.
    service::telemetry::metrics();
    // Only a loss while it runs is the producer's to see: a marker missing at its start may
    // be a new Redis, which the consumer (it knows Postgres) tells apart.
    tokio::spawn(id_cache::marker::watch(
        state.redis.clone(),
        id_cache::marker::Marker::new(&config.connections.queue_prefix),
        std::time::Duration::from_secs(1),
        shutdown.clone(),
        || async { false },
        || {},
    ));
    let router = app::router(state, &config);
    tracing::info!(addr = %listener.local_addr()?, prefix = %config.connections.queue_prefix, "producer listening");
    let serve = service::serve::serve(listener, router, &config.server, shutdown.clone());
    let grace = config.shutdown.duration();
    tokio::select! {
        result = serve => result?,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!("shutdown grace period over; dropping in-flight requests"),
    }
    Ok(())
}
