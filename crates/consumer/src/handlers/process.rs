//! `process`: submit the transaction to the third party exactly once.
//!
//! A 504 or a timeout may have created it there, so every attempt after the first (and every
//! job the sweeper re-pushed) asks before submitting. 409 means the third party has it:
//! success. Failures are retried as re-scheduled jobs, never before the third party's
//! `Retry-After`. Only a failure whose outcome was an error or unknown spends the budget of
//! `PROCESS_RETRIES` (counted on the row, so it survives a revived job); "not now" answers
//! (408, 425, 429, 503 with `Retry-After`) and refused credentials (401/403) wait without
//! spending it, for at most `SUBMIT_GIVE_UP_AFTER_MS` from the row's creation. A permanent
//! refusal, a spent budget or that deadline end in `failed` — but only if the third party does
//! not have it.
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

use super::{Ctx, after, since};

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

/// Where a submission stands when an attempt fails: which attempt of its job this is
/// (1-based; it paces the retries), the failures it has spent before, and its age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tried {
    /// The job's attempt.
    pub attempt: u32,
    /// Failures spent before this one (the row's `submit_failures`).
    pub spent: u32,
    /// Since the row was created.
    pub age: Duration,
}

/// What a submission does after the third party answered `error`: a failure that spends the
/// budget retries on the schedule of the failures spent; one that does not (throttling,
/// refused credentials) waits on the schedule of its attempts, until the submission is
/// [`Schedules::submission_given_up`].
pub fn after_failure(error: &CallError, tried: Tried, schedules: &Schedules) -> AfterFailure {
    let retry_in =
        |delay| AfterFailure::RetryIn(schedules.at_least_retry_after(delay, error.retry_after()));
    if matches!(error, CallError::Refused(_)) {
        return AfterFailure::ConfirmThenFail;
    }
    if !error.spends_budget() {
        if schedules.submission_given_up(tried.age) {
            return AfterFailure::ConfirmThenFail;
        }
        let delay = schedules
            .process_retry(tried.attempt)
            .unwrap_or_else(|| schedules.process_recheck());
        return retry_in(delay);
    }
    match schedules.process_retry(tried.spent + 1) {
        Some(delay) => retry_in(delay),
        // Out of budget but told when to come back: the final check may not come before the
        // third party's Retry-After either, so it waits for the next delivery.
        None if error.retry_after().is_some() => retry_in(schedules.process_recheck()),
        None => AfterFailure::ConfirmThenFail,
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
    let tried = Tried {
        attempt,
        spent: u32::try_from(row.submit_failures).unwrap_or(0),
        age: since(row.created_at),
    };
    if asks_first(attempt, job.from) {
        match p.thirdparty.lookup(id).await {
            Ok(Lookup::Found(_)) => return submitted(&p, id).await,
            Ok(Lookup::NotFound) => {}
            Err(e) => return failed_attempt(&p, id, tried, e).await,
        }
    }
    match p.thirdparty.submit(id, row.money).await {
        Ok(_) => submitted(&p, id).await,
        Err(e) => failed_attempt(&p, id, tried, e).await,
    }
}

/// Acts on [`after_failure`].
async fn failed_attempt(
    p: &Ctx,
    id: TransactionId,
    tried: Tried,
    error: CallError,
) -> Result<(), BoxDynError> {
    match after_failure(&error, tried, &p.schedules) {
        AfterFailure::RetryIn(delay) => {
            // Refused credentials are logged and counted as such; any other retry at info.
            if matches!(error, CallError::Unauthorized(_)) {
                p.auth_failed("thirdparty", id, &error);
            } else {
                tracing::info!(txn_id = %id, attempt = tried.attempt, spent = tried.spent + u32::from(error.spends_budget()), delay_ms = delay.as_millis() as u64, error = %error, "submission retry scheduled");
            }
            reschedule(p, id, delay, error).await
        }
        AfterFailure::ConfirmThenFail => fail_unless_held(p, id, tried.attempt, error).await,
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
/// sweeper redoes it) and whether `error` spent a failure, then has the queue re-schedule this
/// job after `delay`.
async fn reschedule(
    p: &Ctx,
    id: TransactionId,
    delay: Duration,
    error: CallError,
) -> Result<(), BoxDynError> {
    p.store
        .submission_due(id, after(delay), error.spends_budget())
        .await?;
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

    fn tried(attempt: u32, spent: u32) -> Tried {
        Tried {
            attempt,
            spent,
            age: Duration::from_secs(60),
        }
    }

    fn not_now(status: u16, retry_after: Option<u64>) -> CallError {
        CallError::NotNow {
            status,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_failed_call_retries_on_the_schedule_then_confirms_before_failing() {
        let s = Schedules::default();
        let last = s.process_retries;
        // (error, attempt, spent before, expected: None = confirm then fail, Some(floor) =
        // retry after ≥ floor)
        let cases: [(CallError, u32, u32, Option<Duration>); 13] = [
            (transient(None), 1, 0, Some(Duration::ZERO)),
            (transient(None), last, last - 1, Some(Duration::ZERO)),
            (transient(None), last + 1, last, None),
            // The budget is the failures spent, not the attempts: throttled attempts before
            // did not spend it.
            (transient(None), last + 5, 1, Some(Duration::ZERO)),
            // A Retry-After is a floor, and with the budget spent it still waits, never fails.
            (transient(Some(300)), 1, 0, Some(Duration::from_secs(300))),
            (
                transient(Some(300)),
                last + 1,
                last,
                Some(Duration::from_secs(300)),
            ),
            // "Not now" never spends the budget, however many attempts and failures.
            (not_now(429, Some(1)), 1, 0, Some(Duration::from_secs(1))),
            (
                not_now(429, Some(1)),
                last + 9,
                last,
                Some(Duration::from_secs(1)),
            ),
            (not_now(408, None), last + 1, last, Some(Duration::ZERO)),
            (
                not_now(503, Some(30)),
                2,
                last,
                Some(Duration::from_secs(30)),
            ),
            // Refused credentials never fail a transaction, however many attempts.
            (CallError::Unauthorized(401), 1, 0, Some(Duration::ZERO)),
            (
                CallError::Unauthorized(403),
                last + 7,
                last,
                Some(Duration::ZERO),
            ),
            (CallError::Refused(422), 1, 0, None),
        ];
        for (error, attempt, spent, expected) in cases {
            let got = after_failure(&error, tried(attempt, spent), &s);
            match (expected, got) {
                (None, AfterFailure::ConfirmThenFail) => {}
                (Some(floor), AfterFailure::RetryIn(delay)) => {
                    assert!(delay >= floor, "{error} #{attempt}: {delay:?} < {floor:?}");
                    assert!(delay > Duration::ZERO, "{error} #{attempt}: never at once");
                }
                _ => panic!(
                    "{error} on attempt {attempt} ({spent} spent): expected {expected:?}, got {got:?}"
                ),
            }
        }
    }

    #[test]
    fn throttling_waits_until_the_submission_is_given_up_then_the_check_decides() {
        let s = Schedules::default();
        let limit = Duration::from_millis(s.submit_give_up_after_ms);
        for error in [not_now(429, Some(1)), CallError::Unauthorized(401)] {
            let young = Tried {
                age: limit - Duration::from_secs(1),
                ..tried(50, 0)
            };
            assert!(matches!(
                after_failure(&error, young, &s),
                AfterFailure::RetryIn(_)
            ));
            let old = Tried {
                age: limit,
                ..tried(50, 0)
            };
            assert_eq!(
                after_failure(&error, old, &s),
                AfterFailure::ConfirmThenFail,
                "{error}"
            );
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
        let spent = s.process_retries;
        let got = after_failure(&transient(Some(1)), tried(spent + 1, spent), &s);
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
