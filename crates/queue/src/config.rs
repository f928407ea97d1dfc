//! Settings of one queue.

use std::{sync::Arc, time::Duration};

use crate::QueueError;

/// How a failed delivery is retried: at most `max_attempts` deliveries, `delay(attempt)` apart.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Deliveries after which a failing job is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the next delivery, given the attempt that just failed (1-based).
    pub delay: Arc<dyn Fn(u32) -> Duration + Send + Sync>,
}

impl RetryPolicy {
    /// A policy with a caller-computed delay per attempt.
    pub fn new(max_attempts: u32, delay: impl Fn(u32) -> Duration + Send + Sync + 'static) -> Self {
        Self {
            max_attempts,
            delay: Arc::new(delay),
        }
    }

    /// Never retry: the first failure dead-letters the job.
    pub fn none() -> Self {
        Self::new(1, |_| Duration::ZERO)
    }
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Settings of one queue: where it lives in Redis and how it hands out work.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Key prefix shared by a deployment's queues (`{prefix:name}` is the hash tag).
    pub prefix: String,
    /// The queue's name.
    pub name: String,
    /// Most jobs taken per fetch (also the bound of every step inside the fetch script).
    pub fetch_batch: usize,
    /// How long a delivery may go unrenewed before another worker gets it.
    pub lease: Duration,
    /// Deliveries after which a job is dead-lettered whatever its handler says (a safety net).
    pub max_deliveries: u32,
    /// How many recent done ids are kept.
    pub recent_cap: usize,
    /// What happens when a handler fails.
    pub retry: RetryPolicy,
}

impl QueueConfig {
    /// Defaults: batch 32, lease 30 s, 20 deliveries, 100 recent ids, retries left to the safety net.
    pub fn new(prefix: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            name: name.into(),
            fetch_batch: 32,
            lease: Duration::from_secs(30),
            max_deliveries: 20,
            recent_cap: 100,
            retry: RetryPolicy::new(20, |_| Duration::from_secs(1)),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), QueueError> {
        if self.fetch_batch == 0 || self.fetch_batch > 1000 {
            return Err(QueueError::Config(format!(
                "fetch batch must be 1..=1000, got {}",
                self.fetch_batch
            )));
        }
        if self.lease < Duration::from_millis(30) {
            return Err(QueueError::Config("lease must be at least 30 ms".into()));
        }
        if self.max_deliveries == 0 || self.retry.max_attempts == 0 {
            return Err(QueueError::Config(
                "max deliveries and max attempts must be at least 1".into(),
            ));
        }
        if self.name.is_empty()
            || self.name.contains(['{', '}'])
            || self.prefix.contains(['{', '}'])
        {
            return Err(QueueError::Config(
                "queue name must be non-empty and prefix/name free of braces".into(),
            ));
        }
        Ok(())
    }
}
