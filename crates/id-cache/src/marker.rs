//! Redis data-loss detection. A Redis without persistence forgets everything when it
//! restarts, and a flush does the same while it runs; neither says so. A marker key, written
//! by whichever process first finds it missing and remembered by every process, tells: when
//! it is gone, or carries another token than the one this process saw (another process wrote
//! it again after a loss), Redis lost data.

use std::{future::Future, sync::LazyLock, time::Duration};

use redis::{Script, aio::ConnectionLike};
use tokio_util::sync::CancellationToken;

/// Reads the marker, writing `ARGV[1]` if it is missing. KEYS: the marker. Returns {1, token}
/// if it was there, {0, token} if it was just written.
static ENSURE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/marker_ensure.lua")));

/// What one look at the marker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// This process's first look; `written` if the marker was missing and it wrote it (a new
    /// Redis, or one that lost its data before this process started: only the caller can tell).
    First {
        /// Whether the marker was missing.
        written: bool,
    },
    /// As before.
    Unchanged,
    /// Gone or replaced since the last look: Redis lost data.
    Lost,
}

/// The marker as one process sees it.
#[derive(Debug)]
pub struct Marker {
    key: String,
    prefix: String,
    seen: Option<String>,
}

impl Marker {
    /// The marker of deployment `prefix` (under the `create` queue's hash tag).
    pub fn new(prefix: &str) -> Self {
        Self {
            key: format!(
                "{}:marker",
                queue::Keys::new(prefix, domain::QueueName::Create.as_str()).tag()
            ),
            prefix: prefix.to_string(),
            seen: None,
        }
    }

    /// The marker's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Looks at the marker (writing it if missing) and compares it with the last look.
    pub async fn observe<C: ConnectionLike>(
        &mut self,
        conn: &mut C,
    ) -> redis::RedisResult<Observation> {
        // A fresh token on every write: a process that wrote the marker before must not
        // restore the very token the others remember, or they would miss the loss.
        let (existed, token): (u8, String) = ENSURE
            .key(&self.key)
            .arg(uuid::Uuid::new_v4().to_string())
            .invoke_async(conn)
            .await?;
        let observation = match &self.seen {
            None => Observation::First {
                written: existed == 0,
            },
            Some(seen) if existed == 1 && *seen == token => Observation::Unchanged,
            Some(_) => Observation::Lost,
        };
        self.seen = Some(token);
        Ok(observation)
    }
}

/// Looks at the marker every `interval` until `stop`. A loss is logged once, at error, counted
/// in `redis_data_loss_total`, and handed to `on_loss`. A marker missing at the first look is a
/// loss only if `missing_at_start_is_loss` says so (the consumer asks Postgres whether there
/// are transactions Redis should know of).
pub async fn watch<C, S, SFut, L>(
    mut conn: C,
    mut marker: Marker,
    interval: Duration,
    stop: CancellationToken,
    missing_at_start_is_loss: S,
    on_loss: L,
) where
    C: ConnectionLike + Send,
    S: Fn() -> SFut,
    SFut: Future<Output = bool>,
    L: Fn(),
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let lost = match marker.observe(&mut conn).await {
            Ok(Observation::Lost) => true,
            Ok(Observation::First { written: true }) => missing_at_start_is_loss().await,
            Ok(_) => false,
            // Unreachable is not lost: the next look tells.
            Err(e) => {
                tracing::debug!(error = %e, "Redis marker not read");
                false
            }
        };
        if lost {
            tracing::error!(
                marker = marker.key(),
                "REDIS LOST DATA (restarted without persistence, or flushed): jobs and id-cache \
                 entries written before are gone; work recorded in Postgres is swept again, \
                 transactions accepted but not yet created are lost"
            );
            metrics::counter!("redis_data_loss_total", "queue_prefix" => marker.prefix.clone())
                .increment(1);
            on_loss();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn redis() -> redis::aio::MultiplexedConnection {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        redis::Client::open(url)
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("redis")
    }

    /// Deletes the marker's key, as a Redis that lost its data would.
    async fn lose(conn: &mut redis::aio::MultiplexedConnection, marker: &Marker) {
        let _: () = redis::cmd("DEL")
            .arg(marker.key())
            .query_async(conn)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_marker_gone_or_replaced_is_a_loss_and_each_process_sees_it_once() {
        use Observation::{First, Lost, Unchanged};
        let mut conn = redis().await;
        let prefix = format!("marker-test-{}", uuid::Uuid::new_v4().simple());
        let (mut first, mut second) = (Marker::new(&prefix), Marker::new(&prefix));
        assert_eq!(
            first.observe(&mut conn).await.unwrap(),
            First { written: true }
        );
        assert_eq!(
            second.observe(&mut conn).await.unwrap(),
            First { written: false }
        );
        assert_eq!(first.observe(&mut conn).await.unwrap(), Unchanged);

        lose(&mut conn, &first).await;
        // The first to look writes it again; the other sees another token: both see the loss,
        // once — whichever wrote it first.
        assert_eq!(first.observe(&mut conn).await.unwrap(), Lost);
        assert_eq!(second.observe(&mut conn).await.unwrap(), Lost);
        assert_eq!(first.observe(&mut conn).await.unwrap(), Unchanged);
        assert_eq!(second.observe(&mut conn).await.unwrap(), Unchanged);
        lose(&mut conn, &first).await;
        assert_eq!(second.observe(&mut conn).await.unwrap(), Lost);
        assert_eq!(first.observe(&mut conn).await.unwrap(), Lost);
        lose(&mut conn, &first).await;
    }
}
