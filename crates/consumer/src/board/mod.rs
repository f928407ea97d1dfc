//! The queue board, at `/board`: per queue the counts of waiting, scheduled, running, done and
//! failed jobs, pause and resume, a throughput chart, every state's jobs with their payload,
//! due time, attempts and last error (paged by cursor), a job's detail with Retry for a dead
//! one, and a transaction's whole story by id. Server-rendered pages over a JSON API at
//! `/board/api`; no script or style comes from elsewhere, so it works offline.
//!
//! Access: with `BOARD_TOKEN`, every request needs `Authorization: Bearer <token>` or the
//! session cookie `/board/login` sets (`HttpOnly`, `SameSite=Strict`); a token in a URL is
//! never read. Without it the board is readable by anyone, without payloads or amounts, and
//! read-only unless `BOARD_ALLOW_ACTIONS=true`. Every mutating request must carry
//! `x-board-action: 1`, which no cross-site form can send.

mod access;
mod api;
mod chart;
mod clients;
mod html;
mod pages;
mod story;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use domain::{QueueName, TransactionId, jobs::ProcessJob};
use queue::{Counts, JobInfo, JobPage, JobState, Queue};
use serde::Serialize;
use store::Store;
use tokio_util::sync::CancellationToken;

pub use access::Access;

/// The board's view of the queues (untyped handles: it only inspects) and of Postgres.
#[derive(Clone)]
pub struct Board {
    /// One per queue, in `QueueName::ALL` order.
    queues: Arc<Vec<Queue<serde_json::Value>>>,
    store: Store,
    access: Arc<Access>,
}

impl Board {
    /// A board over the four queues of `prefix`, sharing `conn`, and the store.
    pub fn new(
        client: queue::RedisClient,
        conn: queue::RedisConnection,
        prefix: &str,
        store: Store,
        access: Access,
    ) -> anyhow::Result<Self> {
        let queues = QueueName::ALL
            .iter()
            .map(|name| {
                Queue::with_connection(
                    client.clone(),
                    conn.clone(),
                    queue::QueueConfig::new(prefix, name.as_str()),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            queues: Arc::new(queues),
            store,
            access: Arc::new(access),
        })
    }

    /// Each queue with its name (`new` opens them in `QueueName::ALL` order).
    fn named_queues(&self) -> impl Iterator<Item = (QueueName, &Queue<serde_json::Value>)> {
        QueueName::ALL.iter().copied().zip(self.queues.iter())
    }

    fn queue(&self, name: &str) -> Result<&Queue<serde_json::Value>, BoardError> {
        self.queues
            .iter()
            .find(|q| q.name() == name)
            .ok_or(BoardError::NotFound("no such queue"))
    }

    /// Counts of every queue (also the source of the depth gauges in `/metrics`).
    pub async fn counts(&self) -> Result<Vec<QueueCounts>, queue::QueueError> {
        let mut all = Vec::with_capacity(self.queues.len());
        for q in self.queues.iter() {
            all.push(QueueCounts {
                name: q.name().to_string(),
                counts: q.counts().await?,
            });
        }
        Ok(all)
    }

    /// Samples every queue's throughput counters once per 10 s bucket until `stop`: each
    /// consumer does, and the first sample of a bucket counts, so the chart survives any one
    /// consumer.
    pub async fn sample_throughput(self, stop: CancellationToken) {
        let mut tick =
            tokio::time::interval(Duration::from_millis(queue::throughput::BUCKET_MS / 2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for q in self.queues.iter() {
                if let Err(e) = q.sample_throughput().await {
                    tracing::debug!(queue = q.name(), error = %e, "throughput sample failed");
                }
            }
        }
    }
}

/// Which jobs a list shows: `?state=waiting|scheduled|running|failed|done&cursor=…&limit=…`
/// (done: the ids of the most recent ones, one page).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct JobsQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
}

/// The most jobs one page shows.
const MAX_PAGE: u64 = 200;

impl JobsQuery {
    fn state(&self) -> Result<JobState, BoardError> {
        let name = self.state.as_deref().unwrap_or("waiting");
        JobState::parse(name).ok_or_else(|| {
            BoardError::BadRequest(format!(
                "state must be waiting, scheduled, running, failed or done, not {name:?}"
            ))
        })
    }
}

impl Board {
    /// A page of a queue's jobs; payloads only when the board reveals them.
    async fn jobs_page(&self, queue: &str, query: &JobsQuery) -> Result<JobPage, BoardError> {
        let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
        let mut page = self
            .queue(queue)?
            .jobs(query.state()?, query.cursor.as_deref(), limit)
            .await?;
        self.hide_payloads(&mut page.jobs);
        Ok(page)
    }

    /// One job, wherever it is in its queue.
    async fn job(&self, queue: &str, id: &str) -> Result<JobInfo, BoardError> {
        let mut found = self.queue(queue)?.find_jobs(&[id.to_string()]).await?;
        self.hide_payloads(&mut found);
        found.pop().ok_or(BoardError::NotFound("no such job"))
    }

    fn hide_payloads(&self, jobs: &mut [JobInfo]) {
        if !self.access.reveals() {
            for job in jobs {
                job.payload.clear();
            }
        }
    }

    /// Moves a dead job back to waiting; false if it was not dead. A submission runs again as
    /// [`ProcessJob::rerun`] says (it asks the third party first), as a revived one does.
    async fn retry(&self, queue: &str, id: &str) -> Result<bool, BoardError> {
        let q = self.queue(queue)?;
        if queue != QueueName::Process.as_str() {
            return Ok(q.retry_dead(id).await?);
        }
        let dead = q.find_jobs(&[id.to_string()]).await?;
        let Some(job) = dead.first().filter(|j| j.state == JobState::Failed) else {
            return Ok(false);
        };
        let rerun = serde_json::from_str::<ProcessJob>(&job.payload)
            .map_err(|e| BoardError::BadRequest(format!("unreadable submission job: {e}")))?
            .rerun();
        let payload = serde_json::to_value(rerun)
            .map_err(|e| BoardError::BadRequest(format!("unwritable submission job: {e}")))?;
        Ok(q.revive_dead(&[(id, &payload)]).await? == 1)
    }

    /// The story of transaction `id` (text from a URL or the search box).
    async fn story(&self, id: &str) -> Result<story::Story, BoardError> {
        let id = TransactionId::parse(id.trim()).map_err(|_| {
            BoardError::BadRequest(format!("{:?} is not a transaction id (a UUID)", id.trim()))
        })?;
        story::load(self, id).await
    }

    /// Every queue's throughput points.
    async fn throughput(&self) -> Result<Vec<QueueThroughput>, BoardError> {
        let mut all = Vec::with_capacity(self.queues.len());
        for q in self.queues.iter() {
            all.push(QueueThroughput {
                name: q.name().to_string(),
                points: q.throughput().await?,
            });
        }
        Ok(all)
    }
}

/// One queue's throughput: done and failed per 10 s bucket, the last 15 min, oldest first.
#[derive(Debug, Serialize)]
pub struct QueueThroughput {
    /// The queue.
    pub name: String,
    /// One point per bucket.
    pub points: Vec<queue::throughput::Point>,
}

/// One queue's counts.
#[derive(Debug, Serialize)]
pub struct QueueCounts {
    /// The queue.
    pub name: String,
    /// Jobs per state.
    #[serde(flatten)]
    pub counts: Counts,
}

/// Why a board request failed.
#[derive(Debug)]
enum BoardError {
    NotFound(&'static str),
    BadRequest(String),
    Redis(queue::QueueError),
    Postgres(store::StoreError),
}

impl From<queue::QueueError> for BoardError {
    fn from(e: queue::QueueError) -> Self {
        BoardError::Redis(e)
    }
}

impl From<store::StoreError> for BoardError {
    fn from(e: store::StoreError) -> Self {
        BoardError::Postgres(e)
    }
}

impl IntoResponse for BoardError {
    fn into_response(self) -> Response {
        match self {
            BoardError::NotFound(what) => (StatusCode::NOT_FOUND, what).into_response(),
            BoardError::BadRequest(why) => (StatusCode::BAD_REQUEST, why).into_response(),
            BoardError::Redis(e) => {
                tracing::warn!(error = %e, "board: redis call failed");
                (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable").into_response()
            }
            BoardError::Postgres(e) => {
                tracing::warn!(error = %e, "board: postgres call failed");
                (StatusCode::SERVICE_UNAVAILABLE, "postgres unavailable").into_response()
            }
        }
    }
}

/// The board's routes.
pub fn router(board: Board) -> Router {
    Router::new()
        .route("/board", get(pages::overview))
        .route("/board/queues/{queue}", get(pages::jobs))
        .route("/board/queues/{queue}/jobs/{id}", get(pages::job))
        .route("/board/transactions", get(pages::story))
        .route("/board/login", post(access::login))
        .route("/board/clients", get(clients::page_of_clients))
        .route("/board/api/clients", get(clients::api))
        .route("/board/api/queues", get(api::queues))
        .route("/board/api/queues/{queue}/jobs", get(api::jobs))
        .route("/board/api/queues/{queue}/jobs/{id}", get(api::job))
        .route("/board/api/queues/{queue}/failed", get(api::failed))
        .route(
            "/board/api/queues/{queue}/failed/{id}/retry",
            post(api::retry),
        )
        .route("/board/api/queues/{queue}/failed/purge", post(api::purge))
        .route("/board/api/queues/{queue}/pause", post(api::pause))
        .route("/board/api/queues/{queue}/resume", post(api::resume))
        .route("/board/api/throughput", get(api::throughput))
        .route("/board/api/transactions/{id}", get(api::transaction))
        .layer(middleware::from_fn_with_state(board.clone(), access::guard))
        .with_state(board)
}
