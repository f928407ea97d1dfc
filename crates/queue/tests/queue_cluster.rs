//! The queue's suite on Redis Cluster: every test on a 3-primary cluster of its own (started
//! with `redis-server --cluster-enabled yes` and `redis-cli --cluster create`, removed after).

mod support;

/// The suite runs on a cluster per test.
const ON_CLUSTER: bool = true;

include!("suite/tests.rs");
