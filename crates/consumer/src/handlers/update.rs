//! `update`: poll the third party on the exponential schedule, or apply a status it reported
//! by webhook. A terminal row cancels its polls; a poll whose number is not the row's current
//! one belongs to a stale chain and is dropped, so chains never fork.

use std::time::Duration;

use apalis::prelude::{Attempt, BoxDynError, RetryAfterError};
use chrono::Utc;
use txn_core::{
    Source, Status, TransactionId, answer::CallError, jobs::UpdateJob, schedule, thirdparty::Lookup,
};

use super::{Ctx, after};

/// Runs one poll or one apply.
pub async fn update(job: UpdateJob, attempt: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    match job {
        UpdateJob::Poll { id, n } => poll(&p, id, n).await,
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

async fn poll(p: &Ctx, id: TransactionId, n: i32) -> Result<(), BoxDynError> {
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
    if p.schedules.poll_expired(elapsed) {
        if p.store.mark_poll_expired(id).await? {
            tracing::warn!(txn_id = %id, polls = n, "polling expired without an outcome");
            metrics::counter!("transactions_poll_expired_total").increment(1);
        }
        return Ok(());
    }
    let mut retry_after = None;
    match p.thirdparty.lookup(id).await {
        Ok(Lookup::Found(status)) if status.is_terminal() => {
            p.finish(id, status, Source::Poll).await?;
            return Ok(());
        }
        Ok(_) => {}
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
        p.push_poll(id, next, delay).await?;
    }
    Ok(())
}
