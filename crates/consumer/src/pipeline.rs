//! What every handler shares: the store, the four queues, the id cache, the HTTP clients and
//! the schedules; and the one way a transaction reaches a terminal status.

use std::{sync::atomic::AtomicBool, time::Duration};

use domain::{
    QueueName, Source, Status, TransactionId,
    answer::CallError,
    delivery::Trigger,
    jobs::{NotifyJob, UpdateJob},
    schedule::{self, Schedules},
};
use id_cache::IdCache;
use jobs::Queues;
use outbound::{
    notifier::Notifier,
    thirdparty::{ApiKey, ThirdParty},
};
use queue::batch::Batcher;
use queue::{QueueConfig, RetryPolicy};
use store::{
    Delivered, NewRow, OwedNotification, StatusChange, Store, StoreError, Submitted, TransactionRow,
};

use crate::Config;

/// A handler's failure that the queue should retry on its infrastructure schedule.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The handlers' shared context.
pub struct Pipeline {
    /// Postgres.
    pub store: Store,
    /// The four queues.
    pub queues: Queues,
    /// The producer's id cache, refreshed on every status change.
    pub cache: IdCache,
    /// The shared Redis connection.
    pub redis: queue::RedisConnection,
    /// The Redis client behind it (the board opens its queue handles with it).
    pub redis_client: queue::RedisClient,
    /// The third party.
    pub thirdparty: ThirdParty,
    /// The client apps' endpoints.
    pub notifier: Notifier,
    /// Where each client app's notifications go.
    pub destinations: crate::destinations::Destinations,
    /// Every delay.
    pub schedules: Schedules,
    /// How long a client app may fail every delivery before it is disabled.
    pub disable_after: std::time::Duration,
    /// The hot writes, batched across concurrent handlers.
    pub writes: Writes,
    /// Set when Redis lost data: the sweeper then sweeps everything due, not just the overdue.
    pub full_sweep_owed: AtomicBool,
}

/// Postgres connections the batchers of [`Writes`] keep, one each (see [`Store::held`]).
pub const KEPT_CONNECTIONS: u32 = 5;

/// The writes every transaction makes, each behind a batcher: under load, concurrent handlers
/// share one statement and one commit (Postgres was half the CPU per transaction, measured).
pub struct Writes {
    /// Insert a pending row (the `create` step); true if it was new.
    pub inserts: Batcher<NewRow, bool, StoreError>,
    /// Record a submission; true if it was not yet recorded.
    pub submissions: Batcher<Submitted, bool, StoreError>,
    /// Apply a terminal status; the notification it owes if it changed anything.
    pub changes: Batcher<StatusChange, Option<OwedNotification>, StoreError>,
    /// Record a delivered notification; when its status change was recorded, if this
    /// delivered it.
    pub deliveries: Batcher<Delivered, Option<chrono::DateTime<chrono::Utc>>, StoreError>,
    /// Read a transaction (each poll does).
    pub reads: Batcher<TransactionId, Option<TransactionRow>, StoreError>,
}

/// Rows per batched statement.
const MAX_BATCH: usize = 100;

/// How long a batch waits for more rows while its batcher is busy (see
/// [`Batcher::spawn_gathering`]). Much of Postgres's work per statement is the same for one row
/// or fifty (the commit's flush, starting the executor, checking the constraints); with this
/// wait, Postgres spent a fifth less CPU per transaction in txn-bench, for a millisecond or two
/// more per write under load. A longer wait held handler slots long enough to cost throughput.
const GATHER: Duration = Duration::from_millis(1);

/// A batcher running `many` on the store (one statement, one commit per batch), on a
/// connection of its own: it sends one batch at a time.
fn batched<Req, Resp, F, Fut>(store: &Store, many: F) -> Batcher<Req, Resp, StoreError>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Store, Vec<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<Resp>, StoreError>> + Send,
{
    let store = store.held();
    Batcher::spawn_gathering(MAX_BATCH, GATHER, move |rows| many(store.clone(), rows))
}

impl Writes {
    fn spawn(store: &Store) -> Self {
        Self {
            inserts: batched(store, |s, rows: Vec<NewRow>| async move {
                s.insert_pending_many(&rows).await
            }),
            submissions: batched(store, |s, rows: Vec<Submitted>| async move {
                s.mark_submitted_many(&rows).await
            }),
            changes: batched(store, |s, rows: Vec<StatusChange>| async move {
                s.apply_status_many(&rows).await
            }),
            deliveries: batched(store, |s, rows: Vec<Delivered>| async move {
                s.notification_delivered_many(&rows).await
            }),
            reads: batched(store, |s, ids: Vec<TransactionId>| async move {
                s.get_many(&ids).await
            }),
        }
    }
}

/// A queue's settings in this consumer: its delivery settings and retry policy.
fn queue_config(config: &Config, name: QueueName) -> QueueConfig {
    let mut q = QueueConfig::new(config.connections.queue_prefix.clone(), name.as_str());
    q.fetch_batch = config.fetch_batch.min(config.concurrency(name)).max(1);
    q.lease = config.lease;
    q.max_deliveries = config.max_deliveries;
    // Handlers schedule their own retries; anything else (Postgres down, a bug) is retried on
    // the infrastructure schedule until the safety net.
    q.retry = RetryPolicy::new(config.max_deliveries, schedule::infrastructure_retry);
    q
}

impl Pipeline {
    /// Builds the context; connections are made lazily.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let connections = &config.connections;
        let client = queue::RedisClient::new(&id_cache::redis_settings(connections))?;
        let redis = client.shared(queue::BACKGROUND_TIMEOUT)?;
        let timeout = config.http_timeout;
        let http = outbound::http_client::client(timeout, config.https_ca_file.as_deref())?;
        let api_key = ApiKey::from_settings(
            config.thirdparty_api_key.as_ref(),
            config.thirdparty_auth_header.as_deref(),
        );
        if let Some(key) = &api_key {
            key.check().map_err(anyhow::Error::msg)?;
        }
        let store = Store::connect_lazy(
            connections.database_url.as_str(),
            config.database_max_connections,
        )?;
        let routes_store = store.clone();
        Ok(Self {
            writes: Writes::spawn(&store),
            store,
            queues: Queues::open(&client, &redis, |name| queue_config(config, name))?,
            cache: IdCache::new(&connections.queue_prefix, config.idempotency),
            redis,
            redis_client: client,
            thirdparty: ThirdParty::new(&config.thirdparty_url, http.clone(), api_key),
            notifier: Notifier::new(http),
            destinations: crate::destinations::Destinations::new(
                routes_store,
                &config.client_url,
                &config.client_webhook_secret,
            ),
            schedules: config.schedules.clone(),
            disable_after: config.disable_after,
            full_sweep_owed: AtomicBool::new(false),
        })
    }

    /// After a failed delivery attempt: disables the client app once it has failed every
    /// attempt for `DISABLE_AFTER_MS` (a log at `warn` and `client_apps_auto_disabled_total`).
    pub async fn after_failed_delivery(
        &self,
        failing: Option<store::Failing>,
    ) -> Result<(), store::StoreError> {
        let Some((failing, since)) = failing.and_then(|f| Some((f, f.since?))) else {
            return Ok(());
        };
        let now = chrono::Utc::now();
        if failing.status != domain::ClientStatus::Active
            || !domain::client_app::should_disable(since, now, self.disable_after)
        {
            return Ok(());
        }
        if !self
            .store
            .disable_failing(failing.client_app, since)
            .await?
        {
            return Ok(()); // Enabled, or healthy again, since: the decision is stale.
        }
        tracing::warn!(client_app = %failing.client_app, failing_since = %since, "client app disabled: every delivery has failed for DISABLE_AFTER_MS; its notifications wait until it is enabled and recovered");
        metrics::counter!("client_apps_auto_disabled_total").increment(1);
        Ok(())
    }

    /// Records that a peer refused our credentials: an error log and
    /// `outbound_auth_failures_total{target}`. Never a reason to fail a transaction.
    pub fn auth_failed(&self, target: &'static str, id: TransactionId, error: &CallError) {
        tracing::error!(txn_id = %id, target_service = target, error = %error, "credentials refused; will retry");
        metrics::counter!("outbound_auth_failures_total", "target" => target).increment(1);
    }

    /// Moves `id` to terminal `status` (history and notification in the same statement), then
    /// queues the notification and refreshes the id cache. A duplicate or stale report changes
    /// nothing (false). If the push fails, the notification row is the outbox: the sweeper
    /// re-pushes it.
    pub async fn finish(
        &self,
        id: TransactionId,
        status: Status,
        source: Source,
    ) -> Result<bool, HandlerError> {
        let change = StatusChange { id, status, source };
        let Some(owed) = self.writes.changes.call(change).await? else {
            return Ok(false);
        };
        tracing::info!(txn_id = %id, %status, %source, "status changed");
        metrics::counter!("transactions_finished_total", "status" => status.as_str(), "source" => source.as_str()).increment(1);
        // A webhook's status is already in the cache: the producer compare-and-set it there
        // before queueing this apply, and only the same status can have been applied here.
        if source != Source::Webhook
            && let Err(e) = self
                .cache
                .refresh(&mut self.redis.clone(), &id, status)
                .await
        {
            tracing::warn!(txn_id = %id, error = %e, "id cache not refreshed");
        }
        let job = NotifyJob {
            delivery_id: owed.delivery_id,
            id,
            status,
            trigger: Trigger::Scheduled,
            client_app: Some(owed.client_app),
            trace: service::trace::traceparent(),
        };
        self.queues.push(job).await?;
        Ok(true)
    }

    /// Schedules poll `n` of `id`, after `not_found` polls answered 404 in a row.
    pub async fn push_poll(
        &self,
        id: TransactionId,
        n: i32,
        not_found: u32,
        delay: Duration,
    ) -> Result<(), HandlerError> {
        let job = UpdateJob::Poll {
            id,
            n,
            not_found,
            trace: service::trace::traceparent(),
        };
        self.queues.push_after(job, delay).await?;
        Ok(())
    }
}
