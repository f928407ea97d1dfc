//! A caller's script run with the queue's library in scope, so it can read what the queue holds
//! (`held_payload`) beside keys of its own, atomically and in one round trip.

use redis::{FromRedisValue, Script};

use crate::{Queue, QueueError, push::check_names, scripts};

/// A caller's Lua script with the queue's library in scope (see [`crate::PushHook`] for the
/// rules of names). Its keys must share the queue's hash tag ([`crate::Keys::tag`]).
#[derive(Debug, Clone)]
pub struct QueueScript {
    script: Script,
    keys: usize,
    args: usize,
}

impl QueueScript {
    /// Wraps `body` (Lua), which names its keys `keys` and its arguments `args`.
    ///
    /// # Panics
    /// As [`crate::PushHook::new`]: a name that is not a free lower-case Lua identifier.
    pub fn new(keys: &[&str], args: &[&str], body: &str) -> Self {
        check_names(keys, args);
        let first_key = crate::keys::LUA_NAMES.len() + 1;
        let mut text = format!("{}\n", scripts::LIB);
        for (i, key) in keys.iter().enumerate() {
            text.push_str(&format!("local {key} = KEYS[{}]\n", first_key + i));
        }
        for (i, arg) in args.iter().enumerate() {
            text.push_str(&format!("local {arg} = ARGV[{}]\n", i + 1));
        }
        text.push_str(body);
        Self {
            script: Script::new(&text),
            keys: keys.len(),
            args: args.len(),
        }
    }
}

impl<T> Queue<T> {
    /// Runs `script` with the caller's keys and arguments, in the order it named them.
    pub async fn run_script<R: FromRedisValue>(
        &self,
        script: &QueueScript,
        keys: &[&str],
        args: &[&str],
    ) -> Result<R, QueueError> {
        if keys.len() != script.keys || args.len() != script.args {
            return Err(QueueError::HookArity {
                keys: (keys.len(), script.keys),
                args: (args.len(), script.args),
            });
        }
        let mut inv = scripts::invocation(&script.script, self.keys());
        for key in keys {
            inv.key(*key);
        }
        for arg in args {
            inv.arg(*arg);
        }
        Ok(inv.invoke_async(&mut self.conn()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Job, QueueConfig, RedisSettings};

    #[tokio::test]
    async fn a_script_reads_a_held_job_beside_its_own_key_and_is_called_as_named() {
        let prefix = format!("qtest-script-{}", uuid::Uuid::new_v4().simple());
        let queue: Queue<u32> = Queue::connect(
            &RedisSettings::url(&testkit::shared_redis_url()),
            QueueConfig::new(prefix, "script"),
        )
        .expect("queue");
        let script = QueueScript::new(
            &["mine"],
            &["wanted"],
            "redis.call('SET', mine, 'seen')\nreturn held_payload(wanted)",
        );
        let mine = format!("{}:mine", queue.keys().tag());

        let nothing: Option<String> = queue
            .run_script(&script, &[&mine], &["job-1"])
            .await
            .expect("run");
        assert_eq!(nothing, None, "no job is held yet");
        queue.push(Job::now("job-1", 42)).await.expect("push");
        let held: Option<String> = queue
            .run_script(&script, &[&mine], &["job-1"])
            .await
            .expect("run");
        assert_eq!(held.as_deref(), Some("42"));
        let seen: Option<String> = redis::cmd("GET")
            .arg(&mine)
            .query_async(&mut queue.conn())
            .await
            .expect("GET");
        assert_eq!(seen.as_deref(), Some("seen"));

        let wrong = queue
            .run_script::<Option<String>>(&script, &[], &["job-1"])
            .await;
        assert!(
            matches!(wrong, Err(QueueError::HookArity { .. })),
            "{wrong:?}"
        );
        assert!(std::panic::catch_unwind(|| QueueScript::new(&["payloads"], &[], "")).is_err());
        let _: () = redis::cmd("DEL")
            .arg(&mine)
            .arg(queue.keys().in_script_order().to_vec())
            .query_async(&mut queue.conn())
            .await
            .expect("DEL");
    }
}
