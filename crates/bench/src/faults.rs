//! The chaos run's fault schedule: a pure function of a seed, so any run can be reproduced.
//! Faults come one after another (each ends before the next starts), spread over the load
//! with jitter, and every kind comes once before any comes twice.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

/// One fault and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a process (a producer or a consumer, by instance name), restart it after `down`.
    Kill {
        /// The instance.
        name: String,
        /// How long it stays down.
        down: Duration,
    },
    /// SIGKILL Redis and restart it on its AOF after `down`.
    KillRedis {
        /// How long it stays down.
        down: Duration,
    },
    /// SIGSTOP Redis for `stalled`, then SIGCONT: every connection hangs meanwhile.
    StallRedis {
        /// How long it hangs.
        stalled: Duration,
    },
    /// Stop Postgres (`-m immediate`) and start it again after `down`.
    StopPostgres {
        /// How long it stays down.
        down: Duration,
    },
    /// The third party answers 503 to everything for `lasting`.
    ThirdPartyOutage {
        /// How long.
        lasting: Duration,
    },
}

impl Fault {
    /// Its kind, for counting.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill { name, .. } if name.starts_with("producer") => "kill producer",
            Fault::Kill { .. } => "kill consumer",
            Fault::KillRedis { .. } => "kill redis",
            Fault::StallRedis { .. } => "stall redis",
            Fault::StopPostgres { .. } => "stop postgres",
            Fault::ThirdPartyOutage { .. } => "third-party outage",
        }
    }
}

/// A fault and when it starts, from the start of the load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// When.
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

/// The faults of a run of `duration` with seed `seed`, about one every `every`, over the
/// instances `killable` (producers and consumers); in order of `at`. The first comes after a
/// tenth of the run, the last ends before its last tenth.
pub fn schedule(
    seed: u64,
    duration: Duration,
    every: Duration,
    killable: &[String],
) -> Vec<Scheduled> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = duration / 10;
    let end = duration - duration / 10;
    let count = ((end - start).as_millis() / every.as_millis().max(1)) as usize;
    // Kinds dealt from shuffled decks: each kind once per deck.
    let mut deck: Vec<usize> = Vec::new();
    let mut faults = Vec::with_capacity(count);
    let mut at = start;
    for _ in 0..count {
        if deck.is_empty() {
            deck = (0..5).collect();
            deck.shuffle(&mut rng);
        }
        let lasting = Duration::from_millis(rng.random_range(500..=4_000));
        let fault = match deck.pop().unwrap_or(0) {
            0 if !killable.is_empty() => Fault::Kill {
                name: killable[rng.random_range(0..killable.len())].clone(),
                down: lasting,
            },
            1 => Fault::KillRedis { down: lasting },
            2 => Fault::StallRedis { stalled: lasting },
            3 => Fault::StopPostgres { down: lasting },
            _ => Fault::ThirdPartyOutage { lasting },
        };
        // The next one starts `every` later, ± a third, but never before this one ends.
        let jitter = every.mul_f64(rng.random_range(0.67..1.33));
        faults.push(Scheduled { at, fault });
        at += jitter.max(lasting + Duration::from_millis(500));
        if at + lasting >= end {
            break;
        }
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    fn killable() -> Vec<String> {
        [
            "producer",
            "producer-2",
            "consumer-create",
            "consumer-notify",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn a_seed_gives_the_same_schedule_and_another_seed_another() {
        let minute = Duration::from_secs(60);
        let every = Duration::from_secs(8);
        let a = schedule(7, minute, every, &killable());
        assert_eq!(a, schedule(7, minute, every, &killable()));
        assert_ne!(a, schedule(8, minute, every, &killable()));
    }

    #[test]
    fn faults_do_not_overlap_and_stay_inside_the_run() {
        for seed in 0..50 {
            let run = Duration::from_secs(240);
            let faults = schedule(seed, run, Duration::from_secs(13), &killable());
            assert!(faults.len() >= 12, "seed {seed}: {}", faults.len());
            assert!(faults[0].at >= run / 10);
            for pair in faults.windows(2) {
                let lasting = match &pair[0].fault {
                    Fault::Kill { down, .. }
                    | Fault::KillRedis { down }
                    | Fault::StopPostgres { down } => *down,
                    Fault::StallRedis { stalled } => *stalled,
                    Fault::ThirdPartyOutage { lasting } => *lasting,
                };
                assert!(pair[1].at > pair[0].at + lasting, "seed {seed}: overlap");
            }
        }
    }

    #[test]
    fn every_kind_comes_once_before_any_comes_twice() {
        let faults = schedule(
            3,
            Duration::from_secs(240),
            Duration::from_secs(13),
            &killable(),
        );
        let kinds: std::collections::HashSet<&str> =
            faults[..5].iter().map(|f| f.fault.kind()).collect();
        // The kill deck entry is a producer or a consumer: 5 kinds of 6 names.
        assert_eq!(kinds.len(), 5, "{faults:?}");
    }
}
