//! How the pipeline's settings reach Redis: the queue's connection settings from the shared
//! `Connections` group, and how long the id cache keeps an id.

use serde::{Deserialize, Serialize};
use service::config::Connections;

/// How the queue reaches Redis, from the pipeline's `Connections`.
pub fn redis_settings(connections: &Connections) -> queue::RedisSettings {
    queue::RedisSettings {
        url: connections.redis_url.as_str().to_string(),
        username: connections.redis_username.clone(),
        password: connections
            .redis_password
            .as_ref()
            .map(|p| p.expose().to_string()),
        ca_file: connections.redis_ca_file.clone(),
        cluster: connections.redis_cluster,
    }
}

/// How long the id cache keeps an entry. Postgres is the lasting memory of ids: until the row
/// exists the id's held `create` job bridges the time, then an entry the margin. The producer
/// writes reported outcomes and the consumer entries of new rows, so both read these settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct IdempotencyWindow {
    /// How long an outcome reported before the id's row exists is kept (ms).
    #[arg(
        long = "idempotency-ttl-ms",
        env = "IDEMPOTENCY_TTL_MS",
        default_value_t = 86_400_000
    )]
    pub ttl_ms: u64,
    /// How long an entry lives once its row exists (ms): retries soon after the row's insert
    /// are answered from Redis, later ones from Postgres.
    #[arg(long, env = "ID_CACHE_MARGIN_MS", default_value_t = 60_000)]
    pub margin_ms: u64,
}
