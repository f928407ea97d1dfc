//! `create`: insert the row (the first insert wins), then queue its submission — unless the
//! third party has already reported the outcome.

use apalis::prelude::{Attempt, BoxDynError};
use domain::{
    Source, Status,
    jobs::{CreateJob, ProcessFrom, ProcessJob},
};
use store::NewRow;

use super::Ctx;

/// Inserts the transaction if absent and queues `process:<id>` unless it is already submitted.
/// A row that already existed may have been submitted by an earlier attempt whose job was lost,
/// so that submission asks the third party first.
///
/// A webhook can come before the row (the consumer was down): the producer wrote its status
/// into the id cache, which is read first. Such a row is inserted owing no submission and
/// finished with that status at once, so a transaction whose outcome is known is never
/// submitted. (The webhook's own apply job then finds it done.)
pub async fn create(job: CreateJob, _: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    let known = p
        .cache
        .reported(&mut p.redis.clone(), &job.id)
        .await?
        .filter(|status| status.is_terminal());
    let row = NewRow {
        id: job.id,
        money: job.money,
        client_app: job.client_app,
        owes_submission: known.is_none(),
        trace: job.trace.clone(),
    };
    let inserted = p.writes.inserts.call(row).await?;
    // The row is the lasting memory of the id now. Until this job is acked, the queue holds it
    // and Redis knows the id by it; the entry written here bridges the margin after that, for
    // POSTs whose look-up ran before the insert. (A row inserted earlier had its entry written
    // then: writing it again now could bring back a status the row has left.)
    if inserted && let Err(e) = p.cache.row_created(&mut p.redis.clone(), &job).await {
        tracing::warn!(txn_id = %job.id, error = %e, "id cache entry of a new row not written");
    }
    if let Some(status) = known {
        return finish_known(&p, &job, status).await;
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
    let next = ProcessJob {
        id: job.id,
        from,
        trace: service::trace::traceparent(),
    };
    p.queues.push(next).await?;
    Ok(())
}

/// Finishes a transaction whose outcome the third party reported before its row existed
/// (again harmless if an earlier attempt did).
async fn finish_known(p: &Ctx, job: &CreateJob, status: Status) -> Result<(), BoxDynError> {
    if p.finish(job.id, status, Source::Webhook).await? {
        tracing::info!(txn_id = %job.id, %status, "outcome reported before the row: never submitted");
    }
    Ok(())
}
