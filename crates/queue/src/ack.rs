//! Recording outcomes: the tower layer that wraps every handler call, and the acker task that
//! writes outcomes to Redis, batching successful acks into one script call.

use std::{
    any::Any,
    panic::AssertUnwindSafe,
    sync::Arc,
    task::{Context, Poll},
};

use apalis_core::{
    error::{AbortError, BoxDynError, RetryAfterError},
    task::Task,
};
use futures::{FutureExt, future::BoxFuture};
use tokio::sync::{mpsc, oneshot};
use tower::{Layer, Service};

use crate::{
    Delivery, QueueError,
    backend::Shared,
    lease::{ErrorBackoff, Held},
    now_ms, scripts,
};

/// What becomes of a delivery once its handler returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Success: delete the job.
    Done,
    /// Failure to retry at this time (ms since epoch).
    Retry { at_ms: u64, error: String },
    /// Failure with no retry left: move to the dead set.
    Dead { error: String },
}

/// Decides the outcome of a failed attempt: a handler's `RetryAfterError` chooses its own delay
/// (bounded by the safety net of `max_deliveries`), `AbortError` dead-letters at once, anything
/// else follows the queue's retry policy.
pub(crate) fn failure_outcome(shared: &Shared, attempt: u64, error: &BoxDynError) -> Outcome {
    let config = &shared.config;
    let message = error.to_string();
    if error.downcast_ref::<AbortError>().is_some() {
        return Outcome::Dead { error: message };
    }
    if let Some(retry) = error.downcast_ref::<RetryAfterError>() {
        if attempt >= u64::from(config.max_deliveries) {
            return Outcome::Dead { error: message };
        }
        return Outcome::Retry {
            at_ms: now_ms() + retry.get_duration().as_millis() as u64,
            error: message,
        };
    }
    if attempt >= u64::from(config.retry.max_attempts) {
        return Outcome::Dead { error: message };
    }
    let delay = (config.retry.delay)(attempt.min(u64::from(u32::MAX)) as u32);
    Outcome::Retry {
        at_ms: now_ms() + delay.as_millis() as u64,
        error: message,
    }
}

struct AckRequest {
    delivery: Delivery,
    outcome: Outcome,
    reply: oneshot::Sender<bool>,
}

/// Handle to the task that writes outcomes to Redis.
pub(crate) struct Acker {
    tx: mpsc::UnboundedSender<AckRequest>,
}

impl Acker {
    pub(crate) fn spawn(shared: Arc<Shared>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        // The task holds only a weak reference, so dropping the last queue handle ends it.
        tokio::spawn(run_acker(Arc::downgrade(&shared), rx));
        Self { tx }
    }

    /// Records `outcome`; returns false if the delivery was stale (its lease had passed on).
    pub(crate) async fn ack(&self, delivery: Delivery, outcome: Outcome) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(AckRequest {
                delivery,
                outcome,
                reply,
            })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Dead-letters a delivery that can never run.
    pub(crate) async fn dead_letter(&self, delivery: Delivery, error: String) {
        self.ack(delivery, Outcome::Dead { error }).await;
    }
}

async fn run_acker(shared: std::sync::Weak<Shared>, mut rx: mpsc::UnboundedReceiver<AckRequest>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let (done, failed): (Vec<_>, Vec<_>) =
            batch.drain(..).partition(|r| r.outcome == Outcome::Done);
        if !done.is_empty() {
            let accepted = retry_redis(&shared, || ack_done(&shared, &done)).await;
            let accepted_count = accepted.iter().filter(|ok| **ok).count() as u64;
            metrics::counter!("queue_jobs_done_total", "queue" => shared.config.name.clone())
                .increment(accepted_count);
            for (request, ok) in done.into_iter().zip(accepted) {
                if !ok {
                    metrics::counter!("queue_acks_refused_total", "queue" => shared.config.name.clone()).increment(1);
                    tracing::warn!(queue = %shared.config.name, job = %request.delivery.id, token = request.delivery.token, "stale ack refused");
                }
                let _ = request.reply.send(ok);
            }
        }
        for request in failed {
            let ok = retry_redis(&shared, || ack_failed(&shared, &request)).await;
            let outcome = match request.outcome {
                Outcome::Retry { .. } => "queue_jobs_retried_total",
                _ => "queue_jobs_dead_total",
            };
            if ok {
                metrics::counter!(outcome, "queue" => shared.config.name.clone()).increment(1);
            } else {
                metrics::counter!("queue_acks_refused_total", "queue" => shared.config.name.clone()).increment(1);
                tracing::warn!(queue = %shared.config.name, job = %request.delivery.id, "stale failure ack refused");
            }
            let _ = request.reply.send(ok);
        }
    }
}

/// Retries a Redis call until it succeeds: an outcome must not be lost to a Redis blip.
async fn retry_redis<T, F, Fut>(shared: &Shared, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let mut backoff = ErrorBackoff::new();
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(queue = %shared.config.name, error = %e, "ack failed; retrying");
                backoff.wait().await;
            }
        }
    }
}

async fn ack_done(shared: &Shared, requests: &[AckRequest]) -> Result<Vec<bool>, QueueError> {
    let mut accepted = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(1000) {
        let mut inv = scripts::invocation(&scripts::ACK_DONE, &shared.keys);
        inv.arg(shared.config.recent_cap);
        for r in chunk {
            inv.arg(&r.delivery.id).arg(r.delivery.token);
        }
        let flags: Vec<u8> = inv.invoke_async(&mut shared.conn.clone()).await?;
        accepted.extend(flags.into_iter().map(|f| f == 1));
    }
    Ok(accepted)
}

async fn ack_failed(shared: &Shared, request: &AckRequest) -> Result<bool, QueueError> {
    let (retry_at, error): (i64, &str) = match &request.outcome {
        Outcome::Retry { at_ms, error } => (*at_ms as i64, error),
        Outcome::Dead { error } => (-1, error),
        Outcome::Done => return Ok(true),
    };
    let result: u8 = scripts::invocation(&scripts::ACK_FAILED, &shared.keys)
        .arg(&request.delivery.id)
        .arg(request.delivery.token)
        .arg(now_ms())
        .arg(retry_at)
        .arg(error)
        .invoke_async(&mut shared.conn.clone())
        .await?;
    Ok(result != 0)
}

/// The tower layer a `Queue` puts around every handler: it records each delivery's outcome
/// (catching panics as failures) before the worker slot is freed.
#[derive(Clone)]
pub struct AckLayer {
    shared: Arc<Shared>,
    held: Held,
}

impl AckLayer {
    pub(crate) fn new(shared: Arc<Shared>, held: Held) -> Self {
        Self { shared, held }
    }
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            shared: self.shared.clone(),
            held: self.held.clone(),
        }
    }
}

/// See [`AckLayer`].
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    shared: Arc<Shared>,
    held: Held,
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("handler panicked: {text}")
}

impl<S, T> Service<Task<T>> for AckService<S>
where
    S: Service<Task<T>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxDynError>,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<T>) -> Self::Future {
        let delivery = task.ctx().data().get::<Delivery>().cloned();
        // Every log line of the handler carries the job's id, queue and attempt.
        let span = match &delivery {
            Some(d) => {
                tracing::info_span!("job", queue = %self.shared.config.name, job = %d.id, attempt = d.token)
            }
            None => tracing::info_span!("job", queue = %self.shared.config.name),
        };
        let fut = tracing::Instrument::instrument(self.inner.call(task), span);
        let shared = self.shared.clone();
        let held = self.held.clone();
        async move {
            let queue = shared.config.name.clone();
            let running = metrics::gauge!("queue_jobs_running", "queue" => queue.clone());
            running.increment(1.0);
            let started = std::time::Instant::now();
            let result = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(result) => result.map_err(Into::into),
                Err(panic) => Err(BoxDynError::from(panic_message(panic.as_ref()))),
            };
            running.decrement(1.0);
            metrics::histogram!("queue_handler_duration_seconds", "queue" => queue)
                .record(started.elapsed().as_secs_f64());
            // A task without a delivery did not come from this queue: nothing to record.
            let Some(delivery) = delivery else {
                return result;
            };
            let outcome = match &result {
                Ok(_) => Outcome::Done,
                Err(e) => failure_outcome(&shared, delivery.token, e),
            };
            shared.acker().ack(delivery.clone(), outcome).await;
            held.remove(&delivery);
            result
        }
        .boxed()
    }
}
