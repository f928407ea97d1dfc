//! Opportunistic batching: callers hand in one request each; a task takes whatever requests are
//! waiting (up to a limit), runs them as one batch, and answers each caller. Idle, a batch is a
//! single request and nothing waits; under load, concurrent callers share one round trip: the
//! queue's pushes share one script, the consumer's writes one Postgres statement and commit.

use std::{future::Future, sync::Arc};

use tokio::sync::{mpsc, oneshot};

type Pending<Req, Resp, E> = (Req, oneshot::Sender<Result<Resp, Arc<E>>>);

/// Why a batched call failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E: std::error::Error + 'static> {
    /// The batch it was part of failed (every caller of that batch gets the same error).
    #[error(transparent)]
    Failed(Arc<E>),
    /// The batching task is gone (shutting down).
    #[error("the batcher has stopped")]
    Stopped,
}

/// Handle to a batching task; cheap to clone.
pub struct Batcher<Req, Resp, E> {
    tx: mpsc::UnboundedSender<Pending<Req, Resp, E>>,
}

impl<Req, Resp, E> Clone for Batcher<Req, Resp, E> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<Req, Resp, E> Batcher<Req, Resp, E>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    /// Starts the task. `run` gets the requests of one batch and returns one answer per request,
    /// in order. One batch runs at a time.
    pub fn spawn<F, Fut>(max_batch: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send,
    {
        Self::spawn_concurrent(max_batch, 1, run)
    }

    /// [`Batcher::spawn`] with up to `in_flight` batches running at once: a batch starts as
    /// soon as requests wait and a slot is free, so a server that makes each batch durable
    /// (Redis with `appendfsync always`) can make several durable with one fsync.
    pub fn spawn_concurrent<F, Fut>(max_batch: usize, in_flight: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send,
    {
        use futures::{StreamExt, stream::FuturesUnordered};
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending<Req, Resp, E>>();
        let in_flight = in_flight.max(1);
        tokio::spawn(async move {
            let mut pending = Vec::with_capacity(max_batch);
            let mut running = FuturesUnordered::new();
            let mut open = true;
            loop {
                tokio::select! {
                    taken = rx.recv_many(&mut pending, max_batch.max(1)),
                        if open && running.len() < in_flight =>
                    {
                        if taken == 0 {
                            open = false;
                            continue;
                        }
                        let (requests, replies): (Vec<Req>, Vec<_>) = pending.drain(..).unzip();
                        running.push(answer(run(requests), replies));
                    }
                    Some(()) = running.next(), if !running.is_empty() => {}
                    else => break,
                }
            }
        });
        Self { tx }
    }

    /// Runs `request` in the next batch.
    pub async fn call(&self, request: Req) -> Result<Resp, BatchError<E>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((request, reply))
            .map_err(|_| BatchError::Stopped)?;
        match answer.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(BatchError::Failed(e)),
            Err(_) => Err(BatchError::Stopped),
        }
    }
}

/// Runs one batch and answers each of its callers.
async fn answer<Resp, E>(
    batch: impl Future<Output = Result<Vec<Resp>, E>>,
    replies: Vec<oneshot::Sender<Result<Resp, Arc<E>>>>,
) {
    match batch.await {
        Ok(answers) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_each_gets_its_answer() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::spawn(8, move |reqs: Vec<u32>| {
            seen.lock().unwrap().push(reqs.len());
            async move { Ok::<_, Boom>(reqs.into_iter().map(|r| r * 10).collect()) }
        });
        let answers = futures_join(&batcher, 20).await;
        assert_eq!(answers, (0..20).map(|r| r * 10).collect::<Vec<_>>());
        let sizes = sizes.lock().unwrap();
        assert!(sizes.iter().all(|s| *s <= 8));
        assert_eq!(sizes.iter().sum::<usize>(), 20);
    }

    async fn futures_join(b: &Batcher<u32, u32, Boom>, n: u32) -> Vec<u32> {
        let mut handles = Vec::new();
        for i in 0..n {
            let b = b.clone();
            handles.push(tokio::spawn(async move { b.call(i).await.unwrap() }));
        }
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn up_to_in_flight_batches_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        // Each batch waits for a second one: with one batch at a time this never ends.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, m) = (running.clone(), most.clone());
        let batcher = Batcher::spawn_concurrent(1, 2, move |reqs: Vec<u32>| {
            let (barrier, running, most) = (barrier.clone(), r.clone(), m.clone());
            async move {
                most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
                barrier.wait().await;
                running.fetch_sub(1, SeqCst);
                Ok::<_, Boom>(reqs.into_iter().map(|r| r * 10).collect())
            }
        });
        let answers = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures_join(&batcher, 6),
        )
        .await
        .expect("two batches ran at once");
        assert_eq!(answers, (0..6).map(|r| r * 10).collect::<Vec<_>>());
        assert_eq!(most.load(SeqCst), 2, "never more than two at once");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_callers() {
        let batcher = Batcher::spawn(4, |_: Vec<u32>| async { Err::<Vec<u32>, _>(Boom) });
        assert!(matches!(batcher.call(1).await, Err(BatchError::Failed(_))));
    }
}
