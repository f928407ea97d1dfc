//! A job to push, and a delivery handed to a worker.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::now_ms;

/// A job to push: the caller's id (a push of an id already held is a no-op), its arguments,
/// and when it is due.
#[derive(Debug, Clone)]
pub struct Job<T> {
    /// Caller-chosen id, e.g. `process:<txn id>`.
    pub id: String,
    /// The payload, stored as JSON.
    pub args: T,
    /// Due time in ms since the epoch; 0 = now.
    pub due_ms: u64,
}

impl<T> Job<T> {
    /// A job due now.
    pub fn now(id: impl Into<String>, args: T) -> Self {
        Self {
            id: id.into(),
            args,
            due_ms: 0,
        }
    }

    /// A job due after `delay` (millisecond precision).
    pub fn after(id: impl Into<String>, args: T, delay: Duration) -> Self {
        let due_ms = if delay.is_zero() {
            0
        } else {
            now_ms() + delay.as_millis() as u64
        };
        Self {
            id: id.into(),
            args,
            due_ms,
        }
    }

    /// A job due at `at` (millisecond precision; a past time means now).
    pub fn at(id: impl Into<String>, args: T, at: SystemTime) -> Self {
        let due_ms = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            id: id.into(),
            args,
            due_ms,
        }
    }
}

/// Which delivery of which job a worker holds; its `token` fences acks and lease renewals.
///
/// Available to handlers through the task's data (`task.ctx().data().get::<Delivery>()`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The job id.
    pub id: String,
    /// The delivery count at the time of this delivery: also the attempt number (1-based).
    pub token: u64,
}
