//! Pushing jobs: one, many, or through a caller's own script in the same round trip.

use std::sync::{Arc, Weak};

use redis::{FromRedisValue, Script};
use serde::Serialize;

use crate::{
    Job, Queue, QueueError,
    backend::Shared,
    batch::{BatchError, Batcher},
    now_ms, scripts,
};

/// A caller's Lua script that runs with the queue's push in scope, so it can reserve something
/// of its own and push a job atomically, in one round trip.
///
/// The caller names its own keys and arguments; the body sees them as Lua locals of those names
/// (keys after the queue's, so they must share its hash tag: see [`crate::Keys::tag`]). The
/// body pushes the job with `push_this_job()` (1 = pushed, 0 = the id was already held) and
/// returns its answer: anything but nil, which would end a batch's answers early. One script
/// serves one job ([`Queue::push_with`]) and many ([`Queue::push_many_with`]).
#[derive(Debug, Clone)]
pub struct PushHook {
    /// The body run once per job of a batch (one job: [`Queue::push_with`]).
    script: Script,
    keys: usize,
    args: usize,
}

/// Functions and locals of the queue's script library (besides the key names); a hook may not
/// shadow them.
const LIBRARY_NAMES: [&str; 19] = [
    "signal",
    "holds",
    "fenced",
    "delivery_pairs",
    "staged_ready",
    "staged_due",
    "stage",
    "enqueue_staged",
    "schedule",
    "store_job",
    "push_jobs",
    "held_payload",
    "known_payloads",
    "staged_payloads",
    "prefetch_held",
    "push_this_job",
    "job_id",
    "job_payload",
    "job_due",
];

fn is_reserved(name: &str) -> bool {
    crate::keys::LUA_NAMES.contains(&name) || LIBRARY_NAMES.contains(&name) || name == "now"
}

fn is_lua_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Panics unless every name is a lower-case Lua identifier that is not one of the queue's own:
/// scripts are written in code, so this is a programming error, caught by the first test that
/// runs one.
pub(crate) fn check_names(keys: &[&str], args: &[&str]) {
    for name in keys.iter().chain(args) {
        assert!(
            is_lua_name(name) && !is_reserved(name),
            "script name {name:?} is not a free lower-case Lua identifier"
        );
    }
}

impl PushHook {
    /// Wraps `body` (Lua), which names its keys `keys` and its arguments `args`.
    ///
    /// # Panics
    /// If a name is not a lower-case Lua identifier or is one of the queue's own: hooks are
    /// written in code, so this is a programming error, caught by the first test that runs it.
    pub fn new(keys: &[&str], args: &[&str], body: &str) -> Self {
        Self::with_prelude(keys, args, "", body)
    }

    /// As [`PushHook::new`], with `prelude` (Lua) run once per script before the first job:
    /// helpers and state the jobs of one batch share.
    ///
    /// # Panics
    /// As [`PushHook::new`].
    pub fn with_prelude(keys: &[&str], args: &[&str], prelude: &str, body: &str) -> Self {
        check_names(keys, args);
        Self {
            script: Script::new(&format!(
                "{}\n{prelude}\n{}",
                scripts::LIB,
                hook_script(keys, args, body)
            )),
            keys: keys.len(),
            args: args.len(),
        }
    }
}

/// A hook's script: `body` becomes a function of one job's id, payload, due time and
/// named keys and arguments, called for each job in turn; the answers come back in order.
/// The jobs the bodies stored are queued together at the end (one command, one wake-up); with
/// more than one job, whether each is held is read with one command before the first
/// (`prefetch_held`) and their payloads are written with one at the end, so a job's own push
/// costs no command. ARGV: now, then per job its id, payload, due time and arguments; KEYS:
/// the queue's, then per job its keys.
fn hook_script(keys: &[&str], args: &[&str], body: &str) -> String {
    let queue_keys = crate::keys::LUA_NAMES.len();
    let params: Vec<&str> = keys.iter().chain(args).copied().collect();
    let mut call: Vec<String> = vec![
        "ARGV[a]".into(),
        "ARGV[a + 1]".into(),
        "tonumber(ARGV[a + 2])".into(),
    ];
    call.extend((0..keys.len()).map(|i| format!("KEYS[k + {i}]")));
    call.extend((0..args.len()).map(|i| format!("ARGV[a + {}]", 3 + i)));
    let mut out = String::from(
        "local now = tonumber(ARGV[1])\nlocal function one(job_id, job_payload, job_due",
    );
    for p in &params {
        out.push_str(", ");
        out.push_str(p);
    }
    out.push_str(")\nlocal function push_this_job() return store_job(job_id, job_payload, job_due, now) end\n");
    out.push_str(body);
    out.push_str(&format!(
        "\nend\nlocal per, out, ids = {per}, {{}}, {{}}\nlocal jobs = (#ARGV - 1) / per\nfor j = 0, jobs - 1 do\n  ids[j + 1] = ARGV[2 + j * per]\nend\nif jobs > 1 then\n  prefetch_held(ids)\nend\nfor j = 0, jobs - 1 do\n  local a, k = 2 + j * per, {first_key} + j * {nkeys}\n  out[j + 1] = one({call})\nend\nenqueue_staged()\nreturn out\n",
        per = 3 + args.len(),
        first_key = queue_keys + 1,
        nkeys = keys.len(),
        call = call.join(", "),
    ));
    out
}

/// One job of [`Queue::push_many_with`] with the hook's keys and arguments for it.
#[derive(Debug, Clone)]
pub struct HookedJob<T> {
    /// The job.
    pub job: Job<T>,
    /// Its keys, in the order the hook named them.
    pub keys: Vec<String>,
    /// Its arguments, in the order the hook named them.
    pub args: Vec<String>,
}

impl<T: Serialize> Queue<T> {
    /// Pushes one job; returns false if its id was already waiting, scheduled, running or dead.
    /// Pushes made while another is in flight share the next script (one task per queue runs
    /// them), so a push under load costs a fraction of a script.
    pub async fn push(&self, job: Job<T>) -> Result<bool, QueueError> {
        let payload = serde_json::to_string(&job.args)?;
        match self
            .shared
            .pusher()
            .call((job.id, payload, job.due_ms))
            .await
        {
            Ok(pushed) => Ok(pushed),
            Err(BatchError::Failed(e)) => Err(QueueError::Shared(e)),
            Err(BatchError::Stopped) => Err(QueueError::Stopped),
        }
    }

    /// Pushes many jobs, up to 1,000 per script and round trip; one flag per job, as for
    /// [`Queue::push`] (an id repeated within `jobs` is pushed once).
    pub async fn push_many(&self, jobs: &[Job<T>]) -> Result<Vec<bool>, QueueError> {
        let mut pushed = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(PUSH_CHUNK) {
            let encoded = chunk
                .iter()
                .map(|job| {
                    Ok((
                        job.id.as_str(),
                        serde_json::to_string(&job.args)?,
                        job.due_ms,
                    ))
                })
                .collect::<Result<Vec<_>, QueueError>>()?;
            pushed.extend(push_encoded(&self.shared, &encoded).await?);
        }
        Ok(pushed)
    }

    /// Runs `hook` with `job` and the caller's own keys and arguments, in the order the hook
    /// named them (see [`PushHook`]).
    pub async fn push_with<R: FromRedisValue>(
        &self,
        hook: &PushHook,
        job: Job<T>,
        keys: &[&str],
        args: &[&str],
    ) -> Result<R, QueueError> {
        let job = HookedJob {
            job,
            keys: keys.iter().map(|k| k.to_string()).collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        let answer: Option<R> = self.push_many_with(hook, &[job]).await?.pop();
        match answer {
            Some(answer) => Ok(answer),
            // A body that answered nil: the batch's array ends before it.
            None => Ok(R::from_redis_value(redis::Value::Nil).map_err(redis::RedisError::from)?),
        }
    }
}

impl<T: Serialize> Queue<T> {
    /// Runs `hook` once per job, all in one script and one round trip; one answer per job, in
    /// order. Every key must live in the queue's slot (under its tag).
    pub async fn push_many_with<R: FromRedisValue>(
        &self,
        hook: &PushHook,
        jobs: &[HookedJob<T>],
    ) -> Result<Vec<R>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = scripts::invocation(&hook.script, self.keys());
        inv.arg(now_ms());
        for j in jobs {
            if j.keys.len() != hook.keys || j.args.len() != hook.args {
                return Err(QueueError::HookArity {
                    keys: (j.keys.len(), hook.keys),
                    args: (j.args.len(), hook.args),
                });
            }
            for key in &j.keys {
                inv.key(key);
            }
            inv.arg(&j.job.id)
                .arg(serde_json::to_string(&j.job.args)?)
                .arg(j.job.due_ms);
            for arg in &j.args {
                inv.arg(arg);
            }
        }
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }
}

/// Most jobs per push script: Lua's `unpack` takes a few thousand values at most.
const PUSH_CHUNK: usize = 1_000;

/// Most single pushes that share one script.
const PUSHER_BATCH: usize = 128;

/// Runs the push script for encoded jobs (id, payload, due ms): one flag per job.
async fn push_encoded<I: AsRef<str>>(
    shared: &Shared,
    jobs: &[(I, String, u64)],
) -> Result<Vec<bool>, QueueError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut inv = scripts::invocation(&scripts::PUSH_MANY, &shared.keys);
    inv.arg(now_ms());
    for (id, payload, due_ms) in jobs {
        inv.arg(id.as_ref()).arg(payload).arg(*due_ms);
    }
    let pushed: Vec<u8> = inv.invoke_async(&mut shared.conn.clone()).await?;
    shared.count_pushed(pushed.iter().filter(|p| **p == 1).count() as u64);
    Ok(pushed.into_iter().map(|p| p == 1).collect())
}

/// A job as a push script takes it: id, payload, due time (ms).
pub(crate) type EncodedJob = (String, String, u64);

/// The batcher behind [`Queue::push`]: one script at a time, each for every push that arrived
/// meanwhile (up to [`PUSHER_BATCH`]). Idle, a push is a script of its own; under load,
/// concurrent pushes share the round trip and the commands that queue and wake (the Redis
/// commands per transaction were dominated by single pushes, measured).
pub(crate) type Pusher = Batcher<EncodedJob, bool, QueueError>;

/// Starts the pusher of a queue. It holds only a weak reference, so dropping the last queue
/// handle (and with it the pusher's sender) ends its task.
pub(crate) fn spawn_pusher(shared: &Arc<Shared>) -> Pusher {
    let shared: Weak<Shared> = Arc::downgrade(shared);
    Batcher::spawn(PUSHER_BATCH, move |jobs: Vec<EncodedJob>| {
        let shared = shared.upgrade();
        async move {
            let shared = shared.ok_or(QueueError::Stopped)?;
            push_encoded(&shared, &jobs).await
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_names_must_be_free_lua_identifiers() {
        assert!(is_lua_name("entry") && is_lua_name("ttl_ms") && is_lua_name("_x1"));
        assert!(
            !is_lua_name("1x")
                && !is_lua_name("ttl-ms")
                && !is_lua_name("")
                && !is_lua_name("Entry")
        );
        let hook = PushHook::new(&["entry"], &["amount", "ttl_ms"], "return push_this_job()");
        assert_eq!((hook.keys, hook.args), (1, 2));
        assert!(std::panic::catch_unwind(|| PushHook::new(&["ready"], &[], "")).is_err());
    }
}
