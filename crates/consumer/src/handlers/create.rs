//! `create`: insert the row (the first insert wins), then queue its submission.

use apalis::prelude::BoxDynError;
use queue::Job;
use txn_core::{
    jobs::{CreateJob, ProcessFrom, ProcessJob},
    store::NewRow,
};

use super::Ctx;

/// Inserts the transaction if absent and queues `process:<id>` unless it is already submitted.
/// A row that already existed may have been submitted by an earlier attempt whose job was lost,
/// so that submission asks the third party first.
pub async fn create(job: CreateJob, p: Ctx) -> Result<(), BoxDynError> {
    let row = NewRow {
        id: job.id,
        money: job.money,
    };
    let from = if p.writes.inserts.call(row).await? {
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
    p.process.push(Job::now(next.job_id(), next)).await?;
    Ok(())
}
