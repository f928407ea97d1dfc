//! Settings of the consumer, from the environment or flags.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use clap::Parser;
use domain::{QueueName, WebhookSecrets, client_app::Pepper, schedule::Schedules};
use id_cache::IdempotencyWindow;
use serde::{Deserialize, Serialize};
use service::{
    config::{
        Connections, DEFAULT_DATABASE_URL, HttpServer, HttpUrl, PostgresUrl, ShutdownGrace,
        Threads, millis,
    },
    secret::{Secret, parser},
};

/// Which queues this process works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSet(Vec<QueueName>);

impl QueueSet {
    /// All four.
    pub fn all() -> Self {
        Self(QueueName::ALL.to_vec())
    }

    /// Whether `queue` is in the set.
    pub fn contains(&self, queue: QueueName) -> bool {
        self.0.contains(&queue)
    }
}

impl FromStr for QueueSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "all" {
            return Ok(Self::all());
        }
        let mut set = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let queue: QueueName = name.parse().map_err(|e| format!("{e}, or all"))?;
            if !set.contains(&queue) {
                set.push(queue);
            }
        }
        if set.is_empty() {
            return Err("no queue named".into());
        }
        Ok(Self(set))
    }
}

/// The consumer's own commands, beside running and `check-config`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Apply the database migrations and exit (it needs only DATABASE_URL).
    Migrate(service::start::Cli<MigrateConfig>),
    /// Administer client apps and their API keys, then exit (DATABASE_URL, and
    /// API_KEY_PEPPER to make keys).
    Clients(crate::clients::ClientsCommand),
}

/// What the consumer's command line asks for, once any `check-config` has been answered.
#[derive(Debug)]
pub enum Invocation {
    /// Run the pools.
    Run(Box<Config>),
    /// Apply the migrations.
    Migrate(MigrateConfig),
    /// Administer client apps.
    Clients(crate::clients::ClientsCommand),
}

/// Reads the consumer's command line `args` (the program name first): `consumer [flags]`,
/// `consumer migrate [flags]`, each with its `check-config`, which prints and exits.
pub fn invocation_from(args: impl IntoIterator<Item = std::ffi::OsString>) -> Invocation {
    use service::start::Invocation as Asked;
    match service::start::invocation_from::<Config, Command, _>(args) {
        Asked::Run(config) => Invocation::Run(Box::new(config)),
        Asked::Own(Command::Migrate(cli)) => match cli.invocation() {
            Asked::Run(migrate) => Invocation::Migrate(migrate),
            Asked::Own(never) => match never {},
        },
        Asked::Own(Command::Clients(clients)) => Invocation::Clients(clients),
    }
}

/// Settings of `consumer migrate`: the database and nothing else.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "consumer migrate",
    about = "Apply the database migrations and exit"
)]
pub struct MigrateConfig {
    /// The database to migrate.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, value_parser = parser::<PostgresUrl>())]
    pub database_url: PostgresUrl,
    /// How long to wait for the database to accept connections (ms): started beside its
    /// database, the migration must not lose the race.
    #[arg(long = "wait-ms", env = "MIGRATE_WAIT_MS", default_value = "60000", value_parser = millis)]
    pub wait: Duration,
    /// Development only: after migrating, make sure a client app `dev` exists with this API
    /// key (which needs API_KEY_PEPPER, DEV_NOTIFY_URL and CLIENT_WEBHOOK_SECRET). Production
    /// sets none.
    #[arg(long, env = "DEV_API_KEY", hide_env_values = true, value_parser = parser::<Secret>(), requires_all = ["api_key_pepper", "dev_notify_url", "dev_signing_secret"])]
    pub dev_api_key: Option<Secret>,
    /// The pepper the dev key is hashed under (the producer's API_KEY_PEPPER).
    #[arg(long, env = "API_KEY_PEPPER", hide_env_values = true, value_parser = parser::<Pepper>())]
    pub api_key_pepper: Option<Pepper>,
    /// Where the dev client app's notifications are to go.
    #[arg(long, env = "DEV_NOTIFY_URL", value_parser = parser::<HttpUrl>())]
    pub dev_notify_url: Option<HttpUrl>,
    /// The secret(s) signing the dev client app's notifications: the client simulator's.
    #[arg(long = "client-webhook-secret", env = "CLIENT_WEBHOOK_SECRET", hide_env_values = true, value_parser = parser::<WebhookSecrets>())]
    pub dev_signing_secret: Option<WebhookSecrets>,
}

/// Settings of the consumer.
#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(
    name = "consumer",
    about = "The worker pools of the transaction pipeline"
)]
pub struct Config {
    /// Address of the health endpoints, metrics and the board.
    #[arg(long, env = "CONSUMER_ADDR", default_value = "127.0.0.1:3200")]
    pub addr: SocketAddr,
    /// How it serves HTTP.
    #[command(flatten)]
    pub server: HttpServer,
    /// Postgres, Redis and the queue prefix.
    #[command(flatten)]
    pub connections: Connections,
    /// Most Postgres connections this process opens: more than the batched statements keep
    /// ([`crate::pipeline::KEPT_CONNECTIONS`]), so that every other statement has one.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(i64::from(crate::pipeline::KEPT_CONNECTIONS) + 1..)
    )]
    pub database_max_connections: u32,
    /// Queues to run pools for: `all`, or a comma-separated subset.
    #[arg(long, env = "QUEUES", default_value = "all")]
    pub queues: QueueSet,
    /// Whether this process runs the sweeper (one instance runs at a time anyway).
    #[arg(long, env = "SWEEPER", default_value_t = true, action = clap::ArgAction::Set)]
    pub sweeper: bool,
    /// Concurrent `create` jobs.
    #[arg(long, env = "CREATE_CONCURRENCY", default_value_t = 32)]
    pub create_concurrency: usize,
    /// Concurrent `process` jobs.
    #[arg(long, env = "PROCESS_CONCURRENCY", default_value_t = 32)]
    pub process_concurrency: usize,
    /// Concurrent `update` jobs.
    #[arg(long, env = "UPDATE_CONCURRENCY", default_value_t = 32)]
    pub update_concurrency: usize,
    /// Concurrent `notify` jobs.
    #[arg(long, env = "NOTIFY_CONCURRENCY", default_value_t = 32)]
    pub notify_concurrency: usize,
    /// Most jobs fetched at once per pool.
    #[arg(long, env = "FETCH_BATCH", default_value_t = 32)]
    pub fetch_batch: usize,
    /// Lease of a delivery (ms); renewed while the handler runs.
    #[arg(long = "lease-ms", env = "LEASE_MS", default_value = "30000", value_parser = millis)]
    pub lease: Duration,
    /// Deliveries after which a job is dead-lettered (a safety net above the handlers' own limits).
    #[arg(long, env = "MAX_DELIVERIES", default_value_t = 20)]
    pub max_deliveries: u32,
    /// How often the sweeper looks for overdue work (ms).
    #[arg(long = "sweep-interval-ms", env = "SWEEP_INTERVAL_MS", default_value = "5000", value_parser = millis)]
    pub sweep_interval: Duration,
    /// How overdue work must be before the sweeper re-pushes it (ms).
    #[arg(long = "sweep-grace-ms", env = "SWEEP_GRACE_MS", default_value = "30000", value_parser = millis)]
    pub sweep_grace: Duration,
    /// A client app whose every delivery attempt has failed for this long is disabled (ms):
    /// its keys stop working and its notifications wait until it is enabled and recovered.
    #[arg(long = "disable-after-ms", env = "DISABLE_AFTER_MS", default_value = "432000000", value_parser = millis)]
    pub disable_after: Duration,
    /// Most transactions one sweep looks at (and most dead jobs it examines per queue).
    #[arg(long, env = "SWEEP_BATCH", default_value_t = 1_000)]
    pub sweep_batch: i64,
    /// How long a job must have been dead before the sweeper revives it, if its transaction
    /// (or notification) is not finished (ms).
    #[arg(long = "dead-revive-ms", env = "DEAD_REVIVE_MS", default_value = "600000", value_parser = millis)]
    pub dead_revive: Duration,
    /// Apply migrations at start-up (under sqlx's advisory lock).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
    /// The third party's base URL (`http://` or `https://`).
    #[arg(long, env = "THIRDPARTY_URL", default_value = "http://127.0.0.1:3300", value_parser = parser::<HttpUrl>())]
    pub thirdparty_url: HttpUrl,
    /// Key sent on every third-party call (`Authorization: Bearer <key>` unless
    /// THIRDPARTY_AUTH_HEADER names another header).
    #[arg(long, env = "THIRDPARTY_API_KEY", hide_env_values = true, value_parser = parser::<Secret>())]
    pub thirdparty_api_key: Option<Secret>,
    /// A header that carries the raw API key instead of `Authorization: Bearer`.
    #[arg(long, env = "THIRDPARTY_AUTH_HEADER", value_parser = outbound::thirdparty::header_name)]
    pub thirdparty_auth_header: Option<String>,
    /// The client app's base URL (`/transactions/{id}/status` is appended).
    #[arg(long, env = "CLIENT_URL", default_value = "http://127.0.0.1:3400", value_parser = parser::<HttpUrl>())]
    pub client_url: HttpUrl,
    /// PEM bundle trusted for `https://` calls besides the system roots (and `SSL_CERT_FILE`).
    #[arg(long, env = "HTTPS_CA_FILE")]
    pub https_ca_file: Option<std::path::PathBuf>,
    /// Secret(s) signing the notifications of the client app `legacy` (each signs).
    #[arg(long, env = "CLIENT_WEBHOOK_SECRET", hide_env_values = true, value_parser = parser::<WebhookSecrets>())]
    pub client_webhook_secret: WebhookSecrets,
    /// Every retry and poll delay.
    #[command(flatten)]
    pub schedules: Schedules,
    /// Timeout of every call to the third party or the client (ms).
    #[arg(long = "http-timeout-ms", env = "HTTP_TIMEOUT_MS", default_value = "5000", value_parser = millis)]
    pub http_timeout: Duration,
    /// How long held jobs may take to finish on shutdown.
    #[command(flatten)]
    pub shutdown: ShutdownGrace,
    /// How many threads run the pools.
    #[command(flatten)]
    pub threads: Threads,
    /// Token protecting the queue board (`Authorization: Bearer`, or the session cookie of
    /// `/board/login`; never in a URL); unset = readable by anyone and read-only.
    #[arg(long, env = "BOARD_TOKEN", hide_env_values = true, value_parser = parser::<Secret>())]
    pub board_token: Option<Secret>,
    /// Token the admin API under /admin requires (`Authorization: Bearer`); unset = no admin
    /// API (404). Needs API_KEY_PEPPER.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = parser::<Secret>(), requires = "api_key_pepper")]
    pub admin_token: Option<Secret>,
    /// The producer's API_KEY_PEPPER, for the keys the admin API makes.
    #[arg(long, env = "API_KEY_PEPPER", hide_env_values = true, value_parser = parser::<Pepper>())]
    pub api_key_pepper: Option<Pepper>,
    /// How long a rotation (`POST /admin/clients/{id}/secrets`) leaves the previous signing
    /// secrets signing (ms).
    #[arg(long = "secret-rotation-overlap-ms", env = "SECRET_ROTATION_OVERLAP_MS", default_value = "86400000", value_parser = millis)]
    pub secret_rotation_overlap: Duration,
    /// Refuse `http://` notify URLs in the admin API: every client app's endpoint must be
    /// `https://`.
    #[arg(long, env = "REQUIRE_HTTPS_NOTIFY", default_value_t = false, action = clap::ArgAction::Set)]
    #[serde(default)]
    pub require_https_notify: bool,
    /// Without BOARD_TOKEN, allow the board's actions (retry, purge) anyway.
    #[arg(long, env = "BOARD_ALLOW_ACTIONS", default_value_t = false, action = clap::ArgAction::Set)]
    #[serde(default)]
    pub board_allow_actions: bool,
    /// The id cache's window; the consumer refreshes entries in it.
    #[command(flatten)]
    pub idempotency: IdempotencyWindow,
}

impl Config {
    /// Concurrency of the pool of `queue`.
    pub fn concurrency(&self, queue: QueueName) -> usize {
        match queue {
            QueueName::Create => self.create_concurrency,
            QueueName::Process => self.process_concurrency,
            QueueName::Update => self.update_concurrency,
            QueueName::Notify => self.notify_concurrency,
        }
        .max(1)
    }
}

impl service::start::Checked for Config {
    fn check(&self) -> Result<(), String> {
        store::check_url(self.connections.database_url.as_str())
            .map_err(|e| format!("DATABASE_URL: {e}"))?;
        retired(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()))
    }
}

/// Settings this version no longer reads, and what replaced each: set, they would be ignored
/// without a word, so a start refuses them.
const RETIRED: &[(&str, &str)] = &[
    (
        "NOTIFY_RETRIES",
        "NOTIFY_SCHEDULE (e.g. 5s,5m,30m,2h,5h,10h,10h)",
    ),
    (
        "NOTIFY_BACKOFF_MS",
        "NOTIFY_SCHEDULE (e.g. 5s,5m,30m,2h,5h,10h,10h)",
    ),
];

/// Refuses any of `names` (the environment's) that is a retired setting, naming its successor.
fn retired(names: impl Iterator<Item = String>) -> Result<(), String> {
    for name in names {
        if let Some((_, instead)) = RETIRED.iter().find(|(old, _)| *old == name) {
            return Err(format!("{name} is no longer read: use {instead}"));
        }
    }
    Ok(())
}

impl service::start::Checked for MigrateConfig {
    fn check(&self) -> Result<(), String> {
        store::check_url(self.database_url.as_str()).map_err(|e| format!("DATABASE_URL: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_setting_is_refused_with_its_successor_named() {
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            retired(names(&["DATABASE_URL", "NOTIFY_SCHEDULE"]).into_iter()),
            Ok(())
        );
        let refused = retired(names(&["PATH", "NOTIFY_RETRIES"]).into_iter()).unwrap_err();
        assert!(refused.contains("NOTIFY_RETRIES") && refused.contains("NOTIFY_SCHEDULE"));
    }

    #[test]
    fn the_pool_has_a_connection_beside_those_the_batchers_keep() {
        let parse = |n: &str| {
            Config::try_parse_from([
                "consumer",
                "--client-webhook-secret",
                "whsec_S4f6f7kfHRbR4mBK+P0cHOHWgOxx68Uk",
                "--database-max-connections",
                n,
            ])
        };
        let kept = crate::pipeline::KEPT_CONNECTIONS;
        let refused = parse(&kept.to_string()).unwrap_err().to_string();
        assert!(refused.contains("database-max-connections"), "{refused}");
        let fewest = parse(&(kept + 1).to_string()).unwrap();
        assert_eq!(fewest.database_max_connections, kept + 1);
    }

    #[test]
    fn queue_sets_name_only_known_queues() {
        assert_eq!("all".parse::<QueueSet>().unwrap(), QueueSet::all());
        let some: QueueSet = "create, process".parse().unwrap();
        assert!(
            some.contains(QueueName::Create)
                && some.contains(QueueName::Process)
                && !some.contains(QueueName::Notify)
        );
        assert!("create,bogus".parse::<QueueSet>().is_err());
        assert!("".parse::<QueueSet>().is_err());
    }
}
