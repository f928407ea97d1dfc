//! Pushing jobs: one, many, or through a caller's own script in the same round trip.

use redis::{FromRedisValue, Script};
use serde::Serialize;

use crate::{Job, Queue, QueueError, now_ms, scripts};

/// A caller's Lua script that runs with the queue's push function in scope, so it can reserve
/// something of its own and push a job atomically, in one round trip.
///
/// The body sees the queue's ten keys as `KEYS[1..=10]` and its own keys after them;
/// `ARGV[1..=4]` are the job's id, payload, due time and the current time (ms), its own
/// arguments follow. It pushes with
/// `push_job(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))` (1 = pushed, 0 = the id
/// was already held) and returns whatever it likes.
#[derive(Debug, Clone)]
pub struct PushHook {
    script: Script,
}

impl PushHook {
    /// Wraps `body` (Lua) with the queue's push library.
    pub fn new(body: &str) -> Self {
        Self {
            script: Script::new(&format!("{}\n{body}", scripts::PUSH_LIB)),
        }
    }
}

impl<T: Serialize> Queue<T> {
    /// Pushes one job; returns false if its id was already waiting, scheduled, running or dead.
    pub async fn push(&self, job: Job<T>) -> Result<bool, QueueError> {
        let payload = serde_json::to_string(&job.args)?;
        let pushed: u8 = scripts::invocation(&scripts::PUSH, self.keys())
            .arg(&job.id)
            .arg(payload)
            .arg(job.due_ms)
            .arg(now_ms())
            .invoke_async(&mut self.conn())
            .await?;
        self.count_pushed(u64::from(pushed == 1));
        Ok(pushed == 1)
    }

    /// Pushes many jobs in one round trip; one flag per job, as for [`Queue::push`].
    pub async fn push_many(&self, jobs: &[Job<T>]) -> Result<Vec<bool>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = scripts::invocation(&scripts::PUSH_MANY, self.keys());
        inv.arg(now_ms());
        for job in jobs {
            inv.arg(&job.id)
                .arg(serde_json::to_string(&job.args)?)
                .arg(job.due_ms);
        }
        let pushed: Vec<u8> = inv.invoke_async(&mut self.conn()).await?;
        self.count_pushed(pushed.iter().filter(|p| **p == 1).count() as u64);
        Ok(pushed.into_iter().map(|p| p == 1).collect())
    }

    /// Runs `hook` with `job` and the caller's own keys and arguments (see [`PushHook`]).
    pub async fn push_with<R: FromRedisValue>(
        &self,
        hook: &PushHook,
        job: &Job<T>,
        keys: &[&str],
        args: &[&str],
    ) -> Result<R, QueueError> {
        let mut inv = scripts::invocation(&hook.script, self.keys());
        for key in keys {
            inv.key(*key);
        }
        inv.arg(&job.id)
            .arg(serde_json::to_string(&job.args)?)
            .arg(job.due_ms)
            .arg(now_ms());
        for arg in args {
            inv.arg(*arg);
        }
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }
}
