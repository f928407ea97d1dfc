//! A connection kept by a caller that sends its statements one after another (a batcher), so
//! each statement is one round trip to Postgres.
//!
//! Through the pool, sqlx pings a connection as it hands it out and again as it takes it back:
//! three round trips per statement. The pipeline's batched statements are most of what
//! Postgres does, so the batchers keep a connection each (see [`Store::held`]); the checks they
//! skip are made where they matter: a connection that sat idle is pinged before it is used
//! again, and one that failed a statement goes back to the pool, which closes it if it is
//! broken.
//!
//! [`Store::held`]: crate::Store::held

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use sqlx::{Connection, PgPool, Postgres, pool::PoolConnection};

/// Idle longer than this, a kept connection is pinged before its next statement: Postgres may
/// have restarted, or something between may have dropped it, while nothing was sent.
pub(crate) const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Kept longer than this, a connection goes back to the pool before its next statement, so the
/// pool's own rules (its connections' maximum lifetime) still apply to it.
const RETURN_AFTER: Duration = Duration::from_secs(60);

/// A connection taken for one statement; [`HeldConnection::keep`] it after a success.
#[derive(Debug)]
pub(crate) struct Taken {
    /// The connection.
    pub(crate) conn: PoolConnection<Postgres>,
    /// When it was taken from the pool.
    taken_at: Instant,
}

/// The kept connection and when it was last used.
#[derive(Debug)]
struct Kept {
    taken: Taken,
    used_at: Instant,
}

/// One caller's kept connection (none until its first statement, and after a failed one).
#[derive(Debug)]
pub(crate) struct HeldConnection {
    kept: Mutex<Option<Kept>>,
    check_if_idle_for: Duration,
}

impl HeldConnection {
    /// Keeps no connection yet; pings a kept one idle for `check_if_idle_for` before using it.
    pub(crate) fn new(check_if_idle_for: Duration) -> Self {
        Self {
            kept: Mutex::new(None),
            check_if_idle_for,
        }
    }

    /// The kept connection (pinged first if it sat idle), or one from the pool. Two callers at
    /// once (never from a batcher) get two connections; the second one kept replaces the first.
    pub(crate) async fn take(&self, pool: &PgPool) -> Result<Taken, sqlx::Error> {
        let kept = self.lock().take();
        if let Some(Kept { mut taken, used_at }) = kept {
            let alive = taken.taken_at.elapsed() < RETURN_AFTER
                && (used_at.elapsed() < self.check_if_idle_for || taken.conn.ping().await.is_ok());
            if alive {
                return Ok(taken);
            }
            // Dropped: back to the pool, which closes it if it is broken or past its lifetime.
        }
        Ok(Taken {
            conn: pool.acquire().await?,
            taken_at: Instant::now(),
        })
    }

    /// Keeps `taken` for the next statement.
    pub(crate) fn keep(&self, taken: Taken) {
        *self.lock() = Some(Kept {
            taken,
            used_at: Instant::now(),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        // The slot is only ever replaced whole, so a panic elsewhere cannot leave it half-set.
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
