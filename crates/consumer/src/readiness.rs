//! Whether the consumer's dependencies answer, and why not: the one check behind `/readyz`
//! and the report at start-up.

use std::fmt;

use service::misconfiguration::{Dependency, Misconfiguration, diagnose, report_wait, text};
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

/// A dependency that did not answer.
#[derive(Debug)]
pub struct NotReady {
    /// Which one.
    pub dependency: Dependency,
    /// Its error, sources included.
    pub error: String,
    /// What to change, when retrying will not fix it.
    pub misconfigured: Option<Misconfiguration>,
}

impl NotReady {
    fn of(dependency: Dependency, error: &(dyn std::error::Error + 'static)) -> Self {
        let error = text(error);
        let misconfigured = diagnose(dependency, &error);
        Self {
            dependency,
            error,
            misconfigured,
        }
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.dependency.as_str();
        match &self.misconfigured {
            Some(wrong) => write!(f, "{name} misconfigured: {wrong} ({})", self.error),
            None => write!(f, "{name} unavailable: {}", self.error),
        }
    }
}

/// Every queue's Redis node (on a cluster each queue's own node must answer), then Postgres.
pub async fn check(p: &Pipeline) -> Result<(), NotReady> {
    let q = &p.queues;
    let redis = [
        q.create.reachable().await,
        q.process.reachable().await,
        q.update.reachable().await,
        q.notify.reachable().await,
    ];
    if let Some(Err(e)) = redis.into_iter().find(Result::is_err) {
        return Err(NotReady::of(Dependency::Redis, &e));
    }
    p.store
        .ping()
        .await
        .map_err(|e| NotReady::of(Dependency::Postgres, &e))
}

/// Checks until both answer (or `stop`), saying at each failure what is awaited; a
/// misconfiguration at `error` with what to change. The workers retry by themselves: this
/// is what tells the operator why they get nowhere.
pub async fn report_until_ready(p: std::sync::Arc<Pipeline>, stop: CancellationToken) {
    loop {
        let pause = match check(&p).await {
            Ok(()) => {
                tracing::info!("Redis and Postgres answer");
                return;
            }
            Err(not) => {
                let waiting = format!("waiting for {}", not.dependency.as_str());
                report_wait(not.dependency, &not.error, &waiting)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => return,
        }
    }
}
