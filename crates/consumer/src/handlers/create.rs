//! `create`: insert the row (the first insert wins), then queue its submission.

use apalis::prelude::BoxDynError;
use queue::Job;
use txn_core::{
    jobs::{CreateJob, ProcessJob},
    store::NewRow,
};

use super::Ctx;

/// Inserts the transaction if absent and queues `process:<id>` unless it is already submitted.
/// A row that already existed may have been submitted by an earlier attempt whose job was lost,
/// so that submission asks the third party first.
pub async fn create(job: CreateJob, p: Ctx) -> Result<(), BoxDynError> {
    let row = NewRow {
        id: job.id,
        amount: job.amount,
        currency: job.currency.clone(),
    };
    let inserted = p.writes.inserts.call(row).await?;
    if !inserted {
        let owed = p
            .store
            .get(job.id)
            .await?
            .is_some_and(|row| !row.status.is_terminal() && row.submitted_at.is_none());
        if !owed {
            return Ok(());
        }
    }
    let next = ProcessJob {
        id: job.id,
        recovered: !inserted,
        // A row inserted just now is pending and unsubmitted: its first attempt needs no read.
        money: inserted.then(|| (job.amount, job.currency.clone())),
    };
    p.process.push(Job::now(next.job_id(), next)).await?;
    Ok(())
}
