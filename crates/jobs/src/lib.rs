//! The pipeline's four queues, typed: which queue each kind of job goes to ([`Queued`]), the
//! one way a job is made from its payload ([`now`], [`after`]), and the one way any job is
//! pushed ([`Queues::push`]).

use std::time::Duration;

pub use domain::jobs::JobKind;
use domain::{
    QueueName,
    jobs::{CreateJob, NotifyJob, ProcessJob, UpdateJob},
};
use queue::{Job, Queue, QueueConfig, QueueError, RedisClient, RedisConnection};

/// `kind` as a job due now, under its deterministic id.
pub fn now<K: JobKind>(kind: K) -> Job<K> {
    Job::now(kind.job_id(), kind)
}

/// `kind` as a job due after `delay`, under its deterministic id.
pub fn after<K: JobKind>(kind: K, delay: Duration) -> Job<K> {
    Job::after(kind.job_id(), kind, delay)
}

/// The four queues, one per kind of job.
#[derive(Clone)]
pub struct Queues {
    /// `create` jobs: insert the row.
    pub create: Queue<CreateJob>,
    /// `process` jobs: submit to the third party.
    pub process: Queue<ProcessJob>,
    /// `update` jobs: poll, or apply a reported status.
    pub update: Queue<UpdateJob>,
    /// `notify` jobs: tell the client app.
    pub notify: Queue<NotifyJob>,
}

impl Queues {
    /// Opens the four on one client and connection, each with the settings `config` gives
    /// for its name.
    pub fn open(
        client: &RedisClient,
        redis: &RedisConnection,
        config: impl Fn(QueueName) -> QueueConfig,
    ) -> Result<Self, QueueError> {
        Ok(Self {
            create: open(client, redis, &config)?,
            process: open(client, redis, &config)?,
            update: open(client, redis, &config)?,
            notify: open(client, redis, &config)?,
        })
    }

    /// The queue of jobs of kind `K`.
    pub fn of<K: Queued>(&self) -> &Queue<K> {
        K::queue(self)
    }

    /// Pushes `kind` due now; false if a job with its id is already held (nothing changes).
    pub async fn push<K: Queued>(&self, kind: K) -> Result<bool, QueueError> {
        self.of::<K>().push(now(kind)).await
    }

    /// Pushes each of `kinds` due now (the queue chunks them); returns how many were new.
    pub async fn push_all<K: Queued>(
        &self,
        kinds: impl IntoIterator<Item = K>,
    ) -> Result<usize, QueueError> {
        let jobs: Vec<Job<K>> = kinds.into_iter().map(now).collect();
        let pushed = self.of::<K>().push_many(&jobs).await?;
        Ok(pushed.into_iter().filter(|new| *new).count())
    }

    /// Pushes `kind` due after `delay`; false if a job with its id is already held.
    pub async fn push_after<K: Queued>(
        &self,
        kind: K,
        delay: Duration,
    ) -> Result<bool, QueueError> {
        self.of::<K>().push(after(kind, delay)).await
    }
}

/// The queue of kind `K`, with the settings `config` gives for its name.
fn open<K: JobKind>(
    client: &RedisClient,
    redis: &RedisConnection,
    config: impl Fn(QueueName) -> QueueConfig,
) -> Result<Queue<K>, QueueError> {
    Queue::with_connection(client.clone(), redis.clone(), config(K::QUEUE))
}

/// A kind of job with its queue among the [`Queues`].
pub trait Queued: JobKind {
    /// Its queue.
    fn queue(queues: &Queues) -> &Queue<Self>;
}

/// Each job kind's field among the [`Queues`].
macro_rules! queued {
    ($($kind:ty => $field:ident),* $(,)?) => {
        $(impl Queued for $kind {
            fn queue(queues: &Queues) -> &Queue<Self> {
                &queues.$field
            }
        })*
    };
}

queued!(
    CreateJob => create,
    ProcessJob => process,
    UpdateJob => update,
    NotifyJob => notify,
);
