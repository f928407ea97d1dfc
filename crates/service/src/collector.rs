//! Whether the OTLP collector takes the spans sent to it. Recording spans is most of what
//! export costs the pipeline (measured), so while exports fail nothing is recorded: after each
//! failed export recording pauses, 5 s after the first failure and twice as long after each
//! further one in a row, at most 5 min. When a pause ends, recording resumes and the next
//! export decides again. The trace still goes on meanwhile: work passes its caller's
//! `traceparent` on, as without an exporter.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SpanData, SpanExporter},
};

/// The pause after the first failed export.
const FIRST_PAUSE: Duration = Duration::from_secs(5);
/// The longest pause, however many exports failed in a row.
const LONGEST_PAUSE: Duration = Duration::from_secs(300);

/// How long recording pauses after `failures` failed exports in a row (at least one).
pub(crate) fn pause_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    FIRST_PAUSE
        .saturating_mul(1u32 << doublings)
        .min(LONGEST_PAUSE)
}

/// The collector's state as the exports have shown it: failed exports in a row, and until
/// when recording pauses.
#[derive(Debug)]
pub(crate) struct Health {
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which nothing is recorded; 0 while recording.
    paused_until: AtomicU64,
    epoch: Instant,
}

impl Health {
    fn new() -> Self {
        Self {
            failures: AtomicU32::new(0),
            paused_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether spans are recorded now: no failed export, or the pause after one is over.
    pub(crate) fn taking(&self) -> bool {
        self.taking_at(self.now_ms())
    }

    /// Notes how an export ended, pausing recording after a failure.
    pub(crate) fn exported(&self, ok: bool) -> Change {
        self.exported_at(ok, self.now_ms())
    }

    /// [`Health::taking`] at `now` (ms since `epoch`).
    fn taking_at(&self, now: u64) -> bool {
        match self.paused_until.load(Ordering::Relaxed) {
            0 => true,
            until => now >= until,
        }
    }

    /// [`Health::exported`] at `now` (ms since `epoch`).
    fn exported_at(&self, ok: bool, now: u64) -> Change {
        if ok {
            let failed_before = self.failures.swap(0, Ordering::Relaxed) > 0;
            self.paused_until.store(0, Ordering::Relaxed);
            return if failed_before {
                Change::Resumed
            } else {
                Change::None
            };
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let pause = pause_after(failures);
        let until = now.saturating_add(pause.as_millis() as u64).max(1);
        self.paused_until.store(until, Ordering::Relaxed);
        Change::Paused(pause)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// What an export's end changed about recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing: it went through, as the one before.
    None,
    /// It failed: nothing is recorded for this long.
    Paused(Duration),
    /// It went through after failures: recording goes on.
    Resumed,
}

/// The process's collector health, as its exporter reports it.
pub(crate) fn health() -> &'static Health {
    static HEALTH: OnceLock<Health> = OnceLock::new();
    HEALTH.get_or_init(Health::new)
}

/// An exporter whose every export tells [`health`] whether the collector took the spans.
#[derive(Debug)]
pub(crate) struct Watched<E>(pub(crate) E);

impl<E: SpanExporter> SpanExporter for Watched<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let spans = batch.len();
        let export = self.0.export(batch);
        async move {
            let result = export.await;
            match (health().exported(result.is_ok()), &result) {
                (Change::Paused(pause), Err(error)) => tracing::warn!(
                    %error,
                    spans,
                    pause_s = pause.as_secs(),
                    "traces: the collector did not take the spans; none are recorded during the pause, then an export tries again"
                ),
                (Change::Resumed, _) => {
                    tracing::info!("traces: the collector takes spans again; recording resumed")
                }
                _ => {}
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_in_a_row_doubles_the_pause_up_to_five_minutes() {
        let pauses: Vec<u64> = (1..=8).map(|n| pause_after(n).as_secs()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(pause_after(u32::MAX), LONGEST_PAUSE);
        assert_eq!(pause_after(0), FIRST_PAUSE, "no underflow");
    }

    #[test]
    fn a_failed_export_pauses_recording_until_its_pause_is_over_or_a_good_export() {
        let health = Health::new();
        assert!(health.taking_at(0), "recording until an export fails");
        assert_eq!(health.exported_at(true, 0), Change::None);
        assert!(health.taking_at(0));

        assert_eq!(
            health.exported_at(false, 1_000),
            Change::Paused(Duration::from_secs(5))
        );
        assert!(!health.taking_at(1_000), "paused after a failure");
        assert!(!health.taking_at(5_999));
        assert!(
            health.taking_at(6_000),
            "the pause is over: an export may try"
        );
        assert_eq!(
            health.exported_at(false, 6_100),
            Change::Paused(Duration::from_secs(10))
        );
        assert!(
            !health.taking_at(16_099),
            "twice as long after a second failure"
        );
        assert!(health.taking_at(16_100));

        assert_eq!(health.exported_at(true, 16_500), Change::Resumed);
        assert!(health.taking_at(16_500), "a good export resumes recording");
        assert_eq!(
            health.exported_at(false, 20_000),
            Change::Paused(Duration::from_secs(5)),
            "the count starts again after a good export"
        );
        assert!(!health.taking_at(24_999));
    }

    #[test]
    fn the_process_clock_pauses_too() {
        let health = Health::new();
        assert!(health.taking());
        health.exported(false);
        assert!(!health.taking(), "a pause of 5 s has not ended yet");
        health.exported(true);
        assert!(health.taking());
    }
}
