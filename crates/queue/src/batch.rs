//! Opportunistic batching: callers hand in one request each; a task takes whatever requests are
//! waiting (up to a limit), runs them as one batch, and answers each caller. Idle, a batch is a
//! single request and nothing waits; under load, concurrent callers share one round trip: the
//! queue's pushes share one script, the consumer's writes one Postgres statement and commit.
//! A gathering batcher ([`Batcher::spawn_gathering`]) also waits a little for more requests,
//! but only while busy, so a lone request is never delayed.

use std::{future::Future, sync::Arc, time::Duration};

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

    /// [`Batcher::spawn`] that, while busy (its last batch had more than one request), lets a
    /// batch wait up to `gather` after its first request for more, until it is full: fewer,
    /// larger batches for at most `gather` more latency. Idle, a request runs at once.
    pub fn spawn_gathering<F, Fut>(max_batch: usize, gather: Duration, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send,
    {
        // One batch at a time: a running batch makes no progress while the task gathers.
        Self::start(max_batch, 1, Some(gather), run)
    }

    /// [`Batcher::spawn`] with up to `in_flight` batches running at once: a batch starts as
    /// soon as requests wait and a slot is free, so a server that takes long over each batch
    /// (Redis fsyncing it with `appendfsync always`) already has the next when it is done.
    pub fn spawn_concurrent<F, Fut>(max_batch: usize, in_flight: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send,
    {
        Self::start(max_batch, in_flight, None, run)
    }

    /// The batching task: up to `in_flight` batches at once, gathering as
    /// [`Batcher::spawn_gathering`] says if `gather` is set.
    fn start<F, Fut>(max_batch: usize, in_flight: usize, gather: Option<Duration>, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Resp>, E>> + Send,
    {
        use futures::{StreamExt, stream::FuturesUnordered};
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending<Req, Resp, E>>();
        let in_flight = in_flight.max(1);
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            let mut pending = Vec::with_capacity(max_batch);
            let mut running = FuturesUnordered::new();
            let mut open = true;
            let mut busy = false;
            loop {
                tokio::select! {
                    taken = rx.recv_many(&mut pending, max_batch),
                        if open && running.len() < in_flight =>
                    {
                        if taken == 0 {
                            open = false;
                            continue;
                        }
                        if let Some(gather) = gather.filter(|_| busy) {
                            open = gather_more(&mut rx, &mut pending, max_batch, gather).await;
                        }
                        busy = pending.len() > 1;
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

/// Adds to `pending` what arrives within `gather`, until it holds `max_batch`; false if the
/// channel closed meanwhile.
async fn gather_more<T>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    pending: &mut Vec<T>,
    max_batch: usize,
    gather: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + gather;
    while pending.len() < max_batch {
        let room = max_batch - pending.len();
        match tokio::time::timeout_at(deadline, rx.recv_many(pending, room)).await {
            Ok(0) => return false,
            Ok(_) => {}
            Err(_elapsed) => break,
        }
    }
    true
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
        let answers = at_once(&batcher, 20).await;
        assert_eq!(answers, (0..20).map(|r| r * 10).collect::<Vec<_>>());
        let sizes = sizes.lock().unwrap();
        assert!(sizes.iter().all(|s| *s <= 8));
        assert_eq!(sizes.iter().sum::<usize>(), 20);
    }

    /// Calls `0..n` made at once (each sent before any batch runs), answered in order.
    async fn at_once(b: &Batcher<u32, u32, Boom>, n: u32) -> Vec<u32> {
        let calls = (0..n).map(|i| b.call(i));
        let answers = futures::future::join_all(calls).await;
        answers.into_iter().map(|a| a.unwrap()).collect()
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
        let answers =
            tokio::time::timeout(std::time::Duration::from_secs(10), at_once(&batcher, 6))
                .await
                .expect("two batches ran at once");
        assert_eq!(answers, (0..6).map(|r| r * 10).collect::<Vec<_>>());
        assert_eq!(most.load(SeqCst), 2, "never more than two at once");
    }

    /// A gathering batcher over `u32`s that records the size of each batch.
    fn gathering(max_batch: usize, gather: Duration) -> (Batcher<u32, u32, Boom>, Sizes) {
        let sizes = Sizes::default();
        let seen = sizes.clone();
        let batcher = Batcher::spawn_gathering(max_batch, gather, move |reqs: Vec<u32>| {
            seen.0.lock().unwrap().push(reqs.len());
            async move { Ok::<_, Boom>(reqs) }
        });
        (batcher, sizes)
    }

    #[derive(Clone, Default)]
    struct Sizes(Arc<std::sync::Mutex<Vec<usize>>>);

    impl Sizes {
        fn taken(&self) -> Vec<usize> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    // Paused time: the clock moves only when every task waits, so a wait shows as elapsed time.
    #[tokio::test(start_paused = true)]
    async fn a_gathering_batcher_waits_only_while_busy_and_only_until_full() {
        let gather = Duration::from_millis(5);
        let (batcher, sizes) = gathering(4, gather);

        // Idle: a lone call runs at once, however long it waits for company.
        let start = tokio::time::Instant::now();
        batcher.call(1).await.unwrap();
        batcher.call(2).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(sizes.taken(), [1, 1]);

        // Busy (a batch of two): the next batch waits for a call made 2 ms after its first...
        at_once(&batcher, 2).await;
        let start = tokio::time::Instant::now();
        let late = async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            batcher.call(11).await.unwrap();
        };
        tokio::join!(async { batcher.call(10).await.unwrap() }, late);
        assert_eq!(sizes.taken(), [2, 2]);
        assert_eq!(start.elapsed(), gather, "it waited out the window");

        // ...but a full one runs at once, and waits no longer than the window.
        let start = tokio::time::Instant::now();
        at_once(&batcher, 4).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        batcher.call(20).await.unwrap();
        assert_eq!(start.elapsed(), gather);
        assert_eq!(sizes.taken(), [4, 1]);

        // After a lone batch it is idle again.
        let start = tokio::time::Instant::now();
        batcher.call(30).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_callers() {
        let batcher = Batcher::spawn(4, |_: Vec<u32>| async { Err::<Vec<u32>, _>(Boom) });
        assert!(matches!(batcher.call(1).await, Err(BatchError::Failed(_))));
    }
}
