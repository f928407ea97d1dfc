//! `create`: insert the row (the first insert wins), then queue its submission.

use apalis::prelude::{Attempt, BoxDynError};
use domain::jobs::{CreateJob, ProcessFrom, ProcessJob};
use store::NewRow;

use super::Ctx;

/// Inserts the transaction if absent and queues `process:<id>` unless it is already submitted.
/// A row that already existed may have been submitted by an earlier attempt whose job was lost,
/// so that submission asks the third party first.
pub async fn create(job: CreateJob, _: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    let row = NewRow {
        id: job.id,
        money: job.money,
        client_app: job.client_app,
    };
    let inserted = p.writes.inserts.call(row).await?;
    // The row is the lasting memory of the id now: the cache keeps it only for the margin.
    if let Err(e) = p.cache.row_created(&mut p.redis.clone(), &job.id).await {
        tracing::warn!(txn_id = %job.id, error = %e, "id cache entry not shortened");
    }
    let from = if inserted {
        ProcessFrom::Insert
    } else {
        let owed = p
            .store
            .get(job.id)
            .await?
            .is_some_and(|row| row.owes_submission());
        if !owed {
            return Ok(());
        }
        ProcessFrom::Recovery
    };
    let next = ProcessJob { id: job.id, from };
    p.queues.push(next).await?;
    Ok(())
}
