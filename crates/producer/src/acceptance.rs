//! A POST's acceptance, batched: concurrent POSTs share one reservation script in Redis and,
//! for the ids that came from their clients, one row look-up in Postgres, run side by side.
//!
//! The look-up rides with the reservation rather than being batched on its own: a batcher of
//! its own sent a statement whenever its last one came back, so under load it sent two to
//! three statements per reservation script, each paid in full by Postgres and by this
//! process for a handful of ids.

use std::{convert::Infallible, sync::Arc, time::Duration};

use domain::{TransactionId, jobs::CreateJob};
use id_cache::{IdCache, IdCacheError, Reservation, Reserve};
use queue::{Queue, batch::Batcher};
use store::{AgedRow, Store};
use tokio::sync::Mutex;

/// One POST to accept.
pub struct Acceptance {
    /// Its reservation.
    pub reserve: Reserve,
    /// Whether Postgres is asked for its id's row (an id made here just now has none).
    pub look_up: bool,
}

/// What its batch found for one POST.
pub struct Outcome {
    /// Its id's row, if it was asked for, exists, and Postgres answered within
    /// [`ROW_CHECK_TIMEOUT`]; otherwise the id cache decides alone.
    pub row: Option<AgedRow>,
    /// Its reservation, or the error of the batch's whole script (which may still have run).
    pub reserved: Result<Result<Reservation, IdCacheError>, Arc<IdCacheError>>,
}

/// The acceptance batcher: its batches never fail as a whole (each POST gets an [`Outcome`]).
pub type Acceptances = Batcher<Acceptance, Outcome, Infallible>;

/// Most POSTs per batch.
const MAX_BATCH: usize = 64;

/// Batches running at once. The next batch reaches Redis while it runs and fsyncs the last, so
/// Redis never waits on this process between turns. With AOF `always`, one batch in flight was
/// about a tenth slower, and three or four no faster than two: each batch still took a turn
/// and an fsync of its own (measured with txn-bench).
const IN_FLIGHT: usize = 2;

/// Postgres connections the look-ups keep: one per batch in flight (see [`Store::held`]).
pub const KEPT_CONNECTIONS: u32 = IN_FLIGHT as u32;

/// How long a POST waits for Postgres to say whether its id is known: acceptance never waits
/// on Postgres for longer.
const ROW_CHECK_TIMEOUT: Duration = Duration::from_millis(200);

/// Starts the batcher: reservations pushed to `create` through `cache`, rows read from `store`.
pub fn spawn(cache: IdCache, create: Queue<CreateJob>, store: &Store) -> Acceptances {
    let lookups = Arc::new(Lookups {
        held: (0..IN_FLIGHT).map(|_| Mutex::new(store.held())).collect(),
    });
    Batcher::spawn_concurrent(MAX_BATCH, IN_FLIGHT, move |batch: Vec<Acceptance>| {
        let (cache, create, lookups) = (cache.clone(), create.clone(), lookups.clone());
        async move { Ok(accept_many(&cache, &create, lookups, batch).await) }
    })
}

/// Runs one batch: its reservations and its look-ups at the same time; one outcome per POST.
async fn accept_many(
    cache: &IdCache,
    create: &Queue<CreateJob>,
    lookups: Arc<Lookups>,
    batch: Vec<Acceptance>,
) -> Vec<Outcome> {
    let asked: Vec<TransactionId> = batch
        .iter()
        .filter(|a| a.look_up)
        .map(|a| a.reserve.job.id)
        .collect();
    let (look_ups, reserves): (Vec<bool>, Vec<Reserve>) =
        batch.into_iter().map(|a| (a.look_up, a.reserve)).unzip();
    let (rows, reserved) = tokio::join!(lookups.rows(asked), cache.reserve_many(create, &reserves));
    // `reserve_many` answers each reservation it was given, in order.
    let reserved: Vec<_> = match reserved {
        Ok(each) => each.into_iter().map(Ok).collect(),
        Err(e) => {
            let e = Arc::new(e);
            reserves.iter().map(|_| Err(e.clone())).collect()
        }
    };
    let mut rows = rows.into_iter();
    look_ups
        .into_iter()
        .zip(reserved)
        .map(|(looked_up, reserved)| Outcome {
            row: if looked_up {
                rows.next().flatten()
            } else {
                None
            },
            reserved,
        })
        .collect()
}

/// The look-ups' kept connections, one per batch in flight.
struct Lookups {
    held: Vec<Mutex<Store>>,
}

impl Lookups {
    /// The rows of `ids`, one answer per id, in order; all `None` (with a warning) if Postgres
    /// failed or did not answer within [`ROW_CHECK_TIMEOUT`].
    async fn rows(self: Arc<Self>, ids: Vec<TransactionId>) -> Vec<Option<AgedRow>> {
        if ids.is_empty() {
            return Vec::new();
        }
        let count = ids.len();
        // The statement runs on in its own task past the timeout, so that its kept connection
        // is never dropped halfway through a statement.
        let statement = tokio::spawn(async move {
            let store = self.free().await;
            store.get_many_aged(&ids).await
        });
        match tokio::time::timeout(ROW_CHECK_TIMEOUT, statement).await {
            Ok(Ok(Ok(rows))) => return rows,
            Ok(Ok(Err(e))) => {
                tracing::warn!(ids = count, error = %e, "Postgres could not say whether these POSTed ids are known; the id cache decides")
            }
            Ok(Err(e)) => {
                tracing::error!(ids = count, error = %e, "the row look-up task failed; the id cache decides")
            }
            Err(_) => tracing::warn!(
                ids = count,
                "Postgres too slow to say whether these POSTed ids are known; the id cache decides"
            ),
        }
        vec![None; count]
    }

    /// A kept connection no other look-up is using, waiting for one if all are.
    async fn free(&self) -> tokio::sync::MutexGuard<'_, Store> {
        for held in &self.held {
            if let Ok(store) = held.try_lock() {
                return store;
            }
        }
        self.held[0].lock().await
    }
}
