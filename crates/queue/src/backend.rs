//! `Queue`: the handle producers push through and the apalis backend workers fetch from.

use std::{
    collections::VecDeque,
    marker::PhantomData,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
};

use apalis_core::{
    backend::{Backend, BackendConfig, finalize::Ephemeral},
    task::{Task, builder::TaskBuilder, task_id::TaskId},
    worker::context::WorkerContext,
};
use futures::{FutureExt, future::BoxFuture};
use serde::de::DeserializeOwned;
use sync_wrapper::SyncWrapper;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    AckLayer, Delivery, Keys, QueueConfig, QueueError,
    ack::Acker,
    connection::{BACKGROUND_TIMEOUT, RedisClient, RedisConnection, RedisSettings},
    lease::{self, Held},
    push::{Pusher, spawn_pusher},
};

/// What every clone of a queue shares: settings, keys and the multiplexed connection.
pub(crate) struct Shared {
    pub(crate) config: QueueConfig,
    pub(crate) keys: Keys,
    pub(crate) client: RedisClient,
    pub(crate) conn: RedisConnection,
    acker: OnceLock<Acker>,
    pusher: OnceLock<Pusher>,
}

impl Shared {
    /// The acker of this queue, started on first use (only workers need it).
    pub(crate) fn acker(self: &Arc<Self>) -> &Acker {
        self.acker.get_or_init(|| Acker::spawn(self.clone()))
    }

    /// The task single pushes go through, started on first use.
    pub(crate) fn pusher(self: &Arc<Self>) -> &Pusher {
        self.pusher.get_or_init(|| spawn_pusher(self))
    }

    /// Counts jobs pushed.
    pub(crate) fn count_pushed(&self, n: u64) {
        if n > 0 {
            metrics::counter!("queue_jobs_pushed_total", "queue" => self.config.name.clone())
                .increment(n);
        }
    }
}

/// A Redis-backed job queue of `T` payloads.
///
/// Cloning is cheap; every clone shares the connection. Used as an apalis backend, each clone
/// fetches for its own worker (with its own blocking connection for wake-ups).
pub struct Queue<T> {
    pub(crate) shared: Arc<Shared>,
    fetch: FetchState<T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            fetch: FetchState::new(),
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("keys", &self.shared.keys.tag())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<T> Queue<T> {
    /// A queue on the Redis at `redis`; the connection is made lazily, so this succeeds while
    /// Redis is down.
    pub fn connect(redis: &RedisSettings, config: QueueConfig) -> Result<Self, QueueError> {
        let client = RedisClient::new(redis)?;
        let conn = client.shared(BACKGROUND_TIMEOUT)?;
        Self::with_connection(client, conn, config)
    }

    /// A queue sharing an existing connection (several queues of one process need only one).
    pub fn with_connection(
        client: RedisClient,
        conn: RedisConnection,
        config: QueueConfig,
    ) -> Result<Self, QueueError> {
        config.validate()?;
        let keys = Keys::new(&config.prefix, &config.name);
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                keys,
                client,
                conn,
                acker: OnceLock::new(),
                pusher: OnceLock::new(),
            }),
            fetch: FetchState::new(),
        })
    }

    /// The queue's Redis keys.
    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The queue's shared connection, for a caller's own commands on its keys (on a cluster,
    /// routed by key like the queue's own).
    pub fn connection(&self) -> RedisConnection {
        self.shared.conn.clone()
    }

    pub(crate) fn conn(&self) -> RedisConnection {
        self.shared.conn.clone()
    }

    /// Counts jobs pushed (a caller's hook counts its own pushes with this too).
    pub fn count_pushed(&self, n: u64) {
        self.shared.count_pushed(n);
    }
}

/// A fetch in flight: resolves to the fetcher (with its connection) and a leased batch.
type Fetching<T> = BoxFuture<'static, (lease::Fetcher, Vec<(Delivery, T)>)>;

/// Per-worker fetch state: jobs fetched but not yet handed out, the fetch in flight, the
/// deliveries held (fetched and not yet acked) and the task renewing their leases.
struct FetchState<T> {
    buffer: VecDeque<(Delivery, T)>,
    fetcher: Option<lease::Fetcher>,
    // SyncWrapper: the futures are only touched through `&mut self`, and a `Sync` queue can be
    // captured by apalis's worker factories.
    fetching: SyncWrapper<Option<Fetching<T>>>,
    releasing: SyncWrapper<Option<BoxFuture<'static, ()>>>,
    held: Held,
    closing: CancellationToken,
    renewer: Option<AbortHandle>,
    _marker: PhantomData<T>,
}

impl<T> FetchState<T> {
    fn new() -> Self {
        Self {
            buffer: VecDeque::new(),
            fetcher: None,
            fetching: SyncWrapper::new(None),
            releasing: SyncWrapper::new(None),
            held: Held::default(),
            closing: CancellationToken::new(),
            renewer: None,
            _marker: PhantomData,
        }
    }
}

impl<T> Drop for FetchState<T> {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

fn to_task<T>(delivery: Delivery, args: T) -> Task<T> {
    let attempt = delivery.token.saturating_sub(1) as usize;
    TaskBuilder::new(args)
        .task_id(TaskId::from_string(delivery.id.clone()))
        // apalis counts attempts up from the stored value when the handler starts.
        .attempt(attempt)
        .data(delivery)
        .build()
}

impl<T> Backend for Queue<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Task = Task<T>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    /// Never yields an error: Redis failures are retried inside the fetch loop, since an error
    /// here would end the worker.
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            if let Some((delivery, args)) = self.fetch.buffer.pop_front() {
                return Poll::Ready(Some(Ok(to_task(delivery, args))));
            }
            if self.fetch.renewer.is_none() {
                self.fetch.renewer = Some(lease::spawn_renewer(
                    self.shared.clone(),
                    self.fetch.held.clone(),
                ));
            }
            if self.fetch.fetching.get_mut().is_none() {
                let fetcher = self.fetch.fetcher.take().unwrap_or_else(|| {
                    lease::Fetcher::new(
                        self.shared.clone(),
                        self.fetch.held.clone(),
                        self.fetch.closing.clone(),
                    )
                });
                *self.fetch.fetching.get_mut() = Some(fetcher.next_batch::<T>().boxed());
            }
            let Some(fetching) = self.fetch.fetching.get_mut().as_mut() else {
                continue;
            };
            let (fetcher, batch) = futures::ready!(fetching.poll_unpin(cx));
            *self.fetch.fetching.get_mut() = None;
            self.fetch.fetcher = Some(fetcher);
            self.fetch.buffer.extend(batch);
        }
    }

    /// Gives fetched-but-unstarted jobs back to the ready list at once, then stops renewing.
    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if let Some(fetching) = self.fetch.fetching.get_mut().as_mut() {
            // Interrupts a wait for work; a fetch script already sent completes first, so the
            // jobs it leased are released below instead of waiting out their lease.
            self.fetch.closing.cancel();
            let (fetcher, batch) = futures::ready!(fetching.poll_unpin(cx));
            *self.fetch.fetching.get_mut() = None;
            self.fetch.fetcher = Some(fetcher);
            self.fetch.buffer.extend(batch);
        }
        if self.fetch.releasing.get_mut().is_none() && !self.fetch.buffer.is_empty() {
            let deliveries: Vec<Delivery> = self.fetch.buffer.drain(..).map(|(d, _)| d).collect();
            *self.fetch.releasing.get_mut() = Some(
                lease::release(self.shared.clone(), self.fetch.held.clone(), deliveries).boxed(),
            );
        }
        if let Some(releasing) = self.fetch.releasing.get_mut().as_mut() {
            futures::ready!(releasing.poll_unpin(cx));
            *self.fetch.releasing.get_mut() = None;
        }
        if let Some(renewer) = self.fetch.renewer.take() {
            renewer.abort();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T> BackendConfig for Queue<T> {
    type Args = T;
    type Id = String;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        &self.shared.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        AckLayer::new(self.shared.clone(), self.fetch.held.clone())
    }
}
