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

/// A dead job as the listing scripts answer it: id, death time, attempts, error, payload.
type DeadRow = (String, u64, u64, String, String);

impl From<DeadRow> for DeadJob {
    fn from((id, dead_at_ms, attempts, error, payload): DeadRow) -> Self {
        DeadJob {
            id,
            dead_at_ms,
            attempts,
            error,
            payload,
        }
    }
}

/// The states a job can be listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run, in the order the jobs will start.
    Waiting,
    /// Due later (a first run or a retry), soonest first.
    Scheduled,
    /// Leased to a worker, by lease expiry.
    Running,
    /// Dead-lettered, oldest first.
    Failed,
    /// Completed: only its id is kept, among the recent ones.
    Done,
}

impl JobState {
    /// The states whose jobs are kept whole (done jobs keep only their ids).
    pub const LISTED: [JobState; 4] = [
        JobState::Waiting,
        JobState::Scheduled,
        JobState::Running,
        JobState::Failed,
    ];

    /// Its name in the API and the scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Failed => "failed",
            JobState::Done => "done",
        }
    }

    /// The state named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Done]
            .into_iter()
            .chain(Self::LISTED)
            .find(|s| s.as_str() == text)
    }
}

/// A job as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobInfo {
    /// The job id.
    pub id: String,
    /// Where it is.
    pub state: JobState,
    /// When it is due (scheduled), its lease runs out (running) or it died (failed), ms since
    /// the epoch; `None` for waiting and done jobs.
    pub at_ms: Option<u64>,
    /// Deliveries so far.
    pub deliveries: u64,
    /// Its last error, if an attempt failed.
    pub error: String,
    /// Its payload (JSON); empty for a done job.
    pub payload: String,
}

/// One page of a job list, and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobPage {
    /// The jobs, in list order.
    pub jobs: Vec<JobInfo>,
    /// The cursor of the next page, `None` after the last one.
    pub next: Option<String>,
}

/// Rows as the listing scripts return them: id, time (-1: none), deliveries, error, payload.
type JobRow = (String, i64, u64, String, String);

fn job_info(state: JobState, (id, at, deliveries, error, payload): JobRow) -> JobInfo {
    JobInfo {
        id,
        state,
        at_ms: u64::try_from(at).ok(),
        deliveries,
        error,
        payload,
    }
}

/// The cursor after `job`: `<time ms>:<id>` (time 0 for waiting jobs).
fn cursor_after(job: &JobInfo) -> String {
    format!("{}:{}", job.at_ms.unwrap_or(0), job.id)
}

/// Splits a cursor made by [`cursor_after`]; a cursor that is not one starts from the start.
fn parse_cursor(cursor: Option<&str>) -> (u64, &str) {
    cursor
        .and_then(|c| c.split_once(':'))
        .and_then(|(at, id)| Some((at.parse().ok()?, id)))
        .unwrap_or((0, ""))
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
        let rows: Vec<DeadRow> = scripts::invocation(&scripts::LIST_DEAD, self.keys())
            .arg(offset)
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(rows.into_iter().map(DeadJob::from).collect())
    }

    /// One page of at most `limit` jobs in `state` after `cursor` (`None`: the first page).
    /// `Done` jobs keep only their ids, the most recent in a capped list: their one page is the
    /// newest `limit` of them.
    pub async fn jobs(
        &self,
        state: JobState,
        cursor: Option<&str>,
        limit: u64,
    ) -> Result<JobPage, QueueError> {
        if limit == 0 || (state == JobState::Done && cursor.is_some()) {
            return Ok(JobPage {
                jobs: Vec::new(),
                next: None,
            });
        }
        if state == JobState::Done {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let jobs = self
                .recent_done(limit)
                .await?
                .into_iter()
                .map(|id| JobInfo {
                    id,
                    state,
                    at_ms: None,
                    deliveries: 0,
                    error: String::new(),
                    payload: String::new(),
                })
                .collect();
            return Ok(JobPage { jobs, next: None });
        }
        let (at, id) = parse_cursor(cursor);
        let rows: Vec<JobRow> = scripts::invocation(&scripts::LIST_JOBS, self.keys())
            .arg(state.as_str())
            .arg(at)
            .arg(id)
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await?;
        let jobs: Vec<JobInfo> = rows.into_iter().map(|r| job_info(state, r)).collect();
        let next = (jobs.len() as u64 == limit)
            .then(|| jobs.last().map(cursor_after))
            .flatten();
        Ok(JobPage { jobs, next })
    }

    /// The jobs among `ids` that the queue holds (or recently completed), in order.
    pub async fn find_jobs(&self, ids: &[String]) -> Result<Vec<JobInfo>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = scripts::invocation(&scripts::FIND_JOBS, self.keys());
        for id in ids {
            inv.arg(id);
        }
        let rows: Vec<(String, String, i64, u64, String, String)> =
            inv.invoke_async(&mut self.conn()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, state, at, deliveries, error, payload)| {
                let state = JobState::parse(&state)?;
                Some(job_info(state, (id, at, deliveries, error, payload)))
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
        let rows: Vec<DeadRow> = scripts::invocation(&scripts::DEAD_AFTER, self.keys())
            .arg(cursor.dead_at_ms)
            .arg(&cursor.id)
            .arg(before_ms)
            .arg(limit)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(rows.into_iter().map(DeadJob::from).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_the_last_jobs_time_and_id_and_anything_else_starts_over() {
        let job = job_info(
            JobState::Scheduled,
            ("poll:a:3".into(), 1_700, 2, String::new(), "{}".into()),
        );
        let cursor = cursor_after(&job);
        assert_eq!(cursor, "1700:poll:a:3");
        assert_eq!(parse_cursor(Some(&cursor)), (1_700, "poll:a:3"));
        let waiting = job_info(
            JobState::Waiting,
            ("a".into(), -1, 0, String::new(), String::new()),
        );
        assert_eq!(waiting.at_ms, None);
        assert_eq!(parse_cursor(Some(&cursor_after(&waiting))), (0, "a"));
        assert_eq!(parse_cursor(Some("garbage")), (0, ""));
        assert_eq!(parse_cursor(None), (0, ""));
    }

    #[test]
    fn states_have_one_name_each() {
        for state in JobState::LISTED.into_iter().chain([JobState::Done]) {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert_eq!(JobState::parse("dead"), None);
    }
}
