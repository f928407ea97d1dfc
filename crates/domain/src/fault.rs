//! Deterministic fault injection for the simulators: whether a fault hits a call is a pure
//! function of (seed, subject, call number, fault kind), so a run can be repeated exactly.

use std::{fmt, str::FromStr};

/// A probability between 0.0 and 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rate(f64);

impl Rate {
    /// Never.
    pub const NEVER: Rate = Rate(0.0);

    /// The probability.
    pub fn value(&self) -> f64 {
        self.0
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number"))?;
        if (0.0..=1.0).contains(&v) {
            Ok(Rate(v))
        } else {
            Err(format!("{v} is not a rate between 0.0 and 1.0"))
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// splitmix64: a small, well-mixed, stable hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in [0, 1) determined by its inputs alone.
pub fn uniform(seed: u64, subject: u128, call: u64, kind: u64) -> f64 {
    let mut h = mix(seed ^ mix(kind));
    h = mix(h ^ (subject as u64));
    h = mix(h ^ ((subject >> 64) as u64));
    h = mix(h ^ call);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a fault of `kind` with `rate` hits call `call` about `subject`.
pub fn hits(rate: Rate, seed: u64, subject: u128, call: u64, kind: u64) -> bool {
    rate.0 > 0.0 && uniform(seed, subject, call, kind) < rate.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_are_repeatable_and_roughly_uniform() {
        assert_eq!(uniform(1, 42, 1, 7), uniform(1, 42, 1, 7));
        assert_ne!(uniform(1, 42, 1, 7), uniform(2, 42, 1, 7));
        let hit_count = (0..10_000u128)
            .filter(|s| hits(Rate(0.3), 9, *s, 1, 1))
            .count();
        assert!(
            (2_700..3_300).contains(&hit_count),
            "{hit_count} hits of 10000 at 0.3"
        );
        assert!(!(0..1000u128).any(|s| hits(Rate::NEVER, 9, s, 1, 1)));
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        assert!("0.25".parse::<Rate>().is_ok());
        assert!("1.5".parse::<Rate>().is_err());
        assert!("-0.1".parse::<Rate>().is_err());
        assert!("often".parse::<Rate>().is_err());
    }
}
