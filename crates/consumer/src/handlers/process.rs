//! `process`: submit the transaction to the third party exactly once.
//!
//! A 504 or a timeout may have created it there, so every attempt after the first (and every
//! job the sweeper re-pushed) asks before submitting. 409 means the third party has it:
//! success. Transient failures are retried as re-scheduled jobs, never before the third
//! party's `Retry-After`; a permanent refusal or exhausted retries end in `failed` — but only
//! if the third party does not have it. Refused credentials (401/403) never fail a
//! transaction: they are retried on the backoff schedule until someone fixes the key.

use apalis::prelude::{Attempt, BoxDynError, RetryAfterError};
use domain::{
    Source, Status, TransactionId,
    answer::CallError,
    jobs::{ProcessFrom, ProcessJob},
};
use outbound::thirdparty::Lookup;

use super::{Ctx, after};

/// Submits `job.id` unless it is terminal or already submitted.
pub async fn process(job: ProcessJob, attempt: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    let id = job.id;
    let attempt = attempt.current().max(1) as u32;
    let recovered = job.from == ProcessFrom::Recovery;
    // The row decides, never the job's payload: a webhook may have made the transaction
    // terminal since the job was pushed, and a terminal transaction is never submitted. The
    // read is batched with the other handlers' reads.
    let Some(row) = p.writes.reads.call(id).await? else {
        return Err(format!("transaction {id} has no row yet").into());
    };
    if !row.owes_submission() {
        return Ok(());
    }
    let money = row.money;
    if attempt > 1 || recovered {
        match p.thirdparty.lookup(id).await {
            Ok(Lookup::Found(_)) => return submitted(&p, id).await,
            Ok(Lookup::NotFound) => {}
            Err(e) => return failed_attempt(&p, id, attempt, e).await,
        }
    }
    match p.thirdparty.submit(id, money).await {
        Ok(_) => submitted(&p, id).await,
        Err(e) => failed_attempt(&p, id, attempt, e).await,
    }
}

/// What a failed call means for the submission (the rule of `answer`).
async fn failed_attempt(
    p: &Ctx,
    id: TransactionId,
    attempt: u32,
    error: CallError,
) -> Result<(), BoxDynError> {
    match error {
        CallError::Transient { .. } => retry_or_fail(p, id, attempt, error).await,
        CallError::Unauthorized(_) => {
            p.auth_failed("thirdparty", id, &error);
            let delay = p
                .schedules
                .process_retry(attempt)
                .unwrap_or_else(|| p.schedules.process_recheck());
            reschedule(p, id, delay, error).await
        }
        CallError::Refused(_) => fail_unless_held(p, id, attempt, error).await,
    }
}

/// Records the submission and starts polling.
async fn submitted(p: &Ctx, id: TransactionId) -> Result<(), BoxDynError> {
    let delay = p.schedules.poll_delay(1);
    if p.writes.submissions.call((id, after(delay))).await? {
        tracing::info!(txn_id = %id, "submitted");
        metrics::counter!("transactions_submitted_total").increment(1);
        p.push_poll(id, 1, 0, delay).await?;
    }
    Ok(())
}

/// Re-schedules the submission with backoff, or gives up when retries are exhausted.
async fn retry_or_fail(
    p: &Ctx,
    id: TransactionId,
    attempt: u32,
    error: CallError,
) -> Result<(), BoxDynError> {
    let Some(delay) = p.schedules.process_retry(attempt) else {
        if error.retry_after().is_some() {
            // Rate-limited on the last attempt: the final check may not come before the
            // third party's Retry-After either, so it waits for the next delivery.
            return reschedule(p, id, p.schedules.process_recheck(), error).await;
        }
        return fail_unless_held(p, id, attempt, error).await;
    };
    tracing::info!(txn_id = %id, attempt, delay_ms = delay.as_millis() as u64, error = %error, "submission retry scheduled");
    reschedule(p, id, delay, error).await
}

/// Records when the next attempt is due (the outbox: if Redis loses the re-scheduled job, the
/// sweeper redoes it), then has the queue re-schedule this job after `delay` — or after the
/// third party's `Retry-After`, if that is later.
async fn reschedule(
    p: &Ctx,
    id: TransactionId,
    delay: std::time::Duration,
    error: CallError,
) -> Result<(), BoxDynError> {
    let delay = p.schedules.at_least_retry_after(delay, error.retry_after());
    p.store.submission_due(id, after(delay)).await?;
    Err(RetryAfterError::new(error, delay).into())
}

/// `failed` only if the third party does not have the transaction; if it cannot say, ask again
/// later rather than risk a false `failed`.
async fn fail_unless_held(
    p: &Ctx,
    id: TransactionId,
    attempt: u32,
    error: CallError,
) -> Result<(), BoxDynError> {
    match p.thirdparty.lookup(id).await {
        Ok(Lookup::Found(_)) => submitted(p, id).await,
        Ok(Lookup::NotFound) => {
            tracing::warn!(txn_id = %id, attempt, error = %error, "submission failed for good");
            p.finish(id, Status::Failed, Source::Process).await?;
            Ok(())
        }
        Err(check) => {
            if matches!(check, CallError::Unauthorized(_)) {
                p.auth_failed("thirdparty", id, &check);
            }
            tracing::warn!(txn_id = %id, error = %check, "cannot confirm the third party lacks it; asking again later");
            reschedule(p, id, p.schedules.process_recheck(), check).await
        }
    }
}
