//! The Postgres store: the record of transactions, their history and their notifications,
//! and the client apps with their keys; one module per table (`transactions`,
//! `notifications` with the delivery log, `clients`), one for the client-facing list of
//! transactions (`listing`) and one for the sweeper (`sweep`).
//!
//! Every write that implies follow-up work records it in the same statement (the outbox rule:
//! `next_attempt_at`, `next_poll_at`, or the `notifications` row), so the sweeper can redo
//! whatever a lost Redis job would have done. Those columns have no index, so the updates that
//! move a transaction on can be HOT; the sweeper finds work through `open_work` (see `sweep`).

#![deny(unsafe_code)]

use std::{str::FromStr, sync::Arc, time::Duration};

use domain::money::InvalidMoney;
use held::HeldConnection;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// The SQL form of [`TransactionRow::owes_submission`], for statements that must only touch
/// rows still owed a submission (a macro so it can be `concat!`ed into literal SQL).
/// The columns a [`TransactionRow`] is read from, in every statement that reads one.
macro_rules! transaction_columns_sql {
    () => {
        "id, status, amount, currency::text AS currency, submitted_at, next_attempt_at,
         poll_number, next_poll_at, poll_expired_at, created_at, updated_at, client_app_id,
         submit_failures"
    };
}

macro_rules! owes_submission_sql {
    () => {
        "status = 'pending' AND submitted_at IS NULL"
    };
}

/// The one rule that keeps `open_work` a lower bound of a transaction's due times: a statement
/// that makes work due at `at` moves its `check_at` back to `at` if that is earlier. `$due` is
/// a query of `(id, at)` rows (a macro so it can be `concat!`ed into literal SQL; an index
/// probe that writes nothing when `check_at` is already earlier, as it is on the hot path).
macro_rules! lower_check_sql {
    ($due:literal) => {
        concat!(
            "UPDATE open_work o SET check_at = d.at FROM (",
            $due,
            ") AS d(id, at) WHERE o.id = d.id AND o.check_at > d.at"
        )
    };
}

/// Runs `$query` with `fetch_all` on `$store`'s kept connection if it keeps one (see
/// [`Store::held`]), else on the pool; `?` on failure. A connection whose statement failed is
/// not kept: it goes back to the pool, which closes it if it is broken.
macro_rules! fetch_all {
    ($store:expr, $query:expr) => {{
        let query = $query;
        match &$store.held {
            None => query.fetch_all(&$store.pool).await?,
            Some(held) => {
                let mut taken = held.take(&$store.pool).await?;
                let rows = query.fetch_all(&mut *taken.conn).await?;
                held.keep(taken);
                rows
            }
        }
    }};
}

mod clients;
mod held;
mod listing;
mod notifications;
mod rows;
mod sweep;
#[cfg(test)]
mod tests;
mod transactions;

pub use clients::{ClientApp, ClientsError, Destination, KeyGrant, KeyInfo, NewClientApp};
pub use listing::ListFilter;
pub use rows::{
    AgedRow, AttemptRecord, Delivered, DueNotification, DuePoll, DueSubmission, Failing,
    HistoryEntry, NewRow, NotificationDetail, NotificationRow, OwedNotification, StatusChange,
    Submitted, TransactionRow,
};
pub use sweep::Overdue;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres failed or could not be reached.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds a value this code does not know (a status, say).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<InvalidMoney> for StoreError {
    fn from(e: InvalidMoney) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Handle to the Postgres store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    /// The connection the batched statements keep (see [`Store::held`]); none: the pool's.
    held: Option<Arc<HeldConnection>>,
}

/// Whether `url` is a connection URL the store can use, every option included (for example
/// `sslmode`): what a start would refuse is refused here, before anything connects.
pub fn check_url(url: &str) -> Result<(), StoreError> {
    PgConnectOptions::from_str(url)?;
    Ok(())
}

/// How every connection plans: each statement once (a generic plan, kept while its tables do
/// not change much: Postgres plans again after an analyze), with sequential scans priced out.
/// The statements of the pipeline find their rows through an index (batches by `unnest` of
/// ids, due times by `open_work`'s index), so a plan made while a table was small stays an
/// index probe as the table grows. Planning each execution with its values was a third of
/// Postgres's time per transaction (measured with txn-bench). No JIT: a statement that must
/// scan anyway (a small table, an optional filter) carries the scan's penalty in its cost,
/// which would otherwise pass the JIT threshold and compile it on every run (115 ms measured).
const PLANNING: &[(&str, &str)] = &[
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
    ("jit", "off"),
];

impl Store {
    /// A pool of at most `max_connections` to `url`; connects lazily, so this works while
    /// Postgres is down (calls then fail with [`StoreError::Database`]).
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.options(PLANNING.iter().copied());
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options);
        Ok(Self::from_pool(pool))
    }

    /// A store over an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool, held: None }
    }

    /// This store with a connection of its own for the batched statements (the `_many`
    /// writes and [`Store::get_many_aged`]), for a caller that sends them one at a time: each
    /// is then one round trip, not three (see `held`). Its other statements use the pool.
    pub fn held(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            held: Some(Arc::new(HeldConnection::new(held::CHECK_IF_IDLE_FOR))),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the migrations in `migrations/` (under sqlx's advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Checks the connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether any transaction is recorded (a Redis that knows nothing has then lost data).
    pub async fn has_transactions(&self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM transactions)")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
