//! A private queue per test on the real Redis, a probe that records every handler run, and a
//! worker pool that can be stopped.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use apalis::prelude::*;
use queue::{Queue, QueueConfig, now_ms};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use testkit::RedisCluster;
pub use testkit::eventually;

/// Where a case of the suite runs.
#[derive(Debug, Clone, Copy)]
pub enum On {
    /// The shared Redis, under a prefix of the test's own.
    Shared,
    /// A 3-primary cluster of the test's own.
    Cluster,
}

use testkit::shared_redis_url as redis_url;

/// A queue config under a prefix no other test uses.
pub fn private_config(name: &str) -> QueueConfig {
    QueueConfig::new(format!("qtest-{}", uuid::Uuid::new_v4().simple()), name)
}

/// What a test's queue lives on: the shared Redis, or (in the cluster suite) a 3-primary
/// cluster of the test's own. Deletes the test queue's keys, or the cluster, when dropped.
pub struct Cleanup {
    keys: Vec<String>,
    /// The test's cluster, if it runs on one.
    pub cluster: Option<RedisCluster>,
}

impl Cleanup {
    /// How a process reaches the queue's Redis.
    pub fn settings(&self) -> queue::RedisSettings {
        match &self.cluster {
            Some(cluster) => cluster_settings(cluster),
            None => queue::RedisSettings::url(&redis_url()),
        }
    }
}

/// How the queue reaches `cluster`.
fn cluster_settings(cluster: &RedisCluster) -> queue::RedisSettings {
    queue::RedisSettings {
        cluster: true,
        ..queue::RedisSettings::url(&cluster.url())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.cluster.is_some() {
            return;
        }
        if let Ok(mut conn) = redis::Client::open(redis_url()).and_then(|c| c.get_connection()) {
            let _: Result<(), _> = redis::cmd("DEL").arg(&self.keys).query(&mut conn);
        }
    }
}

/// A private queue of `Msg` where `on` says, and the guard that deletes it.
pub fn private_queue(on: On, config: QueueConfig) -> (Queue<Msg>, Cleanup) {
    let cluster = match on {
        On::Shared => None,
        On::Cluster => Some(RedisCluster::start(3, 0, 2_000)),
    };
    let settings = match &cluster {
        Some(cluster) => cluster_settings(cluster),
        None => queue::RedisSettings::url(&redis_url()),
    };
    let queue = Queue::connect(&settings, config).expect("queue");
    let cleanup = Cleanup {
        keys: queue.keys().in_script_order().map(String::from).to_vec(),
        cluster,
    };
    (queue, cleanup)
}

/// What a test job asks its handler to do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Msg {
    /// Fail this many attempts before succeeding (u32::MAX = always).
    pub fail_times: u32,
    /// Sleep this long while running.
    pub sleep_ms: u64,
    /// Hang (sleep an hour) on this attempt; 0 = never.
    pub hang_on_attempt: usize,
    /// Panic instead of failing.
    pub panic: bool,
}

/// One handler run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub attempt: usize,
    pub started_ms: u64,
}

/// Records every run, by job id, and how many ran at once.
#[derive(Debug, Default)]
pub struct Probe {
    pub runs: Mutex<HashMap<String, Vec<Run>>>,
    running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub finished: AtomicUsize,
}

impl Probe {
    pub fn runs_of(&self, id: &str) -> Vec<Run> {
        self.runs
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn total_runs(&self) -> usize {
        self.runs.lock().unwrap().values().map(Vec::len).sum()
    }
}

/// The one handler every test pool runs.
pub async fn handle(
    msg: Msg,
    id: TaskId,
    attempt: Attempt,
    probe: Data<Arc<Probe>>,
) -> Result<(), BoxDynError> {
    let attempt = attempt.current();
    probe
        .runs
        .lock()
        .unwrap()
        .entry(id.to_string())
        .or_default()
        .push(Run {
            attempt,
            started_ms: now_ms(),
        });
    let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
    probe.max_running.fetch_max(now, Ordering::SeqCst);
    if msg.hang_on_attempt == attempt {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if msg.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(msg.sleep_ms)).await;
    }
    probe.running.fetch_sub(1, Ordering::SeqCst);
    let fail = msg.fail_times == u32::MAX || attempt <= msg.fail_times as usize;
    if fail && msg.panic {
        panic!("asked to panic on attempt {attempt}");
    }
    if fail {
        return Err(format!("asked to fail on attempt {attempt}").into());
    }
    probe.finished.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// A running worker pool; `stop` shuts it down gracefully.
pub struct Pool {
    stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Pool {
    pub fn start(queue: &Queue<Msg>, concurrency: usize, probe: Arc<Probe>) -> Self {
        let queue = queue.clone();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let monitor = Monitor::new()
            .register(move |_| {
                WorkerBuilder::new(format!("test-{}", uuid::Uuid::new_v4().simple()))
                    .backend(queue.clone())
                    .data(probe.clone())
                    .concurrency(concurrency)
                    .build(handle)
            })
            .shutdown_timeout(Duration::from_secs(10));
        let done = tokio::spawn(async move {
            monitor
                .run_with_signal(async move {
                    stopped.cancelled().await;
                    Ok(())
                })
                .await
                .expect("monitor ran");
        });
        Self { stop, done }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.done.await.expect("pool task");
    }
}
