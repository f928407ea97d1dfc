//! The consumer (DESIGN §4): one apalis worker pool per queue on `crates/queue`, each with its
//! own concurrency, the sweeper, and a small HTTP side for health checks.
#![deny(unsafe_code)]

pub mod board;
mod config;
pub mod handlers;
mod http;
pub mod pipeline;
pub mod sweeper;

pub use config::{Config, QueueSet};

use std::{future::Future, sync::Arc, time::Duration};

use apalis::prelude::*;
use tokio::{net::TcpListener, sync::watch};
use txn_core::{jobs::queue_name, store::Store};

use crate::pipeline::Pipeline;

/// Applies the migrations (`consumer migrate`).
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    Store::connect_lazy(database_url, 2)?.migrate().await?;
    Ok(())
}

/// Runs the configured pools, the sweeper and the health endpoints until `shutdown` resolves;
/// then stops fetching, lets held jobs finish (at most `SHUTDOWN_GRACE_MS`) and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.migrate_on_start {
        migrate(&config.database_url).await?;
    }
    txn_core::telemetry::metrics();
    let p = Arc::new(Pipeline::new(&config)?);
    let board = board::Board::new(
        p.redis_client.clone(),
        p.redis.clone(),
        &config.queue_prefix,
        config.board_token.clone(),
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let mut monitor =
        Monitor::new().shutdown_timeout(Duration::from_millis(config.shutdown_grace_ms));
    // One pool per queue this process runs; the handlers differ in type, hence a macro.
    macro_rules! pool {
        ($name:expr, $queue:ident, $handler:path) => {
            if config.queues.contains($name) {
                let (queue, n, p) = (p.$queue.clone(), config.concurrency($name), p.clone());
                monitor = monitor.register(move |_| {
                    WorkerBuilder::new($name)
                        .backend(queue.clone())
                        .data(p.clone())
                        .concurrency(n)
                        .build($handler)
                });
            }
        };
    }
    pool!(queue_name::CREATE, create, handlers::create::create);
    pool!(queue_name::PROCESS, process, handlers::process::process);
    pool!(queue_name::UPDATE, update, handlers::update::update);
    pool!(queue_name::NOTIFY, notify, handlers::notify::notify);

    let sweeper = config.sweeper.then(|| {
        tokio::spawn(sweeper::run(
            p.clone(),
            Duration::from_millis(config.sweep_interval_ms),
            Duration::from_millis(config.sweep_grace_ms),
            config.sweep_batch,
            stopped(),
        ))
    });
    tracing::info!(addr = %listener.local_addr()?, prefix = %config.queue_prefix, queues = ?config.queues, "consumer running");
    let http = tokio::spawn(
        axum::serve(
            txn_core::listener::no_delay(listener),
            http::router(p.clone(), board),
        )
        .with_graceful_shutdown(stopped())
        .into_future(),
    );

    let workers = monitor.run_with_signal({
        let stopped = stopped();
        async move {
            stopped.await;
            Ok(())
        }
    });
    tokio::pin!(workers);
    tokio::select! {
        result = &mut workers => result?,
        _ = shutdown => {
            tracing::info!("stopping: no new jobs; finishing held ones");
            let _ = stop_tx.send(true);
            workers.await?;
        }
    }
    let _ = stop_tx.send(true);
    if let Some(sweeper) = sweeper {
        let _ = sweeper.await;
    }
    let _ = http.await;
    tracing::info!("consumer stopped");
    Ok(())
}
