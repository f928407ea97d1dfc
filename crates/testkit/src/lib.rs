//! What the tests and the bench start for themselves, each in a temporary directory of its
//! own and removed on drop: free ports, a private `redis-server` (optionally durable or
//! TLS-only), a Redis Cluster, a private Postgres server; and [`eventually`], the one way a
//! test waits for a condition.
//!
//! It depends on none of the project's crates, so every crate's tests can use it.

mod cluster;
mod eventually;
mod ports;
mod postgres;
mod process;
mod redis;

pub use cluster::{ClusterSecurity, RedisCluster};
pub use eventually::eventually;
pub use ports::{free_port, free_port_with_bus};
pub use postgres::PrivatePostgres;
pub use process::{run, temp_dir};
pub use redis::{PrivateRedis, RedisOptions, TlsFiles};

/// The Redis the tests share (each under a prefix of its own): `REDIS_URL`, or the local one.
pub fn shared_redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}
