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
    /// in order.
    pub fn spawn<F, Fut>(max_batch: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending<Req, Resp, E>>();
        tokio::spawn(async move {
            let mut pending = Vec::with_capacity(max_batch);
            while rx.recv_many(&mut pending, max_batch.max(1)).await > 0 {
                let (requests, replies): (Vec<Req>, Vec<_>) = pending.drain(..).unzip();
                match run(requests).await {
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

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_callers() {
        let batcher = Batcher::spawn(4, |_: Vec<u32>| async { Err::<Vec<u32>, _>(Boom) });
        assert!(matches!(batcher.call(1).await, Err(BatchError::Failed(_))));
    }
}
