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

/// `now + delay` as a Postgres timestamp.
pub(crate) fn after(delay: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default()
}
