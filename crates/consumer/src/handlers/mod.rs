//! One handler per queue. Delivery is at least once, so each is idempotent: it reads the row,
//! does only what is still owed, and records follow-up work in Postgres before pushing it.

pub mod create;
pub mod notify;
pub mod process;
pub mod update;

use std::{sync::Arc, time::Duration};

use apalis::prelude::Data;
use chrono::{DateTime, Utc};

use crate::pipeline::Pipeline;

/// The shared context as handlers receive it.
pub type Ctx = Data<Arc<Pipeline>>;

/// `now + delay` as a Postgres timestamp. A delay past the calendar's end (only a
/// misconfigured schedule can make one) is the latest timestamp, never "now".
pub(crate) fn after(delay: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| Utc::now().checked_add_signed(delay))
        .unwrap_or_else(|| {
            tracing::warn!(?delay, "delay out of range: due at the latest timestamp");
            DateTime::<Utc>::MAX_UTC
        })
}

/// How long ago `at` was; zero for an instant in the future (another host's clock ahead).
pub(crate) fn since(at: DateTime<Utc>) -> Duration {
    (Utc::now() - at).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_since_an_instant_is_never_negative() {
        let ago = since(Utc::now() - chrono::Duration::seconds(60));
        assert!((60..=61).contains(&ago.as_secs()), "{ago:?}");
        assert_eq!(
            since(Utc::now() + chrono::Duration::seconds(60)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_delay_is_added_to_now_and_an_overflow_is_never_now() {
        let soon = after(Duration::from_secs(60)) - Utc::now();
        assert!((59..=60).contains(&soon.num_seconds()), "{soon}");
        assert_eq!(after(Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
