//! `txn-bench`: real HTTP load at the pipeline, in two phases.
//!
//! 1. POST throughput and latency against a producer alone: one started in this process (with
//!    `--spawn`: the `producer` binary) on a queue prefix of its own (purged afterwards, so no
//!    backlog piles up behind a running consumer), with `--concurrency` keep-alive connections
//!    from one thread for `--duration` seconds. Latency is corrected for coordinated omission.
//!    `--durable-redis` runs it against a private `redis-server` with `appendonly yes` +
//!    `appendfsync always` instead of `--redis`. `--peer` compares it with another producer in
//!    the same run: rounds of the peer's and ours, each on a fresh private Redis (`peer`).
//! 2. End to end against a running stack (`cargo run --release --bin stack`; with `--spawn`,
//!    the four binaries started as processes of their own, on the private durable Redis with
//!    `--durable-redis`): `--transactions`
//!    POSTs, timed until the client simulator has heard a terminal status for each; with the
//!    Redis commands (`INFO commandstats`) and Postgres commits (`pg_stat_database`) they cost.
//!
//! Prints a table, then one JSON line with the same figures.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use bench::{
    command_counts, delta, load, peer, pg_counters,
    progress::{bar, follow, spinner},
    services::{self, Lineup, Services},
};
use bytes::Bytes;
use clap::Parser;
use domain::{WebhookSecrets, client_app::Pepper};
use serde::Deserialize;
use service::config::{Connections, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "txn-bench",
    about = "Load and end-to-end benchmark of the transaction pipeline"
)]
struct Args {
    /// The running stack's producer (phase 2).
    #[arg(long, default_value = "http://127.0.0.1:3100")]
    producer: String,
    /// The running stack's API key (phase 2 without `--spawn`): its `dev` client app's.
    #[arg(long, env = "DEV_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Redis (phase 1's producer, and command counts).
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    redis: String,
    /// `--redis` is a Redis Cluster (its seed nodes, comma-separated).
    #[arg(long, env = "REDIS_CLUSTER", default_value_t = false, action = clap::ArgAction::Set)]
    redis_cluster: bool,
    /// The stack's database (commit counts).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    database: String,
    /// The running stack's client simulator (phase 2 counts completions there).
    #[arg(long, default_value = "http://127.0.0.1:3400")]
    client_sim: String,
    /// Seconds of phase 1's measurement (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Transactions of phase 2.
    #[arg(long, default_value_t = 20_000)]
    transactions: u64,
    /// Run phase 1 (and with `--spawn`, phase 2) against a private redis-server that fsyncs
    /// every write (appendfsync always).
    #[arg(long)]
    durable_redis: bool,
    /// Both phases send bodies without an id: the producer makes each one, which no one can
    /// know, so it asks Postgres nothing. By default every body carries the client's own id
    /// (a random UUID, as the peer's wrk script sends), as the clients do.
    #[arg(long)]
    server_ids: bool,
    /// Phase 1 is compared with another producer's in the same run: `--rounds` rounds, each
    /// this command's producer and then ours, each on a fresh private Redis with the same flags
    /// (`--durable-redis`: AOF `always`; else no persistence). The command runs with `sh -c`,
    /// `PORT` and `REDIS_URL` set, and is sent the same bodies, with an API key it does not know.
    #[arg(long, value_name = "COMMAND")]
    peer: Option<String>,
    /// Rounds of the comparison with `--peer`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Skip phase 1.
    #[arg(long)]
    no_post: bool,
    /// Skip phase 2.
    #[arg(long)]
    no_e2e: bool,
    /// The services run as separate processes, as deployed: the release binaries in
    /// `--bin-dir`, started with this process's environment plus free ports, `--redis`, and a
    /// database and a queue prefix of the run's own. Phase 1 starts the producer alone and
    /// reports its and Redis's CPU per request; phase 2 starts all four and reports CPU time
    /// per transaction for each process, Redis and the Postgres backends. `--producer` and
    /// `--client-sim` are then ignored and `--database` names the server (the run's database
    /// is created and dropped there).
    #[arg(long)]
    spawn: bool,
    /// Where `--spawn` finds the binaries (default: beside this one).
    #[arg(long)]
    bin_dir: Option<std::path::PathBuf>,
}

fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let hostport = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let hostport = hostport.replace("localhost", "127.0.0.1");
    Ok(hostport.parse()?)
}

struct PostFigures {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    failed: u64,
    /// CPU µs per request of the producer and of Redis (only with `--spawn`).
    cpu_us: Option<(f64, f64)>,
    /// Redis bytes per accepted transaction at the phase's end: with no consumer running,
    /// every one is still waiting in the backlog.
    backlog_bytes: f64,
}

/// Phase 1: a producer alone, on a queue prefix of its own (purged afterwards), on the Redis
/// at `redis_url` (a cluster if `cluster`). With `--spawn`, the `producer` binary as a process
/// of its own; else one in this process.
async fn post_phase(args: &Args, redis_url: &str, cluster: bool) -> anyhow::Result<PostFigures> {
    let redis = bench::redis(redis_url, cluster)?;
    if args.spawn {
        let settings = services::Redis {
            url: redis_url,
            cluster,
        };
        let services = Services::start(
            &bin_dir(args)?,
            &args.database,
            &settings,
            Lineup::ProducerAlone,
        )
        .await?;
        let producer = socket_addr(&services.producer)?;
        let figures = drive_post(args, producer, &services.api_keys, &redis, Some(&services)).await;
        if figures.is_err() {
            eprintln!("the producer's log: {}", services.logs().display());
        }
        services.stop(figures.is_err()).await?;
        figures
    } else {
        let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let figures = in_process_post(args, redis_url, cluster, &redis, &prefix).await;
        bench::purge(&redis, &prefix).await?;
        figures
    }
}

/// Phase 1 against a producer started in this process, as the `producer` binary runs it: a
/// runtime of one thread of its own.
async fn in_process_post(
    args: &Args,
    redis_url: &str,
    cluster: bool,
    redis: &queue::RedisConnection,
    prefix: &str,
) -> anyhow::Result<PostFigures> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let pepper = Pepper::generate();
    let mut config = <producer::Config as Parser>::try_parse_from([
        "producer".to_string(),
        format!("--webhook-secret={}", WebhookSecrets::generate().expose()),
        format!("--api-key-pepper={pepper}"),
    ])?;
    config.connections = Connections::local(args.database.parse()?, redis_url.parse()?, prefix);
    // Two client apps of this run's own, on the migrated database, each with its own secret.
    let store = store::Store::connect_lazy(&args.database, 1)?;
    store.migrate().await?;
    let mut keys = Vec::new();
    for n in 1..=2 {
        let key = config.api_key_pepper.new_key();
        let bench_app = store::NewClientApp {
            name: &format!("bench-{prefix}-{n}"),
            notify_url: "http://127.0.0.1:3400",
            rate_limit_per_s: None,
            burst: None,
        };
        let secret = WebhookSecrets::generate().expose();
        store.create_client_app(&bench_app, &key, &secret).await?;
        keys.push(key.plaintext);
    }
    config.connections.redis_cluster = cluster;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let listener = listener.into_std()?;
    let server = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            producer::run(config, listener, stopped).await
        })
    });
    let figures = drive_post(args, addr, &keys, redis, None).await;
    stop.cancel();
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    figures
}

/// The API key the peer is sent: one it does not know (it checks none), so that its requests
/// carry the header ours do.
const PEER_API_KEY: &str = "txk_00000000000000ff_peer-does-not-check-keys";

/// Phase 1 against `--peer` in the same run, interleaved: each round the peer and then ours,
/// each on a fresh private Redis started with the same flags, driven alike. Returns the
/// rounds and our figures of each.
async fn compared_post_phase(
    args: &Args,
    command: &str,
) -> anyhow::Result<(Vec<peer::Round>, Vec<PostFigures>)> {
    let options = testkit::RedisOptions {
        durable: args.durable_redis,
        tls: None,
    };
    let logs = testkit::temp_dir("txn-bench-peer")?;
    let (mut rounds, mut ours) = (Vec::new(), Vec::new());
    for n in 1..=args.rounds {
        let redis = testkit::PrivateRedis::start_with(options.clone()).await?;
        let peer = peer::Peer::start(command, &redis.url(), &logs.join(format!("{n}.log"))).await?;
        let conn = bench::redis(&redis.url(), false)?;
        let theirs = drive_post(args, peer.addr, &[PEER_API_KEY.into()], &conn, None)
            .await
            .map_err(|e| e.context(format!("the peer's output: {}", peer.log.display())))?;
        drop((peer, conn, redis));
        let redis = testkit::PrivateRedis::start_with(options.clone()).await?;
        let figures = post_phase(args, &redis.url(), false).await?;
        drop(redis);
        let round = peer::Round {
            peer_rps: theirs.rps,
            peer_p99_ms: theirs.p99,
            ours_rps: figures.rps,
            ours_p99_ms: figures.p99,
        };
        eprintln!(
            "round {n}: peer {:.0} req/s (p99 {:.2} ms, {} non-2xx), ours {:.0} req/s (p99 {:.2} ms, {} non-2xx): {:.2}x",
            theirs.rps,
            theirs.p99,
            theirs.failed,
            figures.rps,
            figures.p99,
            figures.failed,
            round.ratio()
        );
        rounds.push(round);
        ours.push(figures);
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok((rounds, ours))
}

/// POSTs to the producer at `addr` from one thread of their own (as `wrk -t1`): a 2 s warm-up,
/// then `--duration` seconds measured; with the CPU its process and Redis used meanwhile when
/// it is one of `services`, and the Redis memory the accepted transactions hold.
async fn drive_post(
    args: &Args,
    addr: SocketAddr,
    api_keys: &[String],
    redis: &queue::RedisConnection,
    services: Option<&Services>,
) -> anyhow::Result<PostFigures> {
    let body = post_body(args);
    let mut redis_conn = redis.clone();
    let memory_before = bench::used_memory(&mut redis_conn).await?;
    let plan = |deadline: Instant, interval: Option<Duration>| load::Plan {
        addr,
        path: "/transaction".into(),
        api_keys: api_keys.to_vec(),
        body: body.clone(),
        limit: None,
        deadline: Some(deadline),
        expected_interval: interval,
    };

    // Warm-up: also measures the mean interval between requests on one connection.
    let warm = load::run_on_own_thread(
        plan(Instant::now() + Duration::from_secs(2), None),
        args.concurrency,
        Arc::default(),
    )
    .await?;
    let interval = warm
        .elapsed
        .mul_f64(args.concurrency as f64 / warm.ok.max(1) as f64);

    let cpu_before = match services {
        Some(services) => Some(services.cpu(&mut redis_conn).await?),
        None => None,
    };
    let done = Arc::new(AtomicU64::new(0));
    let progress = follow(spinner("POST /transaction"), done.clone());
    let measured = load::run_on_own_thread(
        plan(
            Instant::now() + Duration::from_secs(args.duration),
            Some(interval),
        ),
        args.concurrency,
        done,
    )
    .await?;
    progress.abort();
    let cpu_us = match (services, cpu_before) {
        (Some(services), Some(before)) => {
            let used = services.cpu(&mut redis_conn).await?.since(&before);
            let per_request = |name: &str| {
                used.get(name).copied().unwrap_or(0.0) * 1e6 / measured.ok.max(1) as f64
            };
            Some((per_request("producer"), per_request("redis")))
        }
        _ => None,
    };
    let accepted = warm.ok + measured.ok;
    let memory_after = bench::used_memory(&mut redis_conn).await?;
    let backlog_bytes = memory_after.saturating_sub(memory_before) as f64 / accepted.max(1) as f64;
    let h = &measured.latency_us;
    Ok(PostFigures {
        rps: measured.ok as f64 / measured.elapsed.as_secs_f64(),
        p50: h.value_at_quantile(0.50) as f64 / 1000.0,
        p99: h.value_at_quantile(0.99) as f64 / 1000.0,
        p999: h.value_at_quantile(0.999) as f64 / 1000.0,
        failed: measured.failed,
        cpu_us,
        backlog_bytes,
    })
}

/// The body of every POST, in both phases: the client's own id (a random UUID), or none with
/// `--server-ids`.
fn post_body(args: &Args) -> Arc<dyn Fn(u64) -> Bytes + Send + Sync> {
    if args.server_ids {
        Arc::new(|_| Bytes::from_static(br#"{"amount":1250,"currency":"EUR"}"#))
    } else {
        Arc::new(|_| {
            Bytes::from(format!(
                r#"{{"id":"{}","amount":1250,"currency":"EUR"}}"#,
                uuid::Uuid::new_v4()
            ))
        })
    }
}

/// Where `--spawn` finds the binaries: `--bin-dir`, else beside txn-bench.
fn bin_dir(args: &Args) -> anyhow::Result<std::path::PathBuf> {
    match &args.bin_dir {
        Some(dir) => Ok(dir.clone()),
        None => std::env::current_exe()?
            .parent()
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| anyhow::anyhow!("no directory beside txn-bench")),
    }
}

/// Whether phase 1's Redis is a cluster (the private durable one never is).
fn config_cluster(args: &Args) -> bool {
    args.redis_cluster && !args.durable_redis
}

#[derive(Deserialize)]
struct ClientStats {
    transactions: u64,
}

struct E2eFigures {
    tps: f64,
    redis_cmds: f64,
    pg_commits: f64,
    /// Row updates per transaction, and the share of them that were HOT (0–1).
    pg_updates: f64,
    pg_hot_share: f64,
    /// Bytes of write-ahead log per transaction (the whole server's).
    pg_wal_bytes: f64,
    seconds: f64,
    /// CPU ms per transaction by process (only with `--spawn`), largest first.
    cpu_ms: Vec<(String, f64)>,
}

/// What phase 2 runs against.
struct Target<'a> {
    producer: &'a str,
    api_keys: &'a [String],
    client_sims: &'a [String],
    database: &'a str,
    services: Option<&'a Services>,
    /// The Redis the services use (command counts).
    redis: &'a str,
}

/// Phase 2 with `--spawn`: the services started as separate processes on `redis_url`,
/// stopped afterwards.
async fn spawned_e2e_phase(args: &Args, redis_url: &str) -> anyhow::Result<E2eFigures> {
    let redis = services::Redis {
        url: redis_url,
        cluster: config_cluster(args),
    };
    let services =
        Services::start(&bin_dir(args)?, &args.database, &redis, Lineup::Pipeline).await?;
    let figures = e2e_phase(
        args,
        Target {
            producer: &services.producer,
            api_keys: &services.api_keys,
            client_sims: &services.client_sims,
            database: &services.database_url,
            services: Some(&services),
            redis: redis_url,
        },
    )
    .await;
    if figures.is_err() {
        eprintln!("the services' logs: {}", services.logs().display());
    }
    services.stop(figures.is_err()).await?;
    figures
}

/// Phase 2: POSTs to the running stack, timed until the client heard of each.
async fn e2e_phase(args: &Args, target: Target<'_>) -> anyhow::Result<E2eFigures> {
    let http = reqwest::Client::new();
    // Every client app's simulator: each hears only its own client app's transactions.
    let heard = || async {
        let mut n = 0;
        for sim in target.client_sims {
            let stats_url = format!("{}/stats", sim.trim_end_matches('/'));
            let stats = http
                .get(&stats_url)
                .send()
                .await?
                .json::<ClientStats>()
                .await?;
            n += stats.transactions;
        }
        anyhow::Ok(n)
    };
    let mut redis_conn = bench::redis(target.redis, config_cluster(args))?;

    let heard_before = heard().await?;
    let commands_before = command_counts(&mut redis_conn).await?;
    let pg_before = pg_counters(target.database).await?;
    let cpu_before = match target.services {
        Some(services) => Some(services.cpu(&mut redis_conn).await?),
        None => None,
    };
    let started = Instant::now();

    let done = Arc::new(AtomicU64::new(0));
    let progress = follow(bar(args.transactions, "POST (end to end)"), done.clone());
    let body = post_body(args);
    let posted = load::run(
        load::Plan {
            addr: socket_addr(target.producer)?,
            path: "/transaction".into(),
            api_keys: target.api_keys.to_vec(),
            body,
            limit: Some(args.transactions),
            deadline: None,
            expected_interval: None,
        },
        args.concurrency,
        done,
    )
    .await?;
    progress.abort();
    if posted.failed > 0 {
        anyhow::bail!("{} POSTs failed", posted.failed);
    }

    let waiting = bar(args.transactions, "terminal at client");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = heard().await?.saturating_sub(heard_before);
        waiting.set_position(n);
        if n >= args.transactions {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {n} of {} completed in 10 minutes",
            args.transactions
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    waiting.finish_and_clear();
    let n = args.transactions as f64;
    let mut cpu_ms: Vec<(String, f64)> = match (target.services, cpu_before) {
        (Some(services), Some(before)) => services
            .cpu(&mut redis_conn)
            .await?
            .since(&before)
            .into_iter()
            .map(|(name, s)| (name, s * 1000.0 / n))
            .collect(),
        _ => Vec::new(),
    };
    cpu_ms.sort_by(|a, b| b.1.total_cmp(&a.1));
    // Let the last acks land and Postgres publish its statistics.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let commands = delta(&commands_before, &command_counts(&mut redis_conn).await?);
    let pg_after = pg_counters(target.database).await?;
    let commits = pg_after.commits - pg_before.commits;
    let (updates, hot) = pg_after.updates_since(&pg_before);
    Ok(E2eFigures {
        tps: n / seconds,
        redis_cmds: commands as f64 / n,
        pg_commits: commits as f64 / n,
        pg_updates: updates as f64 / n,
        pg_wal_bytes: (pg_after.wal_bytes - pg_before.wal_bytes) as f64 / n,
        pg_hot_share: if updates > 0 {
            hot as f64 / updates as f64
        } else {
            0.0
        },
        seconds,
        cpu_ms,
    })
}

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // With `--spawn`, the spawned services use it too.
    // A comparison with a peer starts a Redis of its own for each run of phase 1.
    let post_on_durable = !args.no_post && args.peer.is_none();
    let durable = if args.durable_redis && (post_on_durable || (!args.no_e2e && args.spawn)) {
        // AOF fsynced before every reply, as the shipped deployment runs it.
        Some(testkit::PrivateRedis::start().await?)
    } else {
        None
    };
    let (post, compared) = match (&args.peer, args.no_post) {
        (_, true) => (None, None),
        (Some(command), false) => {
            let (rounds, mut ours) = compared_post_phase(&args, command).await?;
            // Our figures are those of the round with our median throughput.
            let median =
                peer::median_round(&rounds).ok_or_else(|| anyhow::anyhow!("no round was run"))?;
            (Some(ours.swap_remove(median)), Some(rounds))
        }
        (None, false) => {
            let url = durable
                .as_ref()
                .map(testkit::PrivateRedis::url)
                .unwrap_or_else(|| args.redis.clone());
            (
                Some(post_phase(&args, &url, config_cluster(&args)).await?),
                None,
            )
        }
    };
    let e2e = if args.no_e2e {
        None
    } else if args.spawn {
        let url = durable
            .as_ref()
            .map(testkit::PrivateRedis::url)
            .unwrap_or_else(|| args.redis.clone());
        Some(spawned_e2e_phase(&args, &url).await?)
    } else {
        Some(
            e2e_phase(
                &args,
                Target {
                    producer: &args.producer,
                    api_keys: &[args.api_key.clone().ok_or_else(|| {
                        anyhow::anyhow!(
                            "the running stack's API key is needed: --api-key or DEV_API_KEY"
                        )
                    })?],
                    client_sims: std::slice::from_ref(&args.client_sim),
                    database: &args.database,
                    services: None,
                    redis: &args.redis,
                },
            )
            .await?,
        )
    };

    println!(
        "txn-bench: {} connections{}{}",
        args.concurrency,
        if args.durable_redis {
            if args.spawn {
                ", durable Redis (appendfsync always)"
            } else {
                ", durable Redis (appendfsync always) for POST"
            }
        } else {
            ""
        },
        if args.server_ids {
            ", POST bodies without an id"
        } else {
            ", the client's own id in every POST body"
        }
    );
    if let Some(p) = &post {
        println!(
            "  POST /transaction           {:>10.0} req/s   ({} non-2xx)",
            p.rps, p.failed
        );
        println!(
            "  POST latency p50/p99/p99.9  {:>6.2} / {:.2} / {:.2} ms",
            p.p50, p.p99, p.p999
        );
        if let Some((producer, redis)) = p.cpu_us {
            println!("  CPU µs / POST: producer    {producer:>10.1}   Redis {redis:.1}");
        }
        println!(
            "  Redis bytes / waiting txn   {:>10.0}   (no consumer runs in this phase)",
            p.backlog_bytes
        );
    }
    let summary = compared.as_deref().and_then(peer::summarize);
    if let (Some(rounds), Some(s)) = (&compared, &summary) {
        println!(
            "  vs --peer, {} rounds         {:>10.2}x  (median; {:.2}x to {:.2}x; POST above: our median round)",
            rounds.len(),
            s.ratio_median,
            s.ratio_min,
            s.ratio_max
        );
        println!(
            "  peer POST /transaction      {:>10.0} req/s   (median; p99 {:.2} ms)",
            s.peer_rps_median, s.peer_p99_median_ms
        );
    }
    if let Some(e) = &e2e {
        println!(
            "  end to end                  {:>10.0} txn/s   ({} transactions in {:.1} s)",
            e.tps, args.transactions, e.seconds
        );
        println!("  Redis commands / txn        {:>10.1}", e.redis_cmds);
        println!("  Postgres commits / txn      {:>10.1}", e.pg_commits);
        println!(
            "  Postgres updates / txn      {:>10.1}  ({:.0} % HOT)",
            e.pg_updates,
            e.pg_hot_share * 100.0
        );
        println!("  Postgres WAL bytes / txn    {:>10.0}", e.pg_wal_bytes);
        if !e.cpu_ms.is_empty() {
            let total: f64 = e.cpu_ms.iter().map(|(_, ms)| ms).sum();
            println!("  CPU ms / txn, all processes {total:>10.3}");
            for (name, ms) in &e.cpu_ms {
                println!("    {name:<25} {ms:>10.3}");
            }
        }
    }
    let round = |v: f64, d: f64| (v * d).round() / d;
    println!(
        "{}",
        serde_json::json!({
            "post_rps": post.as_ref().map(|p| p.rps.round()),
            "post_p50_ms": post.as_ref().map(|p| round(p.p50, 1000.0)),
            "post_p99_ms": post.as_ref().map(|p| round(p.p99, 1000.0)),
            "post_p999_ms": post.as_ref().map(|p| round(p.p999, 1000.0)),
            "post_cpu_us": post.as_ref().and_then(|p| p.cpu_us).map(|(producer, redis)| {
                serde_json::json!({"producer": round(producer, 10.0), "redis": round(redis, 10.0)})
            }),
            "backlog_bytes_per_txn": post.as_ref().map(|p| p.backlog_bytes.round()),
            "e2e_tps": e2e.as_ref().map(|e| e.tps.round()),
            "redis_cmds_per_txn": e2e.as_ref().map(|e| round(e.redis_cmds, 10.0)),
            "pg_commits_per_txn": e2e.as_ref().map(|e| round(e.pg_commits, 10.0)),
            "pg_updates_per_txn": e2e.as_ref().map(|e| round(e.pg_updates, 10.0)),
            "pg_hot_update_share": e2e.as_ref().map(|e| round(e.pg_hot_share, 100.0)),
            "pg_wal_bytes_per_txn": e2e.as_ref().map(|e| e.pg_wal_bytes.round()),
            "cpu_ms_per_txn": e2e.as_ref().filter(|e| !e.cpu_ms.is_empty()).map(|e| {
                e.cpu_ms
                    .iter()
                    .map(|(name, ms)| (name.clone(), serde_json::json!(round(*ms, 1000.0))))
                    .collect::<serde_json::Map<_, _>>()
            }),
            "peer": compared.as_ref().zip(summary).map(|(rounds, s)| serde_json::json!({
                "ratio_median": round(s.ratio_median, 100.0),
                "ratio_min": round(s.ratio_min, 100.0),
                "ratio_max": round(s.ratio_max, 100.0),
                "post_rps_median": s.peer_rps_median.round(),
                "post_p99_ms_median": round(s.peer_p99_median_ms, 1000.0),
                "rounds": rounds.iter().map(|r| serde_json::json!({
                    "peer_rps": r.peer_rps.round(),
                    "peer_p99_ms": round(r.peer_p99_ms, 1000.0),
                    "post_rps": r.ours_rps.round(),
                    "post_p99_ms": round(r.ours_p99_ms, 1000.0),
                })).collect::<Vec<_>>(),
            })),
            "durable_redis": args.durable_redis,
            "client_ids": !args.server_ids,
        })
    );
    Ok(())
}
