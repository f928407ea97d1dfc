//! The queue against a real Redis: every test has its own prefix and deletes its keys.

mod support;

/// The suite runs on the shared Redis.
const ON_CLUSTER: bool = false;

include!("suite/tests.rs");
