//! `queue-bench`: the Redis queue alone, against a real Redis. Measures pushes/s from many
//! tasks, drain jobs/s with a no-op handler, Redis commands per job (push + fetch + ack, from
//! `INFO commandstats`, commands inside scripts included), how late delayed jobs start, and the
//! idle cost of a worker. Run it on a Redis nothing else is using; it cleans up after itself.
//!
//! `cargo run --release -p bench --bin queue-bench -- --jobs 200000`

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use apalis::prelude::*;
use bench::{command_counts, delta, percentile};
use clap::Parser;
use queue::{Job, Queue, QueueConfig, now_ms};
use serde::{Deserialize, Serialize};
use service::config::DEFAULT_REDIS_URL;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    /// Redis to run against.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    redis: String,
    /// Jobs pushed and drained.
    #[arg(long, default_value_t = 200_000)]
    jobs: u64,
    /// Tasks pushing at once.
    #[arg(long, default_value_t = 32)]
    push_tasks: u64,
    /// Worker concurrency while draining.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Fetch batch while draining.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Delayed jobs in the scheduling phase.
    #[arg(long, default_value_t = 2_000)]
    delayed: u64,
    /// Seconds of the idle phase.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payload {
    due_ms: u64,
}

#[derive(Default)]
struct Probe {
    done: AtomicU64,
    lateness_ms: Mutex<Vec<f64>>,
}

async fn handle(job: Payload, probe: Data<Arc<Probe>>) {
    if job.due_ms > 0 {
        let late = now_ms() as f64 - job.due_ms as f64;
        probe
            .lateness_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(late);
    }
    probe.done.fetch_add(1, Ordering::Relaxed);
}

fn start_pool(
    queue: &Queue<Payload>,
    concurrency: usize,
    probe: Arc<Probe>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let queue = queue.clone();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let monitor = Monitor::new().register(move |_| {
        WorkerBuilder::new("bench")
            .backend(queue.clone())
            .data(probe.clone())
            .concurrency(concurrency)
            .build(handle)
    });
    let task = tokio::spawn(async move {
        let _ = monitor
            .run_with_signal(async move {
                stopped.cancelled().await;
                Ok(())
            })
            .await;
    });
    (stop, task)
}

async fn wait_for(probe: &Probe, n: u64) {
    while probe.done.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let mut config = QueueConfig::new(prefix, "bench");
    config.fetch_batch = args.batch;
    let queue: Queue<Payload> = Queue::connect(&queue::RedisSettings::url(&args.redis), config)?;
    let mut stats_conn = queue::RedisClient::new(&queue::RedisSettings::url(&args.redis))?
        .shared(queue::BACKGROUND_TIMEOUT)?;

    // 1. Pushes from many tasks, one job per call.
    let before = command_counts(&mut stats_conn).await?;
    let started = Instant::now();
    let per_task = args.jobs / args.push_tasks;
    let total = per_task * args.push_tasks;
    let mut tasks = Vec::new();
    for t in 0..args.push_tasks {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                queue
                    .push(Job::now(format!("{t}-{i}"), Payload { due_ms: 0 }))
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let push_secs = started.elapsed().as_secs_f64();
    let after_push = command_counts(&mut stats_conn).await?;

    // 2. Drain with a no-op handler.
    let probe = Arc::new(Probe::default());
    let started = Instant::now();
    let (stop, pool) = start_pool(&queue, args.concurrency, probe.clone());
    wait_for(&probe, total).await;
    let drain_secs = started.elapsed().as_secs_f64();
    // Let the last acks land before counting.
    while queue.counts().await?.done < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after_drain = command_counts(&mut stats_conn).await?;
    let cmds_push = delta(&before, &after_push) as f64 / total as f64;
    let cmds_drain = delta(&after_push, &after_drain) as f64 / total as f64;

    // 3. Idle: the pool waits with nothing to do.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_before = command_counts(&mut stats_conn).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_after = command_counts(&mut stats_conn).await?;
    let idle_rate = delta(&idle_before, &idle_after) as f64 / args.idle_secs as f64;

    // 4. Delayed jobs, due 100–1100 ms ahead, pushed while the pool is idle.
    let base = probe.done.load(Ordering::Relaxed);
    let jobs: Vec<_> = (0..args.delayed)
        .map(|i| {
            let due_ms = now_ms() + 100 + (i * 1000 / args.delayed.max(1));
            Job::at(
                format!("d{i}"),
                Payload { due_ms },
                std::time::UNIX_EPOCH + Duration::from_millis(due_ms),
            )
        })
        .collect();
    for chunk in jobs.chunks(500) {
        queue.push_many(chunk).await?;
    }
    wait_for(&probe, base + args.delayed).await;
    let mut late = probe
        .lateness_ms
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    late.sort_by(f64::total_cmp);

    stop.cancel();
    let _ = pool.await;
    queue.delete_all().await?;

    let pushes_per_sec = total as f64 / push_secs;
    let drained_per_sec = total as f64 / drain_secs;
    println!(
        "queue-bench: {total} jobs, {} push tasks, concurrency {}, batch {}",
        args.push_tasks, args.concurrency, args.batch
    );
    println!("  pushes/s                     {pushes_per_sec:>10.0}");
    println!("  drained jobs/s               {drained_per_sec:>10.0}");
    println!(
        "  redis commands/job           {:>10.2}  (push {cmds_push:.2} + fetch/ack {cmds_drain:.2})",
        cmds_push + cmds_drain
    );
    println!(
        "  delayed start late p50/p99/max ms  {:.1} / {:.1} / {:.1}  (early: {})",
        percentile(&late, 50.0),
        percentile(&late, 99.0),
        late.last().copied().unwrap_or(f64::NAN),
        late.iter().filter(|l| **l < 0.0).count()
    );
    println!("  idle commands/s (one worker)  {idle_rate:>9.2}");
    println!(
        "{}",
        serde_json::json!({
            "jobs": total,
            "pushes_per_sec": pushes_per_sec.round(),
            "drained_per_sec": drained_per_sec.round(),
            "redis_cmds_per_job": ((cmds_push + cmds_drain) * 100.0).round() / 100.0,
            "delayed_late_p50_ms": percentile(&late, 50.0),
            "delayed_late_p99_ms": percentile(&late, 99.0),
            "idle_cmds_per_sec": (idle_rate * 100.0).round() / 100.0,
        })
    );
    Ok(())
}
