//! Whether a 201 survives a Redis crash: that needs `appendonly yes` with `appendfsync always`
//! (Redis then fsyncs the AOF before replying, once per event loop for all clients). Checked at
//! start-up; reported in `/readyz`.

use std::fmt;

use service::misconfiguration::{Dependency, diagnose, report_wait, text};

/// How the producer learns whether Redis is durable (`REDIS_DURABILITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityMode {
    /// Read `appendonly` and `appendfsync` with `CONFIG GET`.
    Check,
    /// Take durability as the provider's promise, for managed Redis whose ACL forbids `CONFIG`.
    Assume,
}

/// What the producer knows about Redis's durability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    /// AOF on, fsync before every reply.
    Durable,
    /// Asserted by the operator (`REDIS_DURABILITY=assume`), not checked.
    Assumed,
    /// Acknowledged writes can be lost in a crash; the reason says which setting.
    NotDurable(String),
    /// Could not tell (`CONFIG` not permitted, say).
    Unknown(String),
    /// Redis did not answer.
    Unreachable(String),
}

impl Durability {
    /// Whether a 201 is known to survive a Redis crash.
    pub fn is_durable(&self) -> bool {
        matches!(self, Durability::Durable | Durability::Assumed)
    }

    /// Learns Redis's durability as `mode` says, waiting up to `wait` for Redis to answer:
    /// started beside its Redis (compose starts everything at once), the producer must not
    /// settle for "unknown".
    pub async fn learn(
        mode: DurabilityMode,
        conn: &mut queue::RedisConnection,
        wait: std::time::Duration,
    ) -> Self {
        if mode == DurabilityMode::Assume {
            return Durability::Assumed;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match Self::check(conn).await {
                Durability::Unreachable(why) if tokio::time::Instant::now() < deadline => {
                    let waiting = "waiting for Redis to check its durability";
                    let pause = report_wait(Dependency::Redis, &why, waiting);
                    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause))
                        .await;
                }
                known => return known,
            }
        }
    }

    /// Decides from `appendonly` and `appendfsync`.
    pub fn from_settings(appendonly: &str, appendfsync: &str) -> Self {
        match (appendonly, appendfsync) {
            ("yes", "always") => Durability::Durable,
            ("yes", other) => Durability::NotDurable(format!(
                "appendfsync is {other:?}, not \"always\": up to a second of accepted transactions can be lost"
            )),
            (other, _) => Durability::NotDurable(format!(
                "appendonly is {other:?}: accepted transactions live only in memory"
            )),
        }
    }

    /// Reads the settings with `CONFIG GET` on every primary (a cluster is as durable as its
    /// least durable primary).
    pub async fn check(conn: &mut queue::RedisConnection) -> Self {
        let mut get = redis::cmd("CONFIG");
        get.arg("GET").arg("appendonly").arg("appendfsync");
        match conn
            .on_every_primary::<std::collections::HashMap<String, String>>(&get)
            .await
        {
            Ok(primaries) if !primaries.is_empty() => primaries
                .iter()
                .map(|settings| {
                    let setting = |name: &str| settings.get(name).cloned().unwrap_or_default();
                    Self::from_settings(&setting("appendonly"), &setting("appendfsync"))
                })
                .find(|d| !d.is_durable())
                .unwrap_or(Durability::Durable),
            Ok(_) => Durability::Unknown("no primary answered".into()),
            Err(e)
                if e.is_io_error()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || diagnose(Dependency::Redis, &text(&e)).is_some() =>
            {
                Durability::Unreachable(format!("Redis did not answer: {}", text(&e)))
            }
            Err(e) => Durability::Unknown(format!("cannot read the Redis configuration: {e}")),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Durable => f.write_str("durable (appendonly yes, appendfsync always)"),
            Durability::Assumed => {
                f.write_str("assumed durable (REDIS_DURABILITY=assume): asserted, not checked")
            }
            Durability::NotDurable(why) => write!(f, "not durable: {why}"),
            Durability::Unknown(why) | Durability::Unreachable(why) => write!(f, "unknown: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aof_with_fsync_always_is_durable() {
        assert!(Durability::from_settings("yes", "always").is_durable());
        assert!(!Durability::from_settings("yes", "everysec").is_durable());
        assert!(!Durability::from_settings("no", "always").is_durable());
        assert!(Durability::Assumed.is_durable());
        assert!(Durability::Assumed.to_string().contains("not checked"));
    }
}
