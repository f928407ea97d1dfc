//! What every handler shares: the store, the four queues, the id cache, the HTTP clients and
//! the schedules; and the one way a transaction reaches a terminal status.

use std::time::Duration;

use queue::{Job, Queue, QueueConfig, RetryPolicy};
use redis::aio::ConnectionManager;
use txn_core::{
    Status, TransactionId,
    id_cache::IdCache,
    jobs::{CreateJob, NotifyJob, ProcessJob, UpdateJob, queue_name},
    notifier::Notifier,
    schedule::{self, Schedules},
    store::{Source, Store},
    thirdparty::ThirdParty,
};

use crate::Config;

/// A handler's failure that the queue should retry on its infrastructure schedule.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The handlers' shared context.
pub struct Pipeline {
    /// Postgres.
    pub store: Store,
    /// Queue of `create` jobs.
    pub create: Queue<CreateJob>,
    /// Queue of `process` jobs.
    pub process: Queue<ProcessJob>,
    /// Queue of `update` jobs.
    pub update: Queue<UpdateJob>,
    /// Queue of `notify` jobs.
    pub notify: Queue<NotifyJob>,
    /// The producer's id cache, refreshed on every status change.
    pub cache: IdCache,
    /// The shared Redis connection.
    pub redis: ConnectionManager,
    /// The third party.
    pub thirdparty: ThirdParty,
    /// The client app.
    pub notifier: Notifier,
    /// Every delay.
    pub schedules: Schedules,
}

impl Pipeline {
    /// Builds the context; connections are made lazily.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let redis = ConnectionManager::new_lazy_with_config(client.clone(), queue_connection())?;
        let queue_config = |name: &str| {
            let mut q = QueueConfig::new(config.queue_prefix.clone(), name);
            q.fetch_batch = config.fetch_batch.min(config.concurrency(name)).max(1);
            q.lease = Duration::from_millis(config.lease_ms);
            q.max_deliveries = config.max_deliveries;
            // Handlers schedule their own retries; anything else (Postgres down, a bug) is
            // retried on the infrastructure schedule until the safety net.
            q.retry = RetryPolicy::new(config.max_deliveries, schedule::infrastructure_retry);
            q
        };
        let timeout = Duration::from_millis(config.http_timeout_ms);
        Ok(Self {
            store: Store::connect_lazy(&config.database_url, config.database_max_connections)?,
            create: Queue::with_connection(
                client.clone(),
                redis.clone(),
                queue_config(queue_name::CREATE),
            )?,
            process: Queue::with_connection(
                client.clone(),
                redis.clone(),
                queue_config(queue_name::PROCESS),
            )?,
            update: Queue::with_connection(
                client.clone(),
                redis.clone(),
                queue_config(queue_name::UPDATE),
            )?,
            notify: Queue::with_connection(
                client,
                redis.clone(),
                queue_config(queue_name::NOTIFY),
            )?,
            cache: IdCache::new(&config.queue_prefix, config.idempotency_ttl_ms),
            redis,
            thirdparty: ThirdParty::new(&config.thirdparty_url, timeout)?,
            notifier: Notifier::new(&config.client_url, &config.client_webhook_secret, timeout)?,
            schedules: config.schedules(),
        })
    }

    /// Moves `id` to terminal `status` (history and notification in the same statement), then
    /// queues the notification and refreshes the id cache. A duplicate or stale report changes
    /// nothing. If the push fails, the notification row is the outbox: the sweeper re-pushes it.
    pub async fn finish(
        &self,
        id: TransactionId,
        status: Status,
        source: Source,
    ) -> Result<(), HandlerError> {
        let Some(delivery_id) = self.store.apply_status(id, status, source).await? else {
            return Ok(());
        };
        tracing::info!(txn_id = %id, %status, ?source, "status changed");
        metrics::counter!("transactions_finished_total", "status" => status.as_str(), "source" => format!("{source:?}").to_lowercase()).increment(1);
        if let Err(e) = self
            .cache
            .refresh(&mut self.redis.clone(), &id, status)
            .await
        {
            tracing::warn!(txn_id = %id, error = %e, "id cache not refreshed");
        }
        let job = NotifyJob { delivery_id };
        self.notify.push(Job::now(job.job_id(), job)).await?;
        Ok(())
    }

    /// Schedules poll `n` of `id`.
    pub async fn push_poll(
        &self,
        id: TransactionId,
        n: i32,
        delay: Duration,
    ) -> Result<(), HandlerError> {
        let job = UpdateJob::Poll { id, n };
        self.update
            .push(Job::after(job.job_id(), job, delay))
            .await?;
        Ok(())
    }
}

/// Timeouts of the consumer's shared connection.
fn queue_connection() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(2)))
}
