//! The sweeper: Postgres is the record and Redis only the conveyor, so overdue work found in
//! Postgres is pushed again under its deterministic job id. A push of a job still held is a
//! no-op, so the sweeper is harmless when nothing was lost. One instance reads the overdue
//! rows at a time (an advisory lock, held for that read only); the pushes of two sweepers may
//! overlap, which the same no-op makes harmless.
//!
//! A dead job still holds its id, so that push would be a no-op too: the sweeper also revives
//! dead jobs whose work is still owed (`owner`), once they have been dead `DEAD_REVIVE_MS`.

use std::{
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use domain::{
    delivery::Trigger,
    jobs::{CreateJob, NotifyJob, ProcessFrom, ProcessJob, UpdateJob},
    owner,
};
use jobs::{Queued, Queues};
use queue::DeadCursor;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{HandlerError, Pipeline};

/// What the sweeper does each tick.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// How often it runs.
    pub interval: Duration,
    /// How overdue work must be before it is pushed again.
    pub grace: Duration,
    /// Most rows of each kind, and most dead jobs per queue, handled per tick.
    pub batch: i64,
    /// How long a job must have been dead before it is revived.
    pub revive_after: Duration,
}

/// Sweeps every `settings.interval` until `stop` is cancelled.
pub async fn run(p: Arc<Pipeline>, settings: SweepSettings, stop: CancellationToken) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut revival = Revival::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // After a Redis data loss: everything due, at once, however much (in chunks).
        let full = p.full_sweep_owed.swap(false, Ordering::SeqCst);
        let (grace, batch) = if full {
            (Duration::ZERO, i64::MAX)
        } else {
            (settings.grace, settings.batch)
        };
        match sweep_once(&p, grace, batch).await {
            Ok(pushed) if full => tracing::warn!(pushed, "full sweep after a Redis data loss done"),
            Ok(_) => {}
            Err(e) => {
                if full {
                    p.full_sweep_owed.store(true, Ordering::SeqCst);
                }
                tracing::warn!(error = %e, "sweep failed");
            }
        }
        let batch = u64::try_from(settings.batch).unwrap_or(1).max(1);
        if let Err(e) = revival.revive(&p, settings.revive_after, batch).await {
            tracing::warn!(error = %e, "revival of dead jobs failed");
        }
    }
}

/// Where the scan of each queue's dead set stands. Each tick looks only at jobs that died
/// after the last one examined (in batches), so jobs left dead (their work is done) are not
/// read again; a revived job that dies again is new to the scan.
#[derive(Debug, Default)]
pub struct Revival {
    cursors: [DeadCursor; 4],
}

impl Revival {
    /// Revives, in every queue, the jobs dead for at least `after` whose work is still owed;
    /// at most `batch` examined per queue. Returns how many it revived.
    pub async fn revive(
        &mut self,
        p: &Pipeline,
        after: Duration,
        batch: u64,
    ) -> Result<u64, HandlerError> {
        let before = queue::now_ms().saturating_sub(after.as_millis() as u64);
        let scan = DeadScan {
            queues: &p.queues,
            before_ms: before,
            batch,
        };
        let [create, process, update, notify] = &mut self.cursors;
        // Whether each job's transaction is unfinished.
        let owed = |ids: Vec<domain::TransactionId>| async move {
            let rows = p.store.get_many(&ids).await?;
            Ok::<_, HandlerError>(
                rows.iter()
                    .map(|r| owner::dead_job_owed(r.as_ref().map(|r| r.status)))
                    .collect::<Vec<_>>(),
            )
        };
        let mut revived = 0;
        revived += scan
            .revive(create, |jobs: Vec<CreateJob>| async {
                let owed = owed(jobs.iter().map(|j| j.id).collect()).await?;
                Ok(keep_owed(jobs, owed))
            })
            .await?;
        revived += scan
            .revive(process, |jobs: Vec<ProcessJob>| async move {
                let owed = owed(jobs.iter().map(|j| j.id).collect()).await?;
                let reruns: Vec<ProcessJob> = jobs.iter().map(ProcessJob::rerun).collect();
                Ok(keep_owed(reruns, owed))
            })
            .await?;
        revived += scan
            .revive(update, |jobs| async {
                let owed = owed(jobs.iter().map(UpdateJob::transaction).collect()).await?;
                Ok(keep_owed(jobs, owed))
            })
            .await?;
        revived += scan
            .revive(notify, |jobs: Vec<NotifyJob>| async move {
                let ids: Vec<domain::DeliveryId> = jobs.iter().map(|j| j.delivery_id).collect();
                let rows = p.store.notifications(&ids).await?;
                let owed = rows
                    .iter()
                    .map(|r| owner::dead_notification_owed(r.as_ref().map(|n| n.delivery())))
                    .collect();
                Ok(keep_owed(jobs, owed))
            })
            .await?;
        Ok(revived)
    }
}

/// The jobs whose flag is set; `None` for the others.
fn keep_owed<T>(jobs: impl IntoIterator<Item = T>, owed: Vec<bool>) -> Vec<Option<T>> {
    jobs.into_iter()
        .zip(owed)
        .map(|(job, owed)| owed.then_some(job))
        .collect()
}

/// One tick's look at the dead sets: jobs dead since before `before_ms`, `batch` at a time.
struct DeadScan<'a> {
    queues: &'a Queues,
    before_ms: u64,
    batch: u64,
}

impl DeadScan<'_> {
    /// One batch of the dead set of `T`'s queue after `cursor`: the jobs for which `owed`
    /// gives a job to run (usually the same one) are moved back to waiting with fresh delivery
    /// counts, counted in `jobs_revived_total{queue}`.
    async fn revive<T, F, Fut>(&self, cursor: &mut DeadCursor, owed: F) -> Result<u64, HandlerError>
    where
        T: Queued,
        F: FnOnce(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Vec<Option<T>>, HandlerError>>,
    {
        let (queue, name) = (self.queues.of::<T>(), T::QUEUE);
        let dead = queue.dead_after(cursor, self.before_ms, self.batch).await?;
        let Some(last) = dead.last() else {
            return Ok(0);
        };
        let next = DeadCursor::after(last);
        let (mut ids, mut jobs) = (Vec::new(), Vec::new());
        for job in &dead {
            match serde_json::from_str::<T>(&job.payload) {
                Ok(parsed) => {
                    ids.push(job.id.as_str());
                    jobs.push(parsed);
                }
                Err(e) => {
                    tracing::error!(queue = name.as_str(), job_id = %job.id, error = %e, "dead job unreadable; left dead")
                }
            }
        }
        let owed = owed(jobs).await?;
        let revive: Vec<(&str, &T)> = ids
            .into_iter()
            .zip(&owed)
            .filter_map(|(id, job)| job.as_ref().map(|job| (id, job)))
            .collect();
        let revived = queue.revive_dead(&revive).await?;
        *cursor = next;
        if revived > 0 {
            metrics::counter!("jobs_revived_total", "queue" => name.as_str()).increment(revived);
            tracing::warn!(
                queue = name.as_str(),
                revived,
                "revived dead jobs of unfinished transactions"
            );
        }
        Ok(revived)
    }
}

/// One sweep; returns how many jobs it pushed again.
pub async fn sweep_once(p: &Pipeline, grace: Duration, batch: i64) -> Result<usize, HandlerError> {
    let Some(overdue) = p.store.overdue(grace, batch).await? else {
        return Ok(0);
    };
    // Revived work continues the trace its transaction was accepted in (kept on its row).
    let process = overdue.submissions.iter().map(|due| ProcessJob {
        id: due.id,
        from: ProcessFrom::Recovery,
        trace: due.trace.clone(),
    });
    let polls = overdue.polls.iter().map(|poll| UpdateJob::Poll {
        id: poll.id,
        n: poll.n,
        not_found: 0,
        trace: poll.trace.clone(),
    });
    let notifications = overdue.notifications.iter().map(|due| NotifyJob {
        delivery_id: due.delivery_id,
        id: due.id,
        status: due.status,
        trigger: Trigger::Scheduled,
        client_app: Some(due.client_app),
        trace: due.trace.clone(),
    });
    let q = &p.queues;
    let pushed =
        q.push_all(process).await? + q.push_all(polls).await? + q.push_all(notifications).await?;
    if pushed > 0 {
        tracing::warn!(pushed, "sweeper re-pushed lost work");
    }
    Ok(pushed)
}
