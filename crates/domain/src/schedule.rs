//! Every delay the pipeline waits: submission retries, notification retries, the poll
//! schedule, and the retry of unexpected (infrastructure) failures. One module, one rule each.
//!
//! Backoffs come from `backon`. Its default caps every delay at 60 s, so the cap is always set
//! explicitly; its jitter only adds, between 0 and 100 % of the delay.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The schedule settings (all in milliseconds, so tests can run any schedule in a second);
/// a settings group of the consumer. Its defaults are [`Schedules::DEFAULT`].
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct Schedules {
    /// Retries of a submission to the third party after the first attempt.
    #[arg(long, env = "PROCESS_RETRIES", default_value_t = Schedules::DEFAULT.process_retries)]
    pub process_retries: u32,
    /// How long a submission may keep being throttled (429, 408, 401/403, 503 with
    /// `Retry-After`, which spend no retry) before the exists-check decides its fate (ms).
    #[arg(long, env = "SUBMIT_GIVE_UP_AFTER_MS", default_value_t = Schedules::DEFAULT.submit_give_up_after_ms)]
    pub submit_give_up_after_ms: u64,
    /// The first submission retry's delay (ms); later ones double, with jitter.
    #[arg(long, env = "PROCESS_BACKOFF_MS", default_value_t = Schedules::DEFAULT.process_backoff_ms)]
    pub process_backoff_ms: u64,
    /// The first poll's delay after submission (ms); later ones double.
    #[arg(long, env = "POLL_INITIAL_MS", default_value_t = Schedules::DEFAULT.poll_initial_ms)]
    pub poll_initial_ms: u64,
    /// Cap of the delay between polls (ms).
    #[arg(long, env = "POLL_MAX_INTERVAL_MS", default_value_t = Schedules::DEFAULT.poll_max_interval_ms)]
    pub poll_max_interval_ms: u64,
    /// Polling stops this long after submission (ms).
    #[arg(long, env = "POLL_MAX_TOTAL_MS", default_value_t = Schedules::DEFAULT.poll_max_total_ms)]
    pub poll_max_total_ms: u64,
    /// The delays before each retry of a client notification, e.g. `5s,5m,30m,2h`, each with
    /// ±20 % jitter; after the last the delivery is exhausted.
    #[arg(long, env = "NOTIFY_SCHEDULE", default_value = NotifySchedule::DEFAULT)]
    pub notify_schedule: NotifySchedule,
    /// Cap of a peer's `Retry-After` (ms): a longer one is waited only this long.
    #[arg(long, env = "RETRY_AFTER_MAX_MS", default_value_t = Schedules::DEFAULT.retry_after_max_ms)]
    pub retry_after_max_ms: u64,
    /// Polls answered 404 in a row after which the third party has lost a submitted
    /// transaction, which is then submitted again (through the exists-check).
    #[arg(long, env = "LOST_AFTER_404S", default_value_t = Schedules::DEFAULT.lost_after_404s)]
    pub lost_after_404s: u32,
}

impl Schedules {
    /// The defaults of every setting but the notification schedule: the one place they are
    /// written (the flags' defaults come from here).
    pub const DEFAULT: Schedules = Schedules {
        process_retries: 3,
        submit_give_up_after_ms: 86_400_000,
        process_backoff_ms: 120_000,
        poll_initial_ms: 200,
        poll_max_interval_ms: 60_000,
        poll_max_total_ms: 3_600_000,
        retry_after_max_ms: 600_000,
        lost_after_404s: 3,
        notify_schedule: NotifySchedule::EMPTY,
    };
}

impl Default for Schedules {
    fn default() -> Self {
        let mut schedules = Self::DEFAULT;
        schedules.notify_schedule = NotifySchedule::default();
        schedules
    }
}

/// The notification retry schedule (`NOTIFY_SCHEDULE`): the delay before each retry, in
/// order. Each is taken with ±20 % jitter (so a client app that was down is not hit by every
/// retry at once), never shorter than the client's `Retry-After`; after the last the delivery
/// is exhausted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NotifySchedule(Vec<Duration>);

/// What `NOTIFY_SCHEDULE` may not be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not a list of durations.
    #[error("{0:?} is not a duration such as 500ms, 5s, 5m or 2h")]
    NotADuration(String),
    /// A step of zero.
    #[error("a retry delay must be more than zero")]
    Zero,
    /// Nothing at all.
    #[error("the schedule needs at least one delay")]
    Empty,
}

impl NotifySchedule {
    /// The default: retries over about 33 hours, so a client app down over a day hears.
    pub const DEFAULT: &'static str = "5s,5m,30m,2h,5h,10h,10h";

    /// No retries (only a placeholder inside [`Schedules::DEFAULT`]).
    const EMPTY: NotifySchedule = NotifySchedule(Vec::new());

    /// How much a delay may move either way.
    const JITTER: f64 = 0.2;

    /// How many retries it has.
    pub fn retries(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// Delay before retry `retry` (1-based), moved by `roll` (in `[0, 1)`; 0.5 is the step
    /// itself) within ±20 %; `None` once the schedule is exhausted.
    pub fn delay(&self, retry: u32, roll: f64) -> Option<Duration> {
        let step = *self.0.get(retry.checked_sub(1)? as usize)?;
        let factor = 1.0 - Self::JITTER + 2.0 * Self::JITTER * roll.clamp(0.0, 1.0);
        Some(step.mul_f64(factor))
    }

    /// Its last step: how long to wait between looks when waiting is not a retry (a disabled
    /// client app's notification).
    pub fn last(&self) -> Duration {
        self.0.last().copied().unwrap_or(Duration::from_secs(60))
    }
}

impl Default for NotifySchedule {
    fn default() -> Self {
        // A constant, parsed in a test.
        Self::DEFAULT
            .parse()
            .expect("NotifySchedule::DEFAULT is a valid schedule")
    }
}

impl std::str::FromStr for NotifySchedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, ScheduleError> {
        let steps = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let step = humantime::parse_duration(s)
                    .map_err(|_| ScheduleError::NotADuration(s.to_string()))?;
                if step.is_zero() {
                    return Err(ScheduleError::Zero);
                }
                Ok(step)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if steps.is_empty() {
            return Err(ScheduleError::Empty);
        }
        Ok(NotifySchedule(steps))
    }
}

impl TryFrom<String> for NotifySchedule {
    type Error = ScheduleError;
    fn try_from(text: String) -> Result<Self, ScheduleError> {
        text.parse()
    }
}

impl From<NotifySchedule> for String {
    fn from(schedule: NotifySchedule) -> String {
        schedule.to_string()
    }
}

impl std::fmt::Display for NotifySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let steps: Vec<String> = self
            .0
            .iter()
            .map(|d| humantime::format_duration(*d).to_string().replace(' ', ""))
            .collect();
        f.write_str(&steps.join(","))
    }
}

/// Exponential backoff from `base` doubling, capped at `cap`, with or without jitter; the
/// delay before retry `retry` (1-based).
fn exponential(base: Duration, cap: Duration, jitter: bool, retry: u32) -> Duration {
    let mut builder = ExponentialBuilder::new()
        .with_min_delay(base)
        .with_factor(2.0)
        .with_max_delay(cap)
        .without_max_times();
    if jitter {
        builder = builder.with_jitter();
    }
    builder
        .build()
        .nth(retry.saturating_sub(1) as usize)
        .unwrap_or(cap)
}

/// Cap of the retry backoffs: high enough never to flatten a configured schedule.
fn retry_cap(base_ms: u64, retries: u32) -> Duration {
    let doublings = retries.saturating_sub(1).min(32);
    Duration::from_millis(base_ms.saturating_mul(1u64 << doublings))
}

impl Schedules {
    /// Whether `not_found` polls answered 404 in a row mean the third party lost the
    /// transaction (never with fewer than one).
    pub fn lost(&self, not_found: u32) -> bool {
        not_found >= self.lost_after_404s.max(1)
    }

    /// Delay before submission retry `retry` (1-based), or `None` when retries are exhausted.
    pub fn process_retry(&self, retry: u32) -> Option<Duration> {
        (retry <= self.process_retries).then(|| {
            let base = Duration::from_millis(self.process_backoff_ms);
            exponential(
                base,
                retry_cap(self.process_backoff_ms, self.process_retries),
                true,
                retry,
            )
        })
    }

    /// Whether a submission `age` old has been tried long enough: past it, throttling no
    /// longer earns another attempt.
    pub fn submission_given_up(&self, age: Duration) -> bool {
        age >= Duration::from_millis(self.submit_give_up_after_ms)
    }

    /// Delay before asking the third party again when it could not say whether it has a
    /// transaction: the longest submission delay (or the first, with no retries configured),
    /// so an unreachable third party is never asked in a tight loop.
    pub fn process_recheck(&self) -> Duration {
        self.process_retry(self.process_retries.max(1))
            .unwrap_or(Duration::from_millis(self.process_backoff_ms))
    }

    /// `delay`, but never shorter than the peer's `retry_after` (itself capped at
    /// `RETRY_AFTER_MAX_MS`): a peer that said when to come back is not called earlier.
    pub fn at_least_retry_after(&self, delay: Duration, retry_after: Option<Duration>) -> Duration {
        let floor = retry_after
            .unwrap_or_default()
            .min(Duration::from_millis(self.retry_after_max_ms));
        delay.max(floor)
    }

    /// Delay before notification retry `retry` (1-based), jittered, or `None` once the
    /// schedule is exhausted.
    pub fn notify_retry(&self, retry: u32) -> Option<Duration> {
        self.notify_schedule.delay(retry, rand::random())
    }

    /// Delay before poll `n` (1-based): the initial delay, then doubling, capped. No jitter:
    /// the schedule is a promise of promptness, not a retry storm to spread out.
    pub fn poll_delay(&self, n: u32) -> Duration {
        exponential(
            Duration::from_millis(self.poll_initial_ms),
            Duration::from_millis(self.poll_max_interval_ms.max(self.poll_initial_ms)),
            false,
            n,
        )
    }

    /// Whether polling has run out of time, `elapsed` after submission.
    pub fn poll_expired(&self, elapsed: Duration) -> bool {
        elapsed >= Duration::from_millis(self.poll_max_total_ms)
    }
}

/// Delay before an *apply* looks again for a row that `create` has not inserted yet (attempt
/// 1-based): `create` runs within milliseconds, so 100 ms doubling, capped at 5 s.
pub fn awaiting_row(attempt: u32) -> Duration {
    exponential(
        Duration::from_millis(100),
        Duration::from_secs(5),
        false,
        attempt,
    )
}

/// Delay before re-running a job that failed unexpectedly (Postgres down, a bug): 1 s doubling
/// to 60 s, with jitter so a recovering database is not hit by every job at once.
pub fn infrastructure_retry(attempt: u32) -> Duration {
    exponential(
        Duration::from_secs(1),
        Duration::from_secs(60),
        true,
        attempt,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_poll_schedule_is_200_ms_then_doubling_capped_at_60_s() {
        let s = Schedules::default();
        let delays: Vec<u64> = (1..=12)
            .map(|n| s.poll_delay(n).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            vec![
                200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000, 60000
            ]
        );
    }

    #[test]
    fn process_retries_stop_after_the_configured_count() {
        let s = Schedules::default();
        assert!(s.process_retry(3).is_some());
        assert!(s.process_retry(4).is_none());
        assert!(s.notify_retry(7).is_some());
        assert!(s.notify_retry(8).is_none());
    }

    #[test]
    fn rechecks_wait_even_without_retries() {
        let none = Schedules {
            process_retries: 0,
            process_backoff_ms: 500,
            ..Schedules::default()
        };
        assert_eq!(none.process_recheck(), Duration::from_millis(500));
        let d = Schedules::default().process_recheck();
        assert!(
            d >= Duration::from_secs(480) && d <= Duration::from_secs(960),
            "{d:?}"
        );
    }

    #[test]
    fn polling_expires_after_the_maximum_total() {
        let s = Schedules::default();
        assert!(!s.poll_expired(Duration::from_millis(3_599_999)));
        assert!(s.poll_expired(Duration::from_millis(3_600_000)));
    }

    #[test]
    fn a_transaction_is_lost_after_the_configured_404s_in_a_row() {
        let s = Schedules::default();
        assert!(!s.lost(2));
        assert!(s.lost(3) && s.lost(4));
        let eager = Schedules {
            lost_after_404s: 0,
            ..Schedules::DEFAULT
        };
        assert!(
            !eager.lost(0),
            "a chain that never saw a 404 never lost anything"
        );
        assert!(eager.lost(1));
    }

    #[test]
    fn a_missing_row_is_looked_for_again_soon() {
        // backon computes in floating point: a microsecond either way is the same delay.
        let about =
            |d: Duration, ms: u64| d.abs_diff(Duration::from_millis(ms)) < Duration::from_millis(1);
        assert!(about(awaiting_row(1), 100), "{:?}", awaiting_row(1));
        assert!(about(awaiting_row(2), 200), "{:?}", awaiting_row(2));
        assert!(
            about(awaiting_row(20), 5_000),
            "capped: {:?}",
            awaiting_row(20)
        );
    }

    #[test]
    fn retry_after_is_a_floor_under_the_cap() {
        let s = Schedules {
            retry_after_max_ms: 10_000,
            ..Schedules::DEFAULT
        };
        let ms = Duration::from_millis;
        assert_eq!(s.at_least_retry_after(ms(100), None), ms(100));
        assert_eq!(s.at_least_retry_after(ms(100), Some(ms(2_000))), ms(2_000));
        assert_eq!(
            s.at_least_retry_after(ms(5_000), Some(ms(2_000))),
            ms(5_000)
        );
        assert_eq!(
            s.at_least_retry_after(ms(100), Some(ms(99_000))),
            ms(10_000),
            "capped"
        );
    }

    proptest! {
        /// Retry k waits between base·2^(k-1) and twice that (jitter only adds, at most 100 %),
        /// so 120 s, 240 s, 480 s are never flattened by a cap.
        #[test]
        fn process_backoff_doubles_with_additive_jitter(base in 1u64..200_000, retries in 1u32..8, k in 1u32..8) {
            let s = Schedules { process_backoff_ms: base, process_retries: retries, ..Schedules::default() };
            match s.process_retry(k) {
                None => prop_assert!(k > retries),
                Some(d) => {
                    prop_assert!(k <= retries);
                    let nominal = base * (1 << (k - 1));
                    let ms = d.as_millis() as u64;
                    prop_assert!(ms >= nominal, "retry {k}: {ms} ms < {nominal} ms");
                    prop_assert!(ms <= 2 * nominal + 1, "retry {k}: {ms} ms > 2 × {nominal} ms");
                }
            }
        }

        /// Polls never wait less than the initial delay nor more than the cap, and never shrink.
        #[test]
        fn poll_delays_grow_within_bounds(initial in 1u64..10_000, cap in 1u64..600_000, n in 1u32..40) {
            let s = Schedules { poll_initial_ms: initial, poll_max_interval_ms: cap, ..Schedules::default() };
            let d = s.poll_delay(n).as_millis() as u64;
            let next = s.poll_delay(n + 1).as_millis() as u64;
            prop_assert!(d >= initial.min(cap.max(initial)));
            prop_assert!(d <= cap.max(initial));
            prop_assert!(next >= d);
        }

        #[test]
        fn infrastructure_retries_stay_within_two_minutes(attempt in 1u32..100) {
            let d = infrastructure_retry(attempt);
            prop_assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(120));
        }
    }

    #[test]
    fn the_notify_schedule_reads_as_written_and_jitters_within_a_fifth() {
        let s: NotifySchedule = NotifySchedule::DEFAULT.parse().unwrap();
        assert_eq!(s, NotifySchedule::default());
        assert_eq!(
            s.to_string(),
            NotifySchedule::DEFAULT,
            "it prints as it reads"
        );
        assert_eq!(s.retries(), 7);
        assert_eq!(s.delay(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(s.delay(1, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(s.delay(1, 1.0), Some(Duration::from_secs(6)));
        assert_eq!(s.delay(3, 0.5), Some(Duration::from_secs(30 * 60)));
        assert_eq!(s.delay(7, 0.5), Some(Duration::from_secs(10 * 3600)));
        assert_eq!(s.delay(8, 0.5), None, "exhausted after the last step");
        assert_eq!(s.delay(0, 0.5), None);
        assert_eq!(s.last(), Duration::from_secs(10 * 3600));
        let short: NotifySchedule = " 50ms, 1s ,".parse().unwrap();
        assert_eq!(short.to_string(), "50ms,1s");
        assert_eq!(
            serde_json::to_string(&short).unwrap(),
            "\"50ms,1s\"",
            "settings print it as text"
        );
        for (bad, error) in [
            ("", ScheduleError::Empty),
            ("5s,0s", ScheduleError::Zero),
            ("5s,soon", ScheduleError::NotADuration("soon".into())),
        ] {
            assert_eq!(bad.parse::<NotifySchedule>(), Err(error), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn a_jittered_delay_stays_within_a_fifth_of_its_step(retry in 1u32..=7, roll in 0.0f64..1.0) {
            let s = NotifySchedule::default();
            let step = s.delay(retry, 0.5).unwrap().as_secs_f64();
            let d = s.delay(retry, roll).unwrap().as_secs_f64();
            prop_assert!(d >= step * 0.8 - 1e-9 && d <= step * 1.2 + 1e-9);
        }
    }
}
