//! A Redis-backed job queue that apalis 1.0 workers run on.
//!
//! The queue knows nothing about what its jobs mean. It stores JSON payloads under ids chosen by
//! the caller, hands them to workers in bounded batches under a per-delivery lease with a
//! fencing token, and records the outcome: done jobs are deleted, failed ones re-scheduled with
//! the caller's delay or moved to a dead set with their last error.
//!
//! ```ignore
//! let queue: Queue<Email> = Queue::connect(&RedisSettings::url("redis://127.0.0.1"), QueueConfig::new("app", "email"))?;
//! queue.push(Job::now("email:42", email)).await?;
//! let worker = WorkerBuilder::new("email").backend(queue.clone()).concurrency(8).build(send_email);
//! ```
//!
//! Every key of one queue shares the Cluster hash tag `{prefix:name}`, so each script touches a
//! single slot. All Lua lives in `lua/`, one file per script, each naming its KEYS and ARGV.
#![deny(unsafe_code)]

mod ack;
mod backend;
pub mod batch;
mod cluster_link;
mod config;
mod connection;
mod error;
mod inspect;
mod job;
mod keys;
mod lease;
mod push;
mod queue_script;
mod scripts;
pub mod throughput;

#[cfg(test)]
mod fencing_tests;

pub use ack::{AckLayer, AckService};
pub use backend::Queue;
pub use cluster_link::ClusterLink;
pub use config::{QueueConfig, RetryPolicy};
pub use connection::{
    BACKGROUND_TIMEOUT, RedisClient, RedisConnection, RedisSettings, connection_manager,
    redis_client,
};
pub use error::QueueError;
pub use inspect::{Counts, DeadCursor, DeadJob, JobInfo, JobPage, JobState};
pub use job::{Delivery, Job};
pub use keys::Keys;
pub use push::{HookedJob, PushHook};
pub use queue_script::QueueScript;

/// Milliseconds since the Unix epoch: the queue's one clock unit.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
