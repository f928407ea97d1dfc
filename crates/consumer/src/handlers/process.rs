//! `process`: submit the transaction to the third party exactly once.
//!
//! A 504 or a timeout may have created it there, so every attempt after the first (and every
//! job the sweeper re-pushed) asks before submitting. 409 means the third party has it:
//! success. Transient failures are retried as re-scheduled jobs, never before the third
//! party's `Retry-After`; a permanent refusal or exhausted retries end in `failed` — but only
//! if the third party does not have it. Refused credentials (401/403) never fail a
//! transaction: they are retried on the backoff schedule until someone fixes the key.
//!
//! The decisions are pure functions of what the handler read ([`asks_first`],
//! [`after_failure`], [`confirmed`]); the handler does the I/O around them.

use std::time::Duration;

use apalis::prelude::{Attempt, BoxDynError, RetryAfterError};
use domain::{
    Source, Status, TransactionId,
    answer::CallError,
    jobs::{ProcessFrom, ProcessJob},
    schedule::Schedules,
};
use outbound::thirdparty::Lookup;

use super::{Ctx, after};

/// What a failed call to the third party leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after this delay (never sooner than the third party's `Retry-After`).
    RetryIn(Duration),
    /// Ask the third party whether it has the transaction: `failed` only if it does not.
    ConfirmThenFail,
}

/// What the check before `failed` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The third party has it: it was submitted after all.
    Submitted,
    /// The third party does not have it: `failed`.
    Failed,
    /// The third party could not say: ask again after this delay rather than risk a false
    /// `failed`.
    AskAgainIn(Duration),
}

/// Whether an attempt asks the third party before submitting: every attempt after the first
/// (an earlier one may have landed) and every recovery.
pub fn asks_first(attempt: u32, from: ProcessFrom) -> bool {
    attempt > 1 || from == ProcessFrom::Recovery
}

/// What submission attempt `attempt` (1-based) does after the third party answered `error`.
pub fn after_failure(error: &CallError, attempt: u32, schedules: &Schedules) -> AfterFailure {
    let retry_in =
        |delay| AfterFailure::RetryIn(schedules.at_least_retry_after(delay, error.retry_after()));
    match error {
        CallError::Transient { .. } => match schedules.process_retry(attempt) {
            Some(delay) => retry_in(delay),
            // Rate-limited on the last attempt: the final check may not come before the
            // third party's Retry-After either, so it waits for the next delivery.
            None if error.retry_after().is_some() => retry_in(schedules.process_recheck()),
            None => AfterFailure::ConfirmThenFail,
        },
        // Our credentials, not the transaction: retried, never failed.
        CallError::Unauthorized(_) => retry_in(
            schedules
                .process_retry(attempt)
                .unwrap_or_else(|| schedules.process_recheck()),
        ),
        CallError::Refused(_) => AfterFailure::ConfirmThenFail,
    }
}

/// What the check before `failed` decides, from the third party's answer to the lookup.
pub fn confirmed(check: Result<Lookup, &CallError>, schedules: &Schedules) -> Confirmation {
    match check {
        Ok(Lookup::Found(_)) => Confirmation::Submitted,
        Ok(Lookup::NotFound) => Confirmation::Failed,
        Err(e) => Confirmation::AskAgainIn(
            schedules.at_least_retry_after(schedules.process_recheck(), e.retry_after()),
        ),
    }
}

/// Submits `job.id` unless it is terminal or already submitted.
pub async fn process(job: ProcessJob, attempt: Attempt, p: Ctx) -> Result<(), BoxDynError> {
    let id = job.id;
    let attempt = attempt.current().max(1) as u32;
    // The row decides, never the job's payload: a webhook may have made the transaction
    // terminal since the job was pushed, and a terminal transaction is never submitted. The
    // read is batched with the other handlers' reads.
    let Some(row) = p.writes.reads.call(id).await? else {
        return Err(format!("transaction {id} has no row yet").into());
    };
    if !row.owes_submission() {
        return Ok(());
    }
    if asks_first(attempt, job.from) {
        match p.thirdparty.lookup(id).await {
            Ok(Lookup::Found(_)) => return submitted(&p, id).await,
            Ok(Lookup::NotFound) => {}
            Err(e) => return failed_attempt(&p, id, attempt, e).await,
        }
    }
    match p.thirdparty.submit(id, row.money).await {
        Ok(_) => submitted(&p, id).await,
        Err(e) => failed_attempt(&p, id, attempt, e).await,
    }
}

/// Acts on [`after_failure`].
async fn failed_attempt(
    p: &Ctx,
    id: TransactionId,
    attempt: u32,
    error: CallError,
) -> Result<(), BoxDynError> {
    match after_failure(&error, attempt, &p.schedules) {
        AfterFailure::RetryIn(delay) => {
            // Refused credentials are logged and counted as such; any other retry at info.
            if matches!(error, CallError::Unauthorized(_)) {
                p.auth_failed("thirdparty", id, &error);
            } else {
                tracing::info!(txn_id = %id, attempt, delay_ms = delay.as_millis() as u64, error = %error, "submission retry scheduled");
            }
            reschedule(p, id, delay, error).await
        }
        AfterFailure::ConfirmThenFail => fail_unless_held(p, id, attempt, error).await,
    }
}

/// Records the submission and starts polling.
async fn submitted(p: &Ctx, id: TransactionId) -> Result<(), BoxDynError> {
    let delay = p.schedules.poll_delay(1);
    let submitted = store::Submitted {
        id,
        first_poll_at: after(delay),
    };
    if p.writes.submissions.call(submitted).await? {
        tracing::info!(txn_id = %id, "submitted");
        metrics::counter!("transactions_submitted_total").increment(1);
        p.push_poll(id, 1, 0, delay).await?;
    }
    Ok(())
}

/// Records when the next attempt is due (the outbox: if Redis loses the re-scheduled job, the
/// sweeper redoes it), then has the queue re-schedule this job after `delay`.
async fn reschedule(
    p: &Ctx,
    id: TransactionId,
    delay: Duration,
    error: CallError,
) -> Result<(), BoxDynError> {
    p.store.submission_due(id, after(delay)).await?;
    Err(RetryAfterError::new(error, delay).into())
}

/// Acts on [`confirmed`]: `failed` only if the third party does not have the transaction.
async fn fail_unless_held(
    p: &Ctx,
    id: TransactionId,
    attempt: u32,
    error: CallError,
) -> Result<(), BoxDynError> {
    let check = p.thirdparty.lookup(id).await;
    match confirmed(check.as_ref().copied(), &p.schedules) {
        Confirmation::Submitted => submitted(p, id).await,
        Confirmation::Failed => {
            tracing::warn!(txn_id = %id, attempt, error = %error, "submission failed for good");
            p.finish(id, Status::Failed, Source::Process).await?;
            Ok(())
        }
        Confirmation::AskAgainIn(delay) => {
            // Only an unanswered lookup asks again: `check` is its error.
            let check = check.err().unwrap_or(error);
            if matches!(check, CallError::Unauthorized(_)) {
                p.auth_failed("thirdparty", id, &check);
            }
            tracing::warn!(txn_id = %id, error = %check, "cannot confirm the third party lacks it; asking again later");
            reschedule(p, id, delay, check).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(retry_after: Option<u64>) -> CallError {
        CallError::Transient {
            reason: "HTTP 503".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn only_the_first_attempt_of_a_fresh_job_submits_without_asking() {
        assert!(!asks_first(1, ProcessFrom::Insert));
        assert!(asks_first(2, ProcessFrom::Insert));
        assert!(asks_first(1, ProcessFrom::Recovery));
        assert!(asks_first(5, ProcessFrom::Recovery));
    }

    #[test]
    fn a_failed_call_retries_on_the_schedule_then_confirms_before_failing() {
        let s = Schedules::default();
        let last = s.process_retries;
        // (error, attempt, expected: None = confirm then fail, Some(floor) = retry after ≥ floor)
        let cases: [(CallError, u32, Option<Duration>); 8] = [
            (transient(None), 1, Some(Duration::ZERO)),
            (transient(None), last, Some(Duration::ZERO)),
            (transient(None), last + 1, None),
            // A Retry-After is a floor, and on the last attempt it still waits, never fails.
            (transient(Some(300)), 1, Some(Duration::from_secs(300))),
            (
                transient(Some(300)),
                last + 1,
                Some(Duration::from_secs(300)),
            ),
            // Refused credentials never fail a transaction, however many attempts.
            (CallError::Unauthorized(401), 1, Some(Duration::ZERO)),
            (CallError::Unauthorized(403), last + 7, Some(Duration::ZERO)),
            (CallError::Refused(422), 1, None),
        ];
        for (error, attempt, expected) in cases {
            let got = after_failure(&error, attempt, &s);
            match (expected, got) {
                (None, AfterFailure::ConfirmThenFail) => {}
                (Some(floor), AfterFailure::RetryIn(delay)) => {
                    assert!(delay >= floor, "{error} #{attempt}: {delay:?} < {floor:?}");
                    assert!(delay > Duration::ZERO, "{error} #{attempt}: never at once");
                }
                _ => panic!("{error} on attempt {attempt}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    /// Whether `delay` is a recheck of `s`: the longest retry's delay, jittered.
    fn is_recheck(delay: Duration, s: &Schedules) -> bool {
        let longest = s.process_backoff_ms << s.process_retries.saturating_sub(1);
        (Duration::from_millis(longest)..Duration::from_millis(2 * longest)).contains(&delay)
    }

    #[test]
    fn exhausted_retries_wait_the_recheck_only_when_rate_limited() {
        let s = Schedules::default();
        let got = after_failure(&transient(Some(1)), s.process_retries + 1, &s);
        assert!(
            matches!(got, AfterFailure::RetryIn(d) if is_recheck(d, &s)),
            "{got:?}"
        );
    }

    #[test]
    fn failed_only_when_the_third_party_says_it_does_not_have_it() {
        let s = Schedules::default();
        assert_eq!(
            confirmed(Ok(Lookup::Found(Status::Pending)), &s),
            Confirmation::Submitted
        );
        assert_eq!(confirmed(Ok(Lookup::NotFound), &s), Confirmation::Failed);
        for unknown in [transient(None), CallError::Unauthorized(401)] {
            let got = confirmed(Err(&unknown), &s);
            assert!(
                matches!(got, Confirmation::AskAgainIn(d) if is_recheck(d, &s)),
                "{unknown}: {got:?}"
            );
        }
        let capped = Duration::from_millis(s.retry_after_max_ms);
        let got = confirmed(Err(&transient(Some(10_000_000))), &s);
        assert!(
            matches!(got, Confirmation::AskAgainIn(d) if d >= capped && d < 2 * capped),
            "a Retry-After is a floor, capped: {got:?}"
        );
    }
}
