//! Inspection for operators and the queue board: counts, dead jobs, retry, purge.

use serde::Serialize;

use crate::{Queue, QueueError, scripts};

/// Jobs per state, plus lifetime counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Ready to run now (the ready list's length).
    pub waiting: u64,
    /// Due later (includes failed jobs waiting for their retry).
    pub scheduled: u64,
    /// Leased to a worker.
    pub running: u64,
    /// In the dead set.
    pub failed: u64,
    /// Completed since the queue was created.
    pub done: u64,
    /// Paused: no worker starts a job of it.
    pub paused: bool,
    /// Failed attempts re-scheduled since the queue was created.
    pub retried: u64,
}

/// A dead-lettered job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadJob {
    /// The job id.
    pub id: String,
    /// When it died, ms since the epoch.
    pub dead_at_ms: u64,
    /// Deliveries it had.
    pub attempts: u64,
    /// Its last error.
    pub error: String,
    /// Its payload (JSON).
    pub payload: String,
}

/// Where a scan of the dead set ([`Queue::dead_after`]) stands: the last job it returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadCursor {
    /// Its death time (ms since the epoch); 0 = from the start.
    pub dead_at_ms: u64,
    /// Its id ("" = from the start).
    pub id: String,
}

impl DeadCursor {
    /// The cursor just after `job`.
    pub fn after(job: &DeadJob) -> Self {
        Self {
            dead_at_ms: job.dead_at_ms,
            id: job.id.clone(),
        }
    }
}

/// The `done`, `retried` and `paused` fields of a queue's stats hash.
type StatsFields = (Option<u64>, Option<u64>, Option<u8>);

impl<T: serde::Serialize> Queue<T> {
    /// Moves dead jobs back to waiting with fresh attempt counts, each run with the payload
    /// given (a revival may know better than the job that died), in one round trip. Returns
    /// how many were dead: an id no longer dead is skipped, so concurrent callers are harmless.
    pub async fn revive_dead(&self, jobs: &[(&str, &T)]) -> Result<u64, QueueError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let mut inv = scripts::invocation(&scripts::RETRY_DEAD, self.keys());
        for (id, payload) in jobs {
            inv.arg(*id).arg(serde_json::to_string(payload)?);
        }
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }
}

impl<T> Queue<T> {
    /// Pauses (`true`) or resumes the queue for every worker of every process: a paused
    /// queue's fetches take nothing (running jobs finish); a resume wakes idle workers.
    pub async fn set_paused(&self, paused: bool) -> Result<(), QueueError> {
        let _: u8 = scripts::invocation(&scripts::PAUSE, self.keys())
            .arg(if paused { "1" } else { "0" })
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Whether the node holding this queue answers: a command on one of its keys, so on a
    /// cluster it reaches the node that owns the queue's slot.
    pub async fn reachable(&self) -> Result<(), QueueError> {
        let _: u8 = redis::cmd("EXISTS")
            .arg(self.keys().ready())
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Jobs per state, read in one round trip.
    pub async fn counts(&self) -> Result<Counts, QueueError> {
        let keys = self.keys();
        let (waiting, scheduled, running, failed, stats): (u64, u64, u64, u64, StatsFields) =
            redis::pipe()
                .llen(keys.ready())
                .zcard(keys.scheduled())
                .zcard(keys.leased())
                .zcard(keys.dead())
                .hmget(keys.stats(), &["done", "retried", "paused"])
                .query_async(&mut self.conn())
                .await?;
        Ok(Counts {
            waiting,
            scheduled,
            running,
            failed,
            done: stats.0.unwrap_or(0),
            retried: stats.1.unwrap_or(0),
            paused: stats.2.is_some(),
        })
    }

    /// Dead jobs, newest first.
    pub async fn dead_jobs(&self, offset: u64, limit: u64) -> Result<Vec<DeadJob>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, u64, u64, String, String)> =
            scripts::invocation(&scripts::LIST_DEAD, self.keys())
                .arg(offset)
                .arg(limit)
                .invoke_async(&mut self.conn())
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, dead_at_ms, attempts, error, payload)| DeadJob {
                id,
                dead_at_ms,
                attempts,
                error,
                payload,
            })
            .collect())
    }

    /// Moves one dead job back to waiting with a fresh attempt count; false if it was not dead.
    pub async fn retry_dead(&self, id: &str) -> Result<bool, QueueError> {
        let mut inv = scripts::invocation(&scripts::RETRY_DEAD, self.keys());
        inv.arg(id).arg("");
        let moved: u64 = inv.invoke_async(&mut self.conn()).await?;
        Ok(moved == 1)
    }

    /// Dead jobs that died after `cursor` and no later than `before_ms`, oldest first: a
    /// scan that pages through the dead set in (death time, id) order. Pass the last job
    /// returned as the next cursor.
    pub async fn dead_after(
        &self,
        cursor: &DeadCursor,
        before_ms: u64,
        limit: u64,
    ) -> Result<Vec<DeadJob>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, u64, u64, String, String)> =
            scripts::invocation(&scripts::DEAD_AFTER, self.keys())
                .arg(cursor.dead_at_ms)
                .arg(&cursor.id)
                .arg(before_ms)
                .arg(limit)
                .invoke_async(&mut self.conn())
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, dead_at_ms, attempts, error, payload)| DeadJob {
                id,
                dead_at_ms,
                attempts,
                error,
                payload,
            })
            .collect())
    }

    /// Deletes every dead job; returns how many.
    pub async fn purge_dead(&self) -> Result<u64, QueueError> {
        let mut total = 0;
        loop {
            let n: u64 = scripts::invocation(&scripts::PURGE_DEAD, self.keys())
                .arg(500)
                .invoke_async(&mut self.conn())
                .await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Ids of the most recently completed jobs, newest first.
    pub async fn recent_done(&self, limit: usize) -> Result<Vec<String>, QueueError> {
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys().recent())
            .arg(0)
            .arg(limit.saturating_sub(1))
            .query_async(&mut self.conn())
            .await?;
        Ok(if limit == 0 { Vec::new() } else { ids })
    }

    /// Deletes every key of the queue (all jobs in every state and the counters).
    pub async fn delete_all(&self) -> Result<(), QueueError> {
        let _: () = redis::cmd("DEL")
            .arg(&self.keys().in_script_order()[..])
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}
