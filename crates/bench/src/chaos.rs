//! The chaos run: the whole pipeline as separate processes (two producers, one consumer per
//! queue) on a private Redis (AOF `always`) and a private Postgres, load from two client apps,
//! the faults of [`crate::faults::schedule`] one after another, then the invariants of
//! [`crate::invariants::check`] once everything has settled.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use testkit::{PrivatePostgres, PrivateRedis};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    faults::{self, Fault},
    invariants::{self, Answer, Observed, Violation},
    services::{Lineup, Redis, Services},
};

/// How a chaos run goes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The fault schedule's seed.
    pub seed: u64,
    /// How long the load lasts.
    pub duration: Duration,
    /// POSTs per second, over both producers and both client apps.
    pub rate: u32,
    /// About how often a fault starts.
    pub fault_every: Duration,
    /// How long everything may take to settle after the load.
    pub settle_within: Duration,
    /// Where the service binaries are.
    pub bin_dir: PathBuf,
}

/// What a run did, for the report.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// POSTs sent.
    pub posts: usize,
    /// Answers by status (`none`: no answer).
    pub answers: BTreeMap<String, usize>,
    /// Faults by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Pending rows when each fault struck (work in progress it hit).
    pub pending_at_faults: Vec<i64>,
    /// Final statuses of the rows.
    pub outcomes: BTreeMap<String, usize>,
    /// Seconds from the end of the load until everything settled.
    pub settled_after_s: f64,
    /// Where the services' logs are (kept when a run fails).
    pub logs: PathBuf,
}

/// The settings that make the pipeline's own retries fit a run of minutes: the shipped
/// defaults wait minutes between submission retries and 30 s before re-pushing lost work.
/// The third party declines a fifth and rate-limits a twentieth of calls.
const SETTINGS: [(&str, &str); 12] = [
    ("DECLINE_RATE", "0.2"),
    ("RATE_LIMIT_RATE", "0.05"),
    ("PROCESS_BACKOFF_MS", "200"),
    ("POLL_INITIAL_MS", "200"),
    ("POLL_MAX_INTERVAL_MS", "2000"),
    ("NOTIFY_SCHEDULE", "200ms,500ms,1s,2s,5s,10s,20s,30s,60s"),
    ("LEASE_MS", "3000"),
    ("SWEEP_INTERVAL_MS", "1000"),
    ("SWEEP_GRACE_MS", "3000"),
    ("DEAD_REVIVE_MS", "3000"),
    ("RESOLVE_MAX_MS", "2000"),
    ("HTTP_TIMEOUT_MS", "2000"),
];

/// Runs one chaos run; its report, and the first invariant it broke if any.
pub async fn run(settings: &Settings) -> anyhow::Result<(Report, Option<Violation>)> {
    let mut redis = PrivateRedis::start().await?;
    let postgres = PrivatePostgres::start();
    let redis_url = redis.url();
    let own: Vec<(&'static str, String)> =
        SETTINGS.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let mut services = Services::start_with(
        &settings.bin_dir,
        &format!("{}/postgres", postgres.server()),
        &Redis {
            url: &redis_url,
            cluster: false,
        },
        Lineup::Scaled,
        own,
    )
    .await?;
    let mut report = Report {
        seed: settings.seed,
        logs: services.logs().to_path_buf(),
        ..Report::default()
    };

    let killable: Vec<String> = services
        .names()
        .into_iter()
        .filter(|n| n.starts_with("producer") || n.starts_with("consumer"))
        .collect();
    let schedule = faults::schedule(
        settings.seed,
        settings.duration,
        settings.fault_every,
        &killable,
    );
    let posted = Arc::new(Mutex::new(HashMap::new()));
    let stop = CancellationToken::new();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let load = tokio::spawn(post_load(
        client,
        services.producers.clone(),
        services.api_keys.clone(),
        settings.rate,
        posted.clone(),
        stop.clone(),
    ));
    let started = Instant::now();
    let http = reqwest::Client::new();
    for planned in schedule {
        tokio::time::sleep_until((started + planned.at).into()).await;
        report
            .pending_at_faults
            .push(pending(&services.database_url).await);
        *report.faults.entry(planned.fault.kind()).or_default() += 1;
        println!(
            "{:>6.1}s  {:?}",
            started.elapsed().as_secs_f64(),
            planned.fault
        );
        strike(&planned.fault, &mut services, &mut redis, &postgres, &http).await?;
    }
    tokio::time::sleep_until((started + settings.duration).into()).await;
    stop.cancel();
    load.await?;

    let load_ended = Instant::now();
    let posted = std::mem::take(&mut *posted.lock().unwrap_or_else(|e| e.into_inner()));
    report.posts = posted.len();
    for (_, (_, code)) in posted.iter() {
        let key = code.map_or("none".to_string(), |c: u16| c.to_string());
        *report.answers.entry(key).or_default() += 1;
    }
    let mut observed = Observed::default();
    while load_ended.elapsed() < settings.settle_within {
        observed = observe(&services, &posted).await?;
        if invariants::check(&observed).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    report.settled_after_s = load_ended.elapsed().as_secs_f64();
    for (status, _) in observed.rows.values() {
        *report.outcomes.entry(status.clone()).or_default() += 1;
    }
    let verdict = invariants::check(&observed).err();
    services.stop(verdict.is_some()).await?;
    Ok((report, verdict))
}

/// Strikes `fault` and ends it.
async fn strike(
    fault: &Fault,
    services: &mut Services,
    redis: &mut PrivateRedis,
    postgres: &PrivatePostgres,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    match fault {
        Fault::Kill { name, down } => {
            services.kill_one(name);
            tokio::time::sleep(*down).await;
            services.restart(name).await?;
        }
        Fault::KillRedis { down } => {
            redis.kill();
            tokio::time::sleep(*down).await;
            redis.restart().await?;
        }
        Fault::StallRedis { stalled } => {
            redis.pause();
            tokio::time::sleep(*stalled).await;
            redis.resume();
        }
        Fault::StopPostgres { down } => {
            postgres.stop();
            tokio::time::sleep(*down).await;
            postgres.resume();
        }
        Fault::ThirdPartyOutage { lasting } => {
            let outage = |on: bool| {
                http.post(format!("{}/admin/outage", services.thirdparty))
                    .json(&serde_json::json!({ "on": on }))
                    .send()
            };
            outage(true).await?.error_for_status()?;
            tokio::time::sleep(*lasting).await;
            outage(false).await?.error_for_status()?;
        }
    }
    Ok(())
}

/// Each POSTed id: its client app (index) and the producer's status (`None`: no answer).
type Posted = HashMap<Uuid, (usize, Option<u16>)>;

/// POSTs at `rate` per second, each with its own id, alternating producers and client apps,
/// until `stop`.
async fn post_load(
    http: reqwest::Client,
    producers: Vec<String>,
    keys: Vec<String>,
    rate: u32,
    posted: Arc<Mutex<Posted>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut inflight = tokio::task::JoinSet::new();
    for n in 0usize.. {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let id = Uuid::now_v7();
        let app = n % keys.len();
        let request = http
            .post(format!(
                "{}/transaction",
                producers[(n / keys.len()) % producers.len()]
            ))
            .bearer_auth(&keys[app])
            .json(&serde_json::json!({"id": id, "amount": 100 + n % 900, "currency": "EUR"}));
        let posted = posted.clone();
        inflight.spawn(async move {
            let code = request.send().await.ok().map(|r| r.status().as_u16());
            posted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, (app, code));
        });
    }
    while inflight.join_next().await.is_some() {}
}

/// Everything the invariants look at, read now.
async fn observe(services: &Services, posted: &Posted) -> anyhow::Result<Observed> {
    let http = reqwest::Client::new();
    let mut conn = sqlx_connect(&services.database_url).await?;
    // Client apps in the order of the run's keys (`txk_<key id>_<secret>`): `dev` first.
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for (i, key) in services.api_keys.iter().enumerate() {
        let key_id = key
            .strip_prefix("txk_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .ok_or_else(|| anyhow::anyhow!("an API key not of the form txk_<id>_<secret>"))?;
        let app: Uuid = sqlx::query_scalar("SELECT client_app_id FROM api_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(&mut conn)
            .await?;
        index.insert(app, i);
    }
    let rows: Vec<(Uuid, String, Uuid)> =
        sqlx::query_as("SELECT id, status, client_app_id FROM transactions")
            .fetch_all(&mut conn)
            .await?;
    let owed: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM transactions WHERE status = 'pending')
              + (SELECT count(*) FROM notifications WHERE delivered_at IS NULL AND failed_at IS NULL)",
    )
    .fetch_one(&mut conn)
    .await?;
    let orphans: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM transaction_events e
                 WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = e.transaction_id))
              + (SELECT count(*) FROM notifications n
                 WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.id = n.transaction_id))
              + (SELECT count(*) FROM delivery_attempts a
                 WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.delivery_id = a.delivery_id))",
    )
    .fetch_one(&mut conn)
    .await?;
    let stats: serde_json::Value = http
        .get(format!("{}/stats", services.thirdparty))
        .send()
        .await?
        .json()
        .await?;
    let mut told = Vec::new();
    for sim in &services.client_sims {
        let received: Vec<serde_json::Value> = http
            .get(format!("{sim}/received"))
            .send()
            .await?
            .json()
            .await?;
        let mut by_id: HashMap<Uuid, Vec<String>> = HashMap::new();
        for r in received {
            if let (Some(id), Some(status)) = (
                r["id"].as_str().and_then(|s| s.parse().ok()),
                r["status"].as_str(),
            ) {
                by_id.entry(id).or_default().push(status.to_string());
            }
        }
        told.push(by_id);
    }
    Ok(Observed {
        posted: posted
            .iter()
            .map(|(id, (app, code))| {
                let answer = match code {
                    Some(200 | 201) => Answer::Accepted,
                    Some(503) => Answer::Refused,
                    _ => Answer::Unknown,
                };
                (*id, (*app, answer))
            })
            .collect(),
        rows: rows
            .into_iter()
            .map(|(id, status, app)| (id, (status, index.get(&app).copied().unwrap_or(usize::MAX))))
            .collect(),
        ledger: http
            .get(format!("{}/ledger", services.thirdparty))
            .send()
            .await?
            .json()
            .await?,
        // A missing count must not pass for zero resubmissions.
        resubmissions: stats["conflicts"].as_u64().ok_or_else(|| {
            anyhow::anyhow!("the third party's /stats has no `conflicts` count: {stats}")
        })?,
        told,
        owed,
        orphans,
    })
}

/// Pending rows now (-1 while Postgres does not answer).
async fn pending(database_url: &str) -> i64 {
    let Ok(mut conn) = sqlx_connect(database_url).await else {
        return -1;
    };
    sqlx::query_scalar("SELECT count(*) FROM transactions WHERE status = 'pending'")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(-1)
}

async fn sqlx_connect(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection;
    Ok(sqlx::PgConnection::connect(url).await?)
}
