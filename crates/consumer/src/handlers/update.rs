//! `update`: poll the third party on the exponential schedule, or apply a status it reported
//! by webhook. A terminal row cancels its polls; a poll whose number is not the row's current
//! one belongs to a stale chain and is dropped, so chains never fork. Polls that keep finding
//! nothing after a submission start the submission again.

use std::time::Duration;

use apalis::prelude::{Attempt, BoxDynError, RetryAfterError};
use domain::{
    Source, Status, TransactionId,
    answer::CallError,
    jobs::{ProcessFrom, ProcessJob, UpdateJob},
    schedule::{self, Schedules},
};
use outbound::thirdparty::Lookup;
use store::TransactionRow;

use super::{Ctx, after, since};

/// Runs one poll or one apply.
pub async fn update(job: UpdateJob, attempt: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    match job {
        UpdateJob::Poll {
            id, n, not_found, ..
        } => poll(&p, id, n, not_found).await,
        UpdateJob::Apply { id, status, .. } => apply(&p, id, status, attempt).await,
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

/// What a poll leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterPoll {
    /// The third party reported a terminal status.
    Finish(Status),
    /// It answered 404 `not_found` times in a row after accepting: it lost the transaction.
    Resubmit {
        /// 404s in a row.
        not_found: u32,
    },
    /// Polling ran out of time without an outcome.
    Expire,
    /// Poll again: poll `n` after `delay`, with `not_found` 404s in a row so far.
    Next {
        /// The next poll's number.
        n: i32,
        /// 404s in a row so far.
        not_found: u32,
        /// When, from now.
        delay: Duration,
    },
}

/// Whether poll `n` is still the row's current poll: a terminal row, a newer chain or a
/// stopped one drops it, so chains never fork.
pub fn poll_is_current(row: &TransactionRow, n: i32) -> bool {
    !row.status.is_terminal() && row.poll_number == n && row.next_poll_at.is_some()
}

/// What poll `n` decides from the third party's `answer`, with `not_found` 404s in a row
/// before it and `elapsed` since the submission. A failed poll is a poll without news: the
/// chain goes on (it expires only on an answer), never sooner than the third party asked.
pub fn after_poll(
    answer: Result<Lookup, &CallError>,
    n: i32,
    not_found: u32,
    elapsed: Duration,
    schedules: &Schedules,
) -> AfterPoll {
    let (not_found, retry_after) = match answer {
        Ok(Lookup::Found(status)) if status.is_terminal() => return AfterPoll::Finish(status),
        Ok(answer) => {
            let not_found = match answer {
                Lookup::NotFound => not_found + 1,
                Lookup::Found(_) => 0,
            };
            if schedules.lost(not_found) {
                return AfterPoll::Resubmit { not_found };
            }
            if schedules.poll_expired(elapsed) {
                return AfterPoll::Expire;
            }
            (not_found, None)
        }
        Err(e) => (not_found, e.retry_after()),
    };
    let next = n + 1;
    AfterPoll::Next {
        n: next,
        not_found,
        delay: schedules.at_least_retry_after(schedules.poll_delay(next as u32), retry_after),
    }
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
    if !poll_is_current(&row, n) {
        return Ok(());
    }
    let elapsed = row.submitted_at.map(since).unwrap_or(Duration::ZERO);
    let answer = p.thirdparty.lookup(id).await;
    match &answer {
        Err(e @ CallError::Unauthorized(_)) => p.auth_failed("thirdparty", id, e),
        Err(e) => tracing::debug!(txn_id = %id, poll = n, error = %e, "poll failed"),
        Ok(_) => {}
    }
    match after_poll(
        answer.as_ref().copied(),
        n,
        not_found,
        elapsed,
        &p.schedules,
    ) {
        AfterPoll::Finish(status) => {
            p.finish(id, status, Source::Poll).await?;
        }
        AfterPoll::Resubmit { not_found } => resubmit(p, id, n, not_found).await?,
        AfterPoll::Expire => {
            if p.store.mark_poll_expired(id).await? {
                tracing::warn!(txn_id = %id, polls = n, "polling expired without an outcome");
                metrics::counter!("transactions_poll_expired_total").increment(1);
            }
        }
        AfterPoll::Next {
            n: next,
            not_found,
            delay,
        } => {
            if p.store.schedule_next_poll(id, n, after(delay)).await? {
                p.push_poll(id, next, not_found, delay).await?;
            }
        }
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
        trace: service::trace::traceparent(),
    };
    p.queues.push(job).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    const MINUTE: Duration = Duration::from_secs(60);

    fn unavailable(retry_after: Option<u64>) -> CallError {
        CallError::Transient {
            reason: "timeout".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_poll_decides_from_the_answer_its_404_count_and_the_time_since_submission() {
        let s = Schedules::default();
        let lost = s.lost_after_404s;
        let expired = Duration::from_millis(s.poll_max_total_ms);
        let next = |n: i32, not_found: u32| AfterPoll::Next {
            n: n + 1,
            not_found,
            delay: s.poll_delay(n as u32 + 1),
        };
        let pending = Lookup::Found(Status::Pending);
        type Case = (Result<Lookup, CallError>, i32, u32, Duration, AfterPoll);
        let cases: Vec<Case> = vec![
            (
                Ok(Lookup::Found(Status::Completed)),
                1,
                0,
                MINUTE,
                AfterPoll::Finish(Status::Completed),
            ),
            (
                Ok(Lookup::Found(Status::Declined)),
                9,
                2,
                expired,
                AfterPoll::Finish(Status::Declined),
            ),
            (Ok(pending), 1, 0, MINUTE, next(1, 0)),
            // A pending answer resets the 404 count.
            (Ok(pending), 4, lost - 1, MINUTE, next(4, 0)),
            (Ok(Lookup::NotFound), 1, 0, MINUTE, next(1, 1)),
            (
                Ok(Lookup::NotFound),
                3,
                lost - 1,
                MINUTE,
                AfterPoll::Resubmit { not_found: lost },
            ),
            // Lost wins over expired: a transaction the third party lost is submitted again.
            (
                Ok(Lookup::NotFound),
                3,
                lost - 1,
                expired,
                AfterPoll::Resubmit { not_found: lost },
            ),
            (Ok(pending), 30, 0, expired, AfterPoll::Expire),
            (Ok(Lookup::NotFound), 30, 0, expired, AfterPoll::Expire),
            // A failed poll never expires the chain and keeps the 404 count.
            (Err(unavailable(None)), 30, 1, expired, next(30, 1)),
            (Err(CallError::Unauthorized(401)), 2, 0, expired, next(2, 0)),
        ];
        for (answer, n, not_found, elapsed, expected) in cases {
            assert_eq!(
                after_poll(answer.as_ref().copied(), n, not_found, elapsed, &s),
                expected,
                "{answer:?} at poll {n} after {not_found} 404s, {elapsed:?} in"
            );
        }
    }

    #[test]
    fn a_failed_poll_waits_at_least_the_retry_after() {
        let s = Schedules::default();
        let AfterPoll::Next { delay, .. } =
            after_poll(Err(&unavailable(Some(120))), 1, 0, MINUTE, &s)
        else {
            panic!("a failed poll polls again");
        };
        assert_eq!(delay, Duration::from_secs(120));
    }

    #[test]
    fn only_the_current_poll_of_a_pending_row_runs() {
        let row = TransactionRow {
            id: TransactionId::generate(),
            status: Status::Pending,
            money: None,
            submitted_at: Some(Utc::now()),
            next_attempt_at: None,
            poll_number: 3,
            next_poll_at: Some(Utc::now()),
            poll_expired_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            client_app_id: domain::ClientAppId::LEGACY,
            submit_failures: 0,
        };
        assert!(poll_is_current(&row, 3));
        assert!(!poll_is_current(&row, 2), "a stale chain");
        let stopped = TransactionRow {
            next_poll_at: None,
            ..row.clone()
        };
        assert!(!poll_is_current(&stopped, 3), "expired or resubmitted");
        let done = TransactionRow {
            status: Status::Completed,
            ..row
        };
        assert!(!poll_is_current(&done, 3));
    }
}
