//! `update`: poll the third party on the exponential schedule, or apply a status it reported
//! by webhook. A terminal row cancels its polls; a poll whose number is not the row's current
//! one belongs to a stale chain and is dropped, so chains never fork. Polls that keep finding
//! nothing after a submission start the submission again.

use std::time::Duration;

use apalis::prelude::{Attempt, BoxDynError, RetryAfterError};
use chrono::Utc;
use domain::{
    Source, Status, TransactionId,
    answer::CallError,
    jobs::{ProcessFrom, ProcessJob, UpdateJob},
    schedule,
};
use outbound::thirdparty::Lookup;
use queue::Job;

use super::{Ctx, after};

/// Runs one poll or one apply.
pub async fn update(job: UpdateJob, attempt: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    match job {
        UpdateJob::Poll { id, n, not_found } => poll(&p, id, n, not_found).await,
        UpdateJob::Apply { id, status } => apply(&p, id, status, attempt).await,
    }
}

/// Applies a status the third party reported. A webhook can outrun `create`: then the change
/// found no row and changed nothing. An apply only carries a terminal status, so anything but
/// a terminal row afterwards (no row, or one inserted since the change looked) means it did
/// not land: the job is retried soon (`schedule::awaiting_row`) rather than dropped, which
/// would lose the outcome.
async fn apply(
    p: &Ctx,
    id: TransactionId,
    status: Status,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    if p.finish(id, status, Source::Webhook).await? {
        return Ok(());
    }
    let row = p.writes.reads.call(id).await?;
    if !row.is_some_and(|r| r.status.is_terminal()) {
        let error = format!("transaction {id} not created yet; its {status} will be applied then");
        let delay = schedule::awaiting_row(attempt.current().max(1) as u32);
        return Err(RetryAfterError::new(std::io::Error::other(error), delay).into());
    }
    Ok(())
}

/// One poll. A terminal answer finishes the transaction; `pending` (or 404) past
/// `POLL_MAX_TOTAL_MS` expires the chain; `LOST_AFTER_404S` answers of 404 in a row mean the
/// third party lost it: it is submitted again. A failed poll never ends the chain — polling
/// expires only on an answer, so an outage of any length is polled through, at the longest
/// interval.
async fn poll(p: &Ctx, id: TransactionId, n: i32, not_found: u32) -> Result<(), BoxDynError> {
    let Some(row) = p.writes.reads.call(id).await? else {
        return Ok(());
    };
    if row.status.is_terminal() || row.poll_number != n || row.next_poll_at.is_none() {
        return Ok(());
    }
    let elapsed = row
        .submitted_at
        .and_then(|s| (Utc::now() - s).to_std().ok())
        .unwrap_or(Duration::ZERO);
    let mut retry_after = None;
    let mut not_found_now = not_found;
    match p.thirdparty.lookup(id).await {
        Ok(Lookup::Found(status)) if status.is_terminal() => {
            p.finish(id, status, Source::Poll).await?;
            return Ok(());
        }
        Ok(answer) => {
            if answer == Lookup::NotFound {
                not_found_now += 1;
                if p.schedules.lost(not_found_now) {
                    return resubmit(p, id, n, not_found_now).await;
                }
            } else {
                not_found_now = 0;
            }
            if p.schedules.poll_expired(elapsed) {
                if p.store.mark_poll_expired(id).await? {
                    tracing::warn!(txn_id = %id, polls = n, "polling expired without an outcome");
                    metrics::counter!("transactions_poll_expired_total").increment(1);
                }
                return Ok(());
            }
        }
        // A failed poll is just a poll without news: the schedule goes on, never sooner than
        // the third party asked.
        Err(e) => {
            if matches!(e, CallError::Unauthorized(_)) {
                p.auth_failed("thirdparty", id, &e);
            } else {
                tracing::debug!(txn_id = %id, poll = n, error = %e, "poll failed");
            }
            retry_after = e.retry_after();
        }
    }
    let next = n + 1;
    let delay = p
        .schedules
        .at_least_retry_after(p.schedules.poll_delay(next as u32), retry_after);
    if p.store.schedule_next_poll(id, n, after(delay)).await? {
        p.push_poll(id, next, not_found_now, delay).await?;
    }
    Ok(())
}

/// The third party answered 404 too many times in a row after accepting `id`: it lost it.
/// The row owes a submission again (recorded first, so the sweeper redoes a lost push), and a
/// recovery submission asks the third party before submitting, so nothing is sent twice.
async fn resubmit(p: &Ctx, id: TransactionId, n: i32, not_found: u32) -> Result<(), BoxDynError> {
    if !p.store.resubmission_due(id, n).await? {
        return Ok(());
    }
    tracing::warn!(txn_id = %id, not_found, "the third party lost a submitted transaction; submitting again");
    metrics::counter!("transactions_resubmitted_total").increment(1);
    let job = ProcessJob {
        id,
        from: ProcessFrom::Recovery,
    };
    p.process.push(Job::now(job.job_id(), job)).await?;
    Ok(())
}
