//! Settings groups that several binaries share. Each is written once here and flattened into a
//! binary's own settings struct (`#[command(flatten)]`), so a variable has one name, one
//! default and one meaning everywhere.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default `DATABASE_URL`: the local Postgres.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/transactions";
/// Default `REDIS_URL`: the local Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default `QUEUE_PREFIX`.
pub const DEFAULT_QUEUE_PREFIX: &str = "txn";

/// Where the record (Postgres) and the conveyor (Redis) are, and this deployment's key prefix.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct Connections {
    /// Postgres, the record.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// Redis holding the queues and the id cache.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
    /// Prefix of every queue key of this deployment (several can share one Redis).
    #[arg(long, env = "QUEUE_PREFIX", default_value = DEFAULT_QUEUE_PREFIX)]
    pub queue_prefix: String,
}

/// How long the producer's id cache remembers an id. The producer writes entries and the
/// consumer refreshes them, so both read this one setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct IdempotencyWindow {
    /// How long an id is remembered for idempotent POSTs (ms).
    #[arg(
        long = "idempotency-ttl-ms",
        env = "IDEMPOTENCY_TTL_MS",
        default_value_t = 86_400_000
    )]
    pub ttl_ms: u64,
}

/// How long a stopping service lets work in progress finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct ShutdownGrace {
    /// How long in-flight requests or held jobs may take to finish on shutdown (ms).
    #[arg(
        long = "shutdown-grace-ms",
        env = "SHUTDOWN_GRACE_MS",
        default_value_t = 30_000
    )]
    pub grace_ms: u64,
}

impl ShutdownGrace {
    /// The grace period.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }
}
