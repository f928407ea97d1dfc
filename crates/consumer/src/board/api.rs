//! The board's JSON API (`/board/api/…`): what the pages show, for scripts and tests.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use queue::{DeadJob, JobInfo, JobPage};
use serde::Serialize;

use super::{Board, BoardError, JobsQuery, QueueCounts, QueueThroughput, story::Story};

/// `GET /board/api/queues`: counts per queue.
pub(super) async fn queues(
    State(board): State<Board>,
) -> Result<Json<Vec<QueueCounts>>, BoardError> {
    Ok(Json(board.counts().await?))
}

/// `GET /board/api/queues/{queue}/jobs?state=&cursor=&limit=`: a page of jobs in one state.
pub(super) async fn jobs(
    State(board): State<Board>,
    Path(queue): Path<String>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<JobPage>, BoardError> {
    Ok(Json(board.jobs_page(&queue, &query).await?))
}

/// `GET /board/api/queues/{queue}/jobs/{id}`: one job (404 if the queue has no such job).
pub(super) async fn job(
    State(board): State<Board>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<JobInfo>, BoardError> {
    Ok(Json(board.job(&queue, &id).await?))
}

/// `GET /board/api/queues/{queue}/failed`: the newest dead jobs.
pub(super) async fn failed(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Vec<DeadJob>>, BoardError> {
    let mut jobs = board.queue(&queue)?.dead_jobs(0, 100).await?;
    if !board.access.reveals() {
        for job in &mut jobs {
            job.payload.clear();
        }
    }
    Ok(Json(jobs))
}

/// `GET /board/api/throughput`: done and failed per 10 s, last 15 min, per queue.
pub(super) async fn throughput(
    State(board): State<Board>,
) -> Result<Json<Vec<QueueThroughput>>, BoardError> {
    Ok(Json(board.throughput().await?))
}

/// `GET /board/api/transactions/{id}`: a transaction's story (404 if nothing is known of it).
pub(super) async fn transaction(
    State(board): State<Board>,
    Path(id): Path<String>,
) -> Result<Json<Story>, BoardError> {
    let story = board.story(&id).await?;
    if !story.is_known() {
        return Err(BoardError::NotFound("no such transaction"));
    }
    Ok(Json(story))
}

#[derive(Serialize)]
pub(super) struct Retried {
    retried: bool,
}

/// `POST …/failed/{id}/retry`: the dead job runs again.
pub(super) async fn retry(
    State(board): State<Board>,
    Path((queue, id)): Path<(String, String)>,
) -> Result<Json<Retried>, BoardError> {
    let retried = board.retry(&queue, &id).await?;
    tracing::info!(queue, job = %id, retried, "board: retry");
    Ok(Json(Retried { retried }))
}

#[derive(Serialize)]
pub(super) struct Paused {
    paused: bool,
}

/// `POST …/pause`: no job of the queue starts, in any consumer, until it is resumed.
pub(super) async fn pause(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Paused>, BoardError> {
    board.queue(&queue)?.set_paused(true).await?;
    tracing::warn!(queue, "board: queue paused");
    Ok(Json(Paused { paused: true }))
}

/// `POST …/resume`: a paused queue runs again.
pub(super) async fn resume(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Paused>, BoardError> {
    board.queue(&queue)?.set_paused(false).await?;
    tracing::warn!(queue, "board: queue resumed");
    Ok(Json(Paused { paused: false }))
}

#[derive(Serialize)]
pub(super) struct Purged {
    purged: u64,
}

/// `POST …/failed/purge`: every dead job of the queue is deleted.
pub(super) async fn purge(
    State(board): State<Board>,
    Path(queue): Path<String>,
) -> Result<Json<Purged>, BoardError> {
    let purged = board.queue(&queue)?.purge_dead().await?;
    tracing::info!(queue, purged, "board: purge");
    Ok(Json(Purged { purged }))
}
