//! Fetching under a lease: the fetch loop with its wake-up wait, lease renewal while jobs are
//! held, and the release of unstarted jobs (at shutdown, or fetched too late to start).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use redis::aio::MultiplexedConnection;
use serde::de::DeserializeOwned;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::{Delivery, QueueError, backend::Shared, now_ms, scripts};

/// Deliveries a worker holds (fetched, not yet acked): job id → token. Their leases are renewed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held(Arc<Mutex<HashMap<String, u64>>>);

impl Held {
    fn insert(&self, delivery: &Delivery) {
        self.lock().insert(delivery.id.clone(), delivery.token);
    }

    /// Forgets a delivery once it is acked or released.
    pub(crate) fn remove(&self, delivery: &Delivery) {
        let mut held = self.lock();
        if held.get(&delivery.id) == Some(&delivery.token) {
            held.remove(&delivery.id);
        }
    }

    fn contains(&self, id: &str, token: u64) -> bool {
        self.lock().get(id) == Some(&token)
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        self.lock().iter().map(|(id, t)| (id.clone(), *t)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Backoff for Redis errors inside the backend: 50 ms doubling to 5 s.
pub(crate) struct ErrorBackoff(Duration);

impl ErrorBackoff {
    pub(crate) fn new() -> Self {
        Self(Duration::from_millis(50))
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// A worker's connection for blocking waits: its client id (to unblock it) and, on a cluster,
/// the node it is connected to.
struct Blocking {
    conn: MultiplexedConnection,
    id: i64,
    node: Option<crate::connection::NodeAddress>,
}

/// The fetch loop of one worker, with its dedicated connection for blocking waits.
pub(crate) struct Fetcher {
    shared: Arc<Shared>,
    held: Held,
    /// Cancelled when the worker shuts down: a fetch loop then stops waiting for work.
    closing: CancellationToken,
    /// Blocking pops would stall the shared multiplexed connection, and redis-rs times calls
    /// out after 500 ms by default: waits get their own connection with no response timeout.
    /// Its client id lets us unblock it.
    blocking: Option<Blocking>,
}

/// One fetched job as the script returns it: id, delivery count, payload.
type Fetched = (String, u64, String);

impl Fetcher {
    pub(crate) fn new(shared: Arc<Shared>, held: Held, closing: CancellationToken) -> Self {
        Self {
            shared,
            held,
            closing,
            blocking: None,
        }
    }

    /// Waits until at least one job is leased to this worker and returns the batch; returns
    /// an empty batch only when the worker is closing. Redis errors are logged and retried.
    pub(crate) async fn next_batch<T: DeserializeOwned>(mut self) -> (Self, Vec<(Delivery, T)>) {
        let mut backoff = ErrorBackoff::new();
        loop {
            if self.closing.is_cancelled() {
                return (self, Vec::new());
            }
            let asked = std::time::Instant::now();
            let wake_at = match self.fetch().await {
                Ok((jobs, _)) if !jobs.is_empty() => {
                    let took = asked.elapsed();
                    if answered_too_late(took, self.shared.config.lease) {
                        tracing::warn!(queue = %self.shared.config.name, jobs = jobs.len(), took_ms = took.as_millis() as u64, "fetch answered too late to start its jobs; giving them back");
                        let deliveries = jobs
                            .into_iter()
                            .map(|(id, token, _)| Delivery { id, token })
                            .collect();
                        release(self.shared.clone(), self.held.clone(), deliveries).await;
                        continue;
                    }
                    let batch = self.decode(jobs).await;
                    if batch.is_empty() {
                        continue;
                    }
                    return (self, batch);
                }
                Ok((_, wake_at)) => wake_at,
                Err(e) => {
                    tracing::warn!(queue = %self.shared.config.name, error = %e, "fetch failed; retrying");
                    backoff.wait().await;
                    continue;
                }
            };
            if let Err(e) = self.wait_for_work(wake_at).await {
                tracing::warn!(queue = %self.shared.config.name, error = %e, "wait for work failed; retrying");
                self.blocking = None;
                backoff.wait().await;
            }
        }
    }

    async fn fetch(&mut self) -> Result<(Vec<Fetched>, i64), QueueError> {
        let config = &self.shared.config;
        let (jobs, wake_at): (Vec<Fetched>, i64) =
            scripts::invocation(&scripts::FETCH, &self.shared.keys)
                .arg(now_ms())
                .arg(config.fetch_batch)
                .arg(config.lease.as_millis() as u64)
                .arg(config.max_deliveries)
                .invoke_async(&mut self.shared.conn.clone())
                .await?;
        Ok((jobs, wake_at))
    }

    /// Decodes a batch; a payload that does not decode can never run, so it is dead-lettered.
    async fn decode<T: DeserializeOwned>(&mut self, jobs: Vec<Fetched>) -> Vec<(Delivery, T)> {
        let mut batch = Vec::with_capacity(jobs.len());
        for (id, token, payload) in jobs {
            let delivery = Delivery { id, token };
            match serde_json::from_str::<T>(&payload) {
                Ok(args) => {
                    self.held.insert(&delivery);
                    batch.push((delivery, args));
                }
                Err(e) => {
                    let error = format!("payload does not decode: {e}");
                    tracing::error!(queue = %self.shared.config.name, job = %delivery.id, %error, "dead-lettering job");
                    self.shared.acker().dead_letter(delivery, error).await;
                }
            }
        }
        batch
    }

    /// Blocks on the signal list until a push wakes us, the next job is due, or a third of a
    /// lease has passed (so expired leases are reclaimed in time).
    async fn wait_for_work(&mut self, wake_at: i64) -> Result<(), QueueError> {
        let cap = self.shared.config.lease / 3;
        let (timeout, due) = match u64::try_from(wake_at) {
            Ok(at) => {
                let until = Duration::from_millis(at.saturating_sub(now_ms()));
                (until.min(cap), until < cap)
            }
            Err(_) => (cap, false),
        };
        if timeout.is_zero() {
            return Ok(());
        }
        if self.blocking.is_none() {
            // On a cluster, to the node owning the queue's slot now; a MOVED (the slot moved)
            // or a failover ends this connection, and the next wait resolves the owner again.
            let (mut conn, node) = self
                .shared
                .client
                .blocking_for(&mut self.shared.conn.clone(), self.shared.keys.wakeups())
                .await?;
            let id: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut conn)
                .await?;
            self.blocking = Some(Blocking { conn, id, node });
        }
        let Some(Blocking { conn, id, node }) = self.blocking.as_mut() else {
            return Ok(());
        };
        let (client_id, node) = (*id, node.clone());
        // BLPOP takes seconds; 0 would mean "forever". Redis checks blocking timeouts only on
        // its cron (every ~100 ms), so a due job is woken for by a local timer (below).
        let secs = (timeout + Duration::from_millis(100)).as_secs_f64();
        let mut blpop = redis::cmd("BLPOP");
        blpop
            .arg(self.shared.keys.wakeups())
            .arg(format!("{secs:.3}"));
        enum Woken {
            Popped(redis::RedisResult<Option<(String, String)>>),
            Due,
            Abandon,
        }
        let outcome = {
            let pop = blpop.query_async::<Option<(String, String)>>(conn);
            tokio::pin!(pop);
            let woken = tokio::select! {
                res = &mut pop => Woken::Popped(res),
                _ = tokio::time::sleep(timeout), if due => Woken::Due,
                _ = tokio::time::sleep(timeout + Duration::from_secs(5)) => Woken::Abandon,
                _ = self.closing.cancelled() => Woken::Abandon,
            };
            match woken {
                Woken::Popped(res) => res.map(|_| true),
                Woken::Due => {
                    // Release our blocked connection; the pop then returns at once.
                    let _ = self
                        .shared
                        .conn
                        .clone()
                        .unblock(node.as_ref(), client_id)
                        .await;
                    match tokio::time::timeout(Duration::from_secs(1), &mut pop).await {
                        Ok(res) => res.map(|_| true),
                        Err(_) => Ok(false),
                    }
                }
                // The pop may still be pending on the server (or the connection died silently):
                // drop the connection with it.
                Woken::Abandon => Ok(false),
            }
        };
        match outcome {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.blocking = None;
                Ok(())
            }
            Err(e) => {
                self.blocking = None;
                Err(e.into())
            }
        }
    }
}

/// Whether a fetch whose answer took `took` came too late to start its jobs. Their leases run
/// from when it was asked (a Redis that stalled meanwhile answers with leases that are nearly
/// or already spent), and the renewer comes by only every third of a lease: a job started with
/// less than half its lease left could lose it to a new delivery before it is renewed, and run
/// beside it. Given back, the jobs are fetched again at once with a lease of their own.
fn answered_too_late(took: Duration, lease: Duration) -> bool {
    took >= lease / 2
}

/// Renews the leases of every held delivery each third of a lease, in one script call per
/// 500 deliveries, from a task of its own so busy handlers cannot starve it.
pub(crate) fn spawn_renewer(shared: Arc<Shared>, held: Held) -> AbortHandle {
    let every = shared.config.lease / 3;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let deliveries = held.snapshot();
            for chunk in deliveries.chunks(500) {
                if let Err(e) = renew(&shared, &held, chunk).await {
                    tracing::warn!(queue = %shared.config.name, error = %e, "lease renewal failed");
                }
            }
        }
    })
    .abort_handle()
}

async fn renew(shared: &Shared, held: &Held, chunk: &[(String, u64)]) -> Result<(), QueueError> {
    let expiry = now_ms() + shared.config.lease.as_millis() as u64;
    let mut inv = scripts::invocation(&scripts::RENEW, &shared.keys);
    inv.arg(expiry);
    for (id, token) in chunk {
        inv.arg(id).arg(token);
    }
    let renewed: Vec<u8> = inv.invoke_async(&mut shared.conn.clone()).await?;
    for ((id, token), ok) in chunk.iter().zip(renewed) {
        // Not renewed because it was acked since the snapshot: not a loss.
        if ok == 0 && held.contains(id, *token) {
            // Someone else owns this job now; our eventual ack will be refused.
            tracing::warn!(queue = %shared.config.name, job = %id, token, "lease lost");
            held.remove(&Delivery {
                id: id.clone(),
                token: *token,
            });
        }
    }
    Ok(())
}

/// Puts unstarted deliveries back at the front of the ready list (not counted as attempts).
pub(crate) async fn release(shared: Arc<Shared>, held: Held, deliveries: Vec<Delivery>) {
    let mut backoff = ErrorBackoff::new();
    for attempt in 1..=5 {
        let mut inv = scripts::invocation(&scripts::RELEASE, &shared.keys);
        for d in &deliveries {
            inv.arg(&d.id).arg(d.token);
        }
        match inv.invoke_async::<u64>(&mut shared.conn.clone()).await {
            Ok(released) => {
                tracing::debug!(queue = %shared.config.name, released, "released unstarted jobs");
                break;
            }
            Err(e) if attempt < 5 => {
                tracing::warn!(queue = %shared.config.name, error = %e, "release failed; retrying");
                backoff.wait().await;
            }
            Err(e) => {
                // Their leases will expire and they will be delivered again then.
                tracing::warn!(queue = %shared.config.name, error = %e, "release failed; leases will expire");
            }
        }
    }
    for d in &deliveries {
        held.remove(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Job, Queue, QueueConfig, RedisSettings};

    #[test]
    fn a_fetch_answered_after_half_its_lease_is_too_late() {
        let lease = Duration::from_millis(3_000);
        assert!(!answered_too_late(Duration::ZERO, lease));
        assert!(!answered_too_late(Duration::from_millis(1_499), lease));
        assert!(answered_too_late(Duration::from_millis(1_500), lease));
        assert!(answered_too_late(Duration::from_millis(4_000), lease));
    }

    // A Redis that stalls while a fetch is on its way answers it with a lease already spent:
    // such a job is not started (it would run beside its next delivery) but fetched again.
    #[tokio::test]
    async fn a_job_leased_by_a_fetch_that_answered_too_late_is_fetched_again() {
        let redis = testkit::PrivateRedis::start().await.unwrap();
        let mut config = QueueConfig::new(format!("qtest-late-{}", now_ms()), "late");
        config.lease = Duration::from_millis(600);
        let queue: Queue<u32> = Queue::connect(&RedisSettings::url(&redis.url()), config).unwrap();
        queue.push(Job::now("job", 7)).await.unwrap();

        let fetcher = Fetcher::new(
            queue.shared.clone(),
            Held::default(),
            CancellationToken::new(),
        );
        redis.pause();
        let fetching = tokio::spawn(fetcher.next_batch::<u32>());
        // The stall outlasts the lease the fetch asks for.
        tokio::time::sleep(Duration::from_millis(900)).await;
        redis.resume();
        let (_, batch) = tokio::time::timeout(Duration::from_secs(10), fetching)
            .await
            .expect("a batch")
            .unwrap();

        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].0.id, "job");
        let lease_ends: f64 = redis::cmd("ZSCORE")
            .arg(queue.keys().leased())
            .arg("job")
            .query_async(&mut queue.conn())
            .await
            .unwrap();
        assert!(
            lease_ends > now_ms() as f64,
            "the job it returns holds a live lease"
        );
        queue.delete_all().await.unwrap();
    }
}
