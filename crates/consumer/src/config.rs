//! Settings of the consumer (DESIGN §6), from the environment or flags.

use std::{net::SocketAddr, str::FromStr};

use clap::Parser;
use txn_core::{jobs::queue_name, schedule::Schedules, secret::WebhookSecrets};

/// Which queues this process works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSet(Vec<&'static str>);

impl QueueSet {
    /// All four.
    pub fn all() -> Self {
        Self(queue_name::ALL.to_vec())
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(&name)
    }
}

impl FromStr for QueueSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "all" {
            return Ok(Self::all());
        }
        let mut set = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let known = queue_name::ALL
                .iter()
                .find(|q| **q == name)
                .ok_or_else(|| format!("unknown queue {name:?} (expected all or some of create,process,update,notify)"))?;
            set.push(*known);
        }
        if set.is_empty() {
            return Err("no queue named".into());
        }
        Ok(Self(set))
    }
}

/// Settings of the consumer.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "consumer",
    about = "The worker pools of the transaction pipeline"
)]
pub struct Config {
    /// Address of the health endpoints.
    #[arg(long, env = "CONSUMER_ADDR", default_value = "0.0.0.0:3200")]
    pub addr: SocketAddr,
    /// Postgres, the record.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/transactions"
    )]
    pub database_url: String,
    /// Most Postgres connections this process opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 32)]
    pub database_max_connections: u32,
    /// Redis holding the queues and the id cache.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of every queue key of this deployment.
    #[arg(long, env = "QUEUE_PREFIX", default_value = "txn")]
    pub queue_prefix: String,
    /// Queues to run pools for: `all`, or a comma-separated subset.
    #[arg(long, env = "QUEUES", default_value = "all")]
    pub queues: QueueSet,
    /// Whether this process runs the sweeper (one instance runs at a time anyway).
    #[arg(long, env = "SWEEPER", default_value_t = true, action = clap::ArgAction::Set)]
    pub sweeper: bool,
    /// Concurrent `create` jobs.
    #[arg(long, env = "CREATE_CONCURRENCY", default_value_t = 32)]
    pub create_concurrency: usize,
    /// Concurrent `process` jobs.
    #[arg(long, env = "PROCESS_CONCURRENCY", default_value_t = 32)]
    pub process_concurrency: usize,
    /// Concurrent `update` jobs.
    #[arg(long, env = "UPDATE_CONCURRENCY", default_value_t = 32)]
    pub update_concurrency: usize,
    /// Concurrent `notify` jobs.
    #[arg(long, env = "NOTIFY_CONCURRENCY", default_value_t = 32)]
    pub notify_concurrency: usize,
    /// Most jobs fetched at once per pool.
    #[arg(long, env = "FETCH_BATCH", default_value_t = 32)]
    pub fetch_batch: usize,
    /// Lease of a delivery (ms); renewed while the handler runs.
    #[arg(long, env = "LEASE_MS", default_value_t = 30_000)]
    pub lease_ms: u64,
    /// Deliveries after which a job is dead-lettered (a safety net above the handlers' own limits).
    #[arg(long, env = "MAX_DELIVERIES", default_value_t = 20)]
    pub max_deliveries: u32,
    /// How often the sweeper looks for overdue work (ms).
    #[arg(long, env = "SWEEP_INTERVAL_MS", default_value_t = 5_000)]
    pub sweep_interval_ms: u64,
    /// How overdue work must be before the sweeper re-pushes it (ms).
    #[arg(long, env = "SWEEP_GRACE_MS", default_value_t = 30_000)]
    pub sweep_grace_ms: u64,
    /// Most rows of each kind one sweep re-pushes.
    #[arg(long, env = "SWEEP_BATCH", default_value_t = 1_000)]
    pub sweep_batch: i64,
    /// Apply migrations at start-up (under sqlx's advisory lock).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// The third party's base URL.
    #[arg(long, env = "THIRDPARTY_URL", default_value = "http://127.0.0.1:3300")]
    pub thirdparty_url: String,
    /// The client app's base URL (`/transactions/{id}/status` is appended).
    #[arg(long, env = "CLIENT_URL", default_value = "http://127.0.0.1:3400")]
    pub client_url: String,
    /// Secret(s) signing client notifications (the first signs).
    #[arg(long, env = "CLIENT_WEBHOOK_SECRET", hide_env_values = true)]
    pub client_webhook_secret: WebhookSecrets,
    /// Retries of a submission after the first attempt.
    #[arg(long, env = "PROCESS_RETRIES", default_value_t = 3)]
    pub process_retries: u32,
    /// First submission retry delay (ms), doubling, with jitter.
    #[arg(long, env = "PROCESS_BACKOFF_MS", default_value_t = 120_000)]
    pub process_backoff_ms: u64,
    /// First poll delay after submission (ms), doubling.
    #[arg(long, env = "POLL_INITIAL_MS", default_value_t = 200)]
    pub poll_initial_ms: u64,
    /// Cap of the delay between polls (ms).
    #[arg(long, env = "POLL_MAX_INTERVAL_MS", default_value_t = 60_000)]
    pub poll_max_interval_ms: u64,
    /// Polling stops this long after submission (ms).
    #[arg(long, env = "POLL_MAX_TOTAL_MS", default_value_t = 3_600_000)]
    pub poll_max_total_ms: u64,
    /// Retries of a client notification after the first attempt.
    #[arg(long, env = "NOTIFY_RETRIES", default_value_t = 8)]
    pub notify_retries: u32,
    /// First notification retry delay (ms), doubling, with jitter.
    #[arg(long, env = "NOTIFY_BACKOFF_MS", default_value_t = 1_000)]
    pub notify_backoff_ms: u64,
    /// Timeout of every call to the third party or the client (ms).
    #[arg(long, env = "HTTP_TIMEOUT_MS", default_value_t = 5_000)]
    pub http_timeout_ms: u64,
    /// How long held jobs may take to finish on shutdown (ms).
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
    /// Token protecting the queue board (`?token=` or `Authorization: Bearer`); unset = open.
    #[arg(long, env = "BOARD_TOKEN", hide_env_values = true)]
    pub board_token: Option<String>,
    /// Idempotency window of the producer's id cache (ms); the consumer refreshes entries in it.
    #[arg(long, env = "IDEMPOTENCY_TTL_MS", default_value_t = 86_400_000)]
    pub idempotency_ttl_ms: u64,
}

impl Config {
    /// The schedule settings.
    pub fn schedules(&self) -> Schedules {
        Schedules {
            process_retries: self.process_retries,
            process_backoff_ms: self.process_backoff_ms,
            poll_initial_ms: self.poll_initial_ms,
            poll_max_interval_ms: self.poll_max_interval_ms,
            poll_max_total_ms: self.poll_max_total_ms,
            notify_retries: self.notify_retries,
            notify_backoff_ms: self.notify_backoff_ms,
        }
    }

    /// Concurrency of the pool of `queue`.
    pub fn concurrency(&self, queue: &str) -> usize {
        match queue {
            queue_name::CREATE => self.create_concurrency,
            queue_name::PROCESS => self.process_concurrency,
            queue_name::UPDATE => self.update_concurrency,
            _ => self.notify_concurrency,
        }
        .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_sets_name_only_known_queues() {
        assert_eq!("all".parse::<QueueSet>().unwrap(), QueueSet::all());
        let some: QueueSet = "create, process".parse().unwrap();
        assert!(some.contains("create") && some.contains("process") && !some.contains("notify"));
        assert!("create,bogus".parse::<QueueSet>().is_err());
        assert!("".parse::<QueueSet>().is_err());
    }
}
