//! Throughput per queue: done jobs and failed attempts per 10 s bucket over the last 15 min.
//!
//! Every consumer samples each queue's lifetime counters once per bucket into Redis
//! (`lua/throughput.lua`; the first sample of a bucket counts), so the history is shared by all
//! processes and survives their restarts. A bucket's figures are the counters' growth from its
//! sample to the next one; the current bucket grows until now.

use serde::Serialize;

use crate::{Queue, QueueError, scripts};

/// The width of a bucket.
pub const BUCKET_MS: u64 = 10_000;

/// How many buckets are kept and shown: 15 minutes.
pub const BUCKETS: u64 = 90;

/// One bucket's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// The bucket's start, ms since the epoch.
    pub at_ms: u64,
    /// Jobs completed in it.
    pub done: f64,
    /// Attempts that failed in it (re-scheduled or dead-lettered).
    pub failed: f64,
}

/// The counters at the start of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The bucket (ms since the epoch / [`BUCKET_MS`]).
    pub bucket: u64,
    /// Lifetime done count then.
    pub done: u64,
    /// Lifetime failed attempts then.
    pub failed: u64,
}

impl Sample {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':').map(str::parse::<u64>);
        Some(Self {
            bucket: parts.next()?.ok()?,
            done: parts.next()?.ok()?,
            failed: parts.next()?.ok()?,
        })
    }
}

/// The last [`BUCKETS`] buckets up to the one holding `now_ms`, oldest first, from `samples`
/// (oldest first) and the counters now. The growth between two samples is spread evenly over
/// the buckets between them (no consumer sampled in a gap); a counter that went down (Redis
/// lost its data) counts as no growth. Buckets before the first sample are zero.
pub fn points(samples: &[Sample], now_ms: u64, done: u64, failed: u64) -> Vec<Point> {
    let current = now_ms / BUCKET_MS;
    let first = current + 1 - BUCKETS;
    let mut out: Vec<Point> = (first..=current)
        .map(|b| Point {
            at_ms: b * BUCKET_MS,
            done: 0.0,
            failed: 0.0,
        })
        .collect();
    // The counters now stand for the end of the current bucket.
    let now = Sample {
        bucket: current + 1,
        done,
        failed,
    };
    let mut samples: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.bucket <= current)
        .collect();
    samples.push(now);
    for pair in samples.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let width = to.bucket.saturating_sub(from.bucket);
        if width == 0 {
            continue;
        }
        let done = to.done.saturating_sub(from.done) as f64 / width as f64;
        let failed = to.failed.saturating_sub(from.failed) as f64 / width as f64;
        for b in from.bucket.max(first)..to.bucket.min(current + 1) {
            let p = &mut out[(b - first) as usize];
            p.done += done;
            p.failed += failed;
        }
    }
    out
}

impl<T> Queue<T> {
    /// Records this bucket's sample of the counters, unless another process did.
    pub async fn sample_throughput(&self) -> Result<(), QueueError> {
        self.read_throughput(true).await.map(|_| ())
    }

    /// Done jobs and failed attempts per bucket, the last [`BUCKETS`] up to now.
    pub async fn throughput(&self) -> Result<Vec<Point>, QueueError> {
        self.read_throughput(false).await
    }

    async fn read_throughput(&self, sample: bool) -> Result<Vec<Point>, QueueError> {
        let (now_ms, done, failed, samples): (u64, u64, u64, Vec<String>) =
            scripts::invocation(&scripts::THROUGHPUT, self.keys())
                .arg(if sample { "1" } else { "0" })
                .arg(BUCKETS)
                .invoke_async(&mut self.conn())
                .await?;
        let samples: Vec<Sample> = samples.iter().filter_map(|s| Sample::parse(s)).collect();
        Ok(points(&samples, now_ms, done, failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000 * BUCKET_MS + 4_000;

    fn sample(bucket: u64, done: u64, failed: u64) -> Sample {
        Sample {
            bucket,
            done,
            failed,
        }
    }

    #[test]
    fn the_window_is_fifteen_minutes_of_ten_second_buckets_ending_now() {
        let p = points(&[], NOW, 0, 0);
        assert_eq!(p.len(), 90);
        assert_eq!(p[89].at_ms, 1_000 * BUCKET_MS);
        assert_eq!(p[0].at_ms, 911 * BUCKET_MS);
        assert!(p.iter().all(|p| p.done == 0.0 && p.failed == 0.0));
    }

    #[test]
    fn each_bucket_holds_the_growth_to_the_next_sample_and_the_current_one_grows_until_now() {
        let samples = [
            sample(998, 100, 1),
            sample(999, 130, 1),
            sample(1_000, 150, 4),
        ];
        let p = points(&samples, NOW, 157, 5);
        assert_eq!((p[87].done, p[87].failed), (30.0, 0.0));
        assert_eq!((p[88].done, p[88].failed), (20.0, 3.0));
        assert_eq!((p[89].done, p[89].failed), (7.0, 1.0));
        assert_eq!(p[86].done, 0.0, "nothing is known before the first sample");
    }

    #[test]
    fn growth_over_a_gap_in_the_samples_is_spread_over_it() {
        let samples = [sample(996, 0, 0), sample(1_000, 40, 8)];
        let p = points(&samples, NOW, 40, 8);
        for point in &p[85..=88] {
            assert_eq!((point.done, point.failed), (10.0, 2.0));
        }
        assert_eq!(p[89].done, 0.0);
        // No sample yet in the current bucket: the growth since the last one is spread too.
        let p = points(&[sample(999, 0, 0)], NOW, 10, 0);
        assert_eq!((p[88].done, p[89].done), (5.0, 5.0));
    }

    #[test]
    fn samples_older_than_the_window_count_only_inside_it_and_losses_count_as_nothing() {
        let samples = [sample(800, 0, 0), sample(1_000, 200, 0)];
        let p = points(&samples, NOW, 100, 0);
        assert_eq!(p[0].done, 1.0, "200 over 200 buckets, 89 of them inside");
        assert_eq!(p.iter().map(|p| p.done).sum::<f64>(), 89.0);
        assert_eq!(p[89].done, 0.0, "the counters went down: Redis lost them");
    }

    #[test]
    fn samples_parse_and_garbage_is_skipped() {
        assert_eq!(Sample::parse("1000:5:2"), Some(sample(1_000, 5, 2)));
        assert_eq!(Sample::parse("1000:5"), None);
        assert_eq!(Sample::parse("x:5:2"), None);
    }
}
