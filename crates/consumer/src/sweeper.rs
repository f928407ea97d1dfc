//! The sweeper: Postgres is the record and Redis only the conveyor, so overdue work found in
//! Postgres is pushed again under its deterministic job id. A push of a job still held is a
//! no-op, so the sweeper is harmless when nothing was lost. One instance sweeps at a time
//! (an advisory lock).

use std::{sync::Arc, time::Duration};

use queue::Job;
use tokio_util::sync::CancellationToken;
use txn_core::jobs::{NotifyJob, ProcessFrom, ProcessJob, UpdateJob};

use crate::pipeline::{HandlerError, Pipeline};

/// Sweeps every `interval` until `stop` is cancelled.
pub async fn run(
    p: Arc<Pipeline>,
    interval: Duration,
    grace: Duration,
    batch: i64,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep_once(&p, grace, batch).await {
            tracing::warn!(error = %e, "sweep failed");
        }
    }
}

/// One sweep; returns how many jobs it pushed again.
pub async fn sweep_once(p: &Pipeline, grace: Duration, batch: i64) -> Result<usize, HandlerError> {
    let Some(overdue) = p.store.overdue(grace, batch).await? else {
        return Ok(0);
    };
    let process: Vec<_> = overdue
        .submissions
        .iter()
        .map(|&id| {
            let job = ProcessJob {
                id,
                from: ProcessFrom::Recovery,
            };
            Job::now(job.job_id(), job)
        })
        .collect();
    let polls: Vec<_> = overdue
        .polls
        .iter()
        .map(|&(id, n)| {
            let job = UpdateJob::Poll { id, n };
            Job::now(job.job_id(), job)
        })
        .collect();
    let notifications: Vec<_> = overdue
        .notifications
        .iter()
        .map(|&(delivery_id, id, status)| {
            let job = NotifyJob {
                delivery_id,
                id,
                status,
            };
            Job::now(job.job_id(), job)
        })
        .collect();
    let mut pushed = 0;
    pushed += p
        .process
        .push_many(&process)
        .await?
        .into_iter()
        .filter(|p| *p)
        .count();
    pushed += p
        .update
        .push_many(&polls)
        .await?
        .into_iter()
        .filter(|p| *p)
        .count();
    pushed += p
        .notify
        .push_many(&notifications)
        .await?
        .into_iter()
        .filter(|p| *p)
        .count();
    if pushed > 0 {
        tracing::warn!(pushed, "sweeper re-pushed lost work");
    }
    Ok(pushed)
}
