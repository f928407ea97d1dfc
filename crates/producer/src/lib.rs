//! The transaction API: accepts transactions and queues their `create` job in one
//! Redis round trip, answers status reads from Postgres, and turns signed third-party webhooks
//! into *apply* jobs. It never writes transactions to Postgres.
#![deny(unsafe_code)]

pub mod app;
mod config;
pub mod durability;
mod input;
pub mod openapi;
pub mod problem;
mod routes;

pub use config::Config;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the API on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish for at most `SHUTDOWN_GRACE_MS`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut state = app::AppState::new(&config)?;
    let durability =
        durability::Durability::learn(config.redis_durability, &mut state.redis.clone()).await;
    match &durability {
        durability::Durability::Durable => {
            tracing::info!(redis = %durability, "acceptance is durable")
        }
        durability::Durability::Assumed => {
            tracing::warn!(redis = %durability, "acceptance durability is asserted by REDIS_DURABILITY=assume, not checked")
        }
        _ if config.require_durable_redis => {
            anyhow::bail!("REQUIRE_DURABLE_REDIS is set but Redis is {durability}");
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
    state.durability = std::sync::Arc::new(durability);
    // Install the recorder before the first request is counted.
    txn_core::telemetry::metrics();
    let router = app::router(state, &config);
    tracing::info!(addr = %listener.local_addr()?, prefix = %config.connections.queue_prefix, "producer listening");
    let serve = txn_core::serve::serve(listener, router, &config.server, shutdown.clone());
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
