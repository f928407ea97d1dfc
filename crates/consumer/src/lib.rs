//! The consumer: one apalis worker pool per queue on `crates/queue`, each with its own
//! concurrency, the sweeper, and a small HTTP side (health, metrics, the queue board).
#![deny(unsafe_code)]

pub mod admin;
pub mod board;
pub mod clients;
mod config;
pub mod destinations;
pub mod handlers;
mod http;
pub mod pipeline;
pub mod readiness;
pub mod sweeper;

pub use config::{Command, Config, Invocation, MigrateConfig, QueueSet, invocation_from};

use std::{sync::Arc, time::Duration};

use apalis::prelude::*;
use jobs::Queued;
use store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

/// Applies the migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    Store::connect_lazy(database_url, 2)?.migrate().await?;
    Ok(())
}

/// `consumer migrate`: waits up to `wait` for the database to accept connections, then applies
/// the migrations.
pub async fn migrate_when_ready(database_url: &str, wait: Duration) -> anyhow::Result<()> {
    let store = Store::connect_lazy(database_url, 2)?;
    let deadline = tokio::time::Instant::now() + wait;
    while let Err(e) = store.ping().await {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the database did not answer within {wait:?}: {e}");
        }
        let error = service::misconfiguration::text(&e);
        let pause = service::misconfiguration::report_wait(
            service::misconfiguration::Dependency::Postgres,
            &error,
            "waiting for the database",
        );
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause)).await;
    }
    store.migrate().await?;
    Ok(())
}

/// After `consumer migrate`: the development client app, when `DEV_API_KEY` is set.
pub async fn bootstrap_dev(migrate: &MigrateConfig) -> anyhow::Result<()> {
    let (Some(key), Some(pepper), Some(notify_url), Some(secrets)) = (
        &migrate.dev_api_key,
        &migrate.api_key_pepper,
        &migrate.dev_notify_url,
        &migrate.dev_signing_secret,
    ) else {
        return Ok(());
    };
    let store = Store::connect_lazy(migrate.database_url.as_str(), 2)?;
    let app =
        clients::ensure_dev(&store, pepper, key.expose(), notify_url.as_str(), secrets).await?;
    tracing::info!(client_app = %app.id, name = %app.name, "development client app ready (DEV_API_KEY)");
    Ok(())
}

/// The admin API's context, when `ADMIN_TOKEN` is set (with the pepper it needs).
fn admin(config: &Config, p: &Pipeline) -> anyhow::Result<Option<admin::Admin>> {
    let Some(token) = &config.admin_token else {
        return Ok(None);
    };
    let Some(pepper) = &config.api_key_pepper else {
        anyhow::bail!("ADMIN_TOKEN needs API_KEY_PEPPER (the producer's), to make API keys");
    };
    Ok(Some(admin::Admin {
        store: p.store.clone(),
        queues: p.queues.clone(),
        token: token.clone(),
        pepper: pepper.clone(),
        overlap: config.secret_rotation_overlap,
        require_https: config.require_https_notify,
    }))
}

/// `consumer clients …`: does the action; its answer as JSON.
pub async fn administer(command: clients::ClientsCommand) -> anyhow::Result<serde_json::Value> {
    let store = Store::connect_lazy(command.database_url.as_str(), 2)?;
    Ok(clients::run(&store, command).await?)
}

/// Registers the pool of jobs of kind `K` on `monitor`, if this process runs that queue: its
/// concurrency from the settings, the pipeline as the handler's data.
fn pool<K, F, Fut>(monitor: Monitor, config: &Config, p: &Arc<Pipeline>, handler: F) -> Monitor
where
    K: Queued + Unpin,
    F: Fn(K, Attempt, handlers::Ctx) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxDynError>> + Send + 'static,
{
    if !config.queues.contains(K::QUEUE) {
        return monitor;
    }
    let (queue, n, p) = (
        p.queues.of::<K>().clone(),
        config.concurrency(K::QUEUE),
        p.clone(),
    );
    let traced = move |job: K, attempt: Attempt, ctx: handlers::Ctx| {
        let handling = service::trace::Handling::of(job.trace());
        let span = job_span(&job, &attempt, handling.trace_id());
        let handled = handler(job, attempt, ctx);
        let exported = handling.recorded();
        let recorded = async move {
            let result = handled.await;
            // A field only the exported span has (recording it costs every job otherwise).
            if exported {
                tracing::Span::current().record("outcome", outcome(&result));
            }
            result
        };
        handling.run(span, recorded)
    };
    monitor.register(move |_| {
        WorkerBuilder::new(K::QUEUE.as_str())
            .backend(queue.clone())
            .data(p.clone())
            .concurrency(n)
            .build(traced.clone())
    })
}

/// The span of one handling of `job` (see `service::trace::Handling`), so a transaction's
/// work across processes and queues is one trace and every log line of the handling carries
/// its `trace_id`. With `trace_id` known (the handling is not recorded), a span for the log
/// lines only, made with all its fields at once; without, the exported span, which records its
/// trace id and outcome as they come.
fn job_span<K: Queued>(job: &K, attempt: &Attempt, trace_id: Option<&str>) -> tracing::Span {
    match trace_id {
        Some(trace_id) => tracing::info_span!(
            target: service::trace::LOGGED,
            "job",
            queue = %K::QUEUE,
            job_id = %job.job_id(),
            attempt = attempt.current(),
            trace_id,
        ),
        None => tracing::info_span!(
            target: service::trace::TARGET,
            "job",
            otel.name = %format_args!("{} job", K::QUEUE),
            otel.kind = "consumer",
            queue = %K::QUEUE,
            job_id = %job.job_id(),
            attempt = attempt.current(),
            outcome = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        ),
    }
}

/// How a handling ended, as its span records it: done, retried later, or failed.
fn outcome(result: &Result<(), BoxDynError>) -> &'static str {
    match result {
        Ok(()) => "done",
        Err(e) if e.downcast_ref::<RetryAfterError>().is_some() => "retry",
        Err(_) => "failed",
    }
}

/// How often each consumer looks for a Redis data loss.
const MARKER_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the configured pools, the sweeper and the health endpoints until `shutdown` is
/// cancelled; then stops fetching, lets held jobs finish (at most `SHUTDOWN_GRACE_MS`) and
/// returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if config.migrate_on_start {
        migrate(config.connections.database_url.as_str()).await?;
    }
    service::telemetry::metrics();
    let p = Arc::new(Pipeline::new(&config)?);
    let board = board::Board::new(
        p.redis_client.clone(),
        p.redis.clone(),
        &config.connections.queue_prefix,
        p.store.clone(),
        board::Access {
            token: config.board_token.clone(),
            allow_actions: config.board_allow_actions,
            secure_cookie: config.server.tls_cert_file.is_some(),
        },
    )?;
    // Stops this process's parts: on shutdown, or when the pools end by themselves (an error).
    let stop = shutdown.child_token();

    let mut monitor = Monitor::new().shutdown_timeout(config.shutdown.duration());
    monitor = pool(monitor, &config, &p, handlers::create::create);
    monitor = pool(monitor, &config, &p, handlers::process::process);
    monitor = pool(monitor, &config, &p, handlers::update::update);
    monitor = pool(monitor, &config, &p, handlers::notify::notify);

    let sweeper = config.sweeper.then(|| {
        let settings = sweeper::SweepSettings {
            interval: config.sweep_interval,
            grace: config.sweep_grace,
            batch: config.sweep_batch,
            revive_after: config.dead_revive,
        };
        tokio::spawn(sweeper::run(p.clone(), settings, stop.clone()))
    });
    let marker = tokio::spawn({
        let p = p.clone();
        let marker = id_cache::marker::Marker::new(&config.connections.queue_prefix);
        id_cache::marker::watch(
            p.redis.clone(),
            marker,
            MARKER_INTERVAL,
            stop.clone(),
            {
                let p = p.clone();
                move || {
                    let p = p.clone();
                    async move {
                        match p.store.has_transactions().await {
                            Ok(any) => any,
                            Err(e) => {
                                // Cannot tell a new Redis from one that lost its data: sweep
                                // everything due once, which is harmless if nothing was lost.
                                tracing::warn!(error = %e, "Redis marker was missing and Postgres cannot say whether Redis lost data; sweeping everything due once");
                                p.full_sweep_owed
                                    .store(true, std::sync::atomic::Ordering::SeqCst);
                                false
                            }
                        }
                    }
                }
            },
            move || {
                p.full_sweep_owed
                    .store(true, std::sync::atomic::Ordering::SeqCst)
            },
        )
    });
    let sampler = tokio::spawn(board.clone().sample_throughput(stop.clone()));
    tokio::spawn(readiness::report_until_ready(p.clone(), stop.clone()));
    tracing::info!(addr = %listener.local_addr()?, prefix = %config.connections.queue_prefix, queues = ?config.queues, "consumer running");
    let http = tokio::spawn({
        let (router, server, stop) = (
            http::router(p.clone(), board, admin(&config, &p)?),
            config.server.clone(),
            stop.clone(),
        );
        async move { service::serve::serve(listener, router, &server, stop).await }
    });

    let workers = monitor
        .run_with_signal({
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                tracing::info!("stopping: no new jobs; finishing held ones");
                Ok(())
            }
        })
        .await;
    stop.cancel();
    if let Some(sweeper) = sweeper {
        log_if_failed("sweeper", sweeper.await);
    }
    log_if_failed("Redis marker", marker.await);
    log_if_failed("throughput sampler", sampler.await);
    let served = http.await;
    workers?;
    served??;
    tracing::info!("consumer stopped");
    Ok(())
}

/// A background task that panicked is logged when the consumer stops (its work is redone by
/// the sweeper or the next start; the stop goes on).
fn log_if_failed(task: &str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        tracing::error!(task, error = %e, "background task failed");
    }
}
