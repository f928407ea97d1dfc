//! The queue against real Redis. Every case of the suite runs twice: on the shared Redis
//! (under a prefix of its own, its keys deleted after) and on a 3-primary cluster of its own
//! (started with `redis-server --cluster-enabled yes`, removed after).

use std::{sync::Arc, time::Duration};

use queue::QueueConfig;
use support::{Pool, Probe};

/// Makes each named case of the suite (an `async fn(On)`) two tests: `shared::<case>` and
/// `cluster::<case>`.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        /// The suite on the shared Redis.
        mod shared {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::support::On::Shared).await
                }
            )*
        }
        /// The suite on a cluster per test.
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(crate::support::On::Cluster).await
                }
            )*
        }
    };
}

mod suite;
mod support;

/// The test name under which this binary, re-run, is the worker process of
/// `a_killed_worker_s_jobs_are_delivered_again_and_complete`.
const CHILD_WORKER: &str = "child_worker_process";

/// Not a test on its own: the worker process that `a_killed_worker_s_jobs_are_delivered_again`
/// starts and kills. It does nothing unless that test set its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker_process() {
    let (Ok(prefix), Ok(lease)) = (
        std::env::var("QUEUE_TEST_CHILD_PREFIX"),
        std::env::var("QUEUE_TEST_CHILD_LEASE_MS"),
    ) else {
        return;
    };
    let mut config = QueueConfig::new(prefix, "killed");
    config.lease = Duration::from_millis(lease.parse().unwrap());
    let settings = queue::RedisSettings {
        cluster: std::env::var("QUEUE_TEST_CHILD_CLUSTER").is_ok_and(|c| c == "true"),
        ..queue::RedisSettings::url(&std::env::var("QUEUE_TEST_CHILD_REDIS").unwrap())
    };
    let queue = queue::Queue::connect(&settings, config).unwrap();
    let _pool = Pool::start(&queue, 64, Arc::new(Probe::default()));
    tokio::time::sleep(Duration::from_secs(3600)).await;
}
