//! Waiting for a condition with a deadline, never for a fixed time.

use std::{future::Future, time::Duration};

/// How often [`eventually`] asks again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it holds; panics naming `what` once `deadline` has passed.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
