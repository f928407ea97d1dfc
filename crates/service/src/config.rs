//! Settings groups that several binaries share. Each is written once here and flattened into a
//! binary's own settings struct (`#[command(flatten)]`), so a variable has one name, one
//! default and one meaning everywhere.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

use crate::secret::{Secret, parser};

/// Default `DATABASE_URL`: the local Postgres.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/transactions";
/// Default `REDIS_URL`: the local Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default `QUEUE_PREFIX`.
pub const DEFAULT_QUEUE_PREFIX: &str = "txn";

/// A URL whose scheme was checked at start-up. `Debug` and `Display` hide its password;
/// [`Self::as_str`] is the URL itself, to connect with.
macro_rules! checked_url {
    ($name:ident, $schemes:expr, $rule:literal) => {
        checked_url!($name, $schemes, $rule, false);
    };
    ($name:ident, $schemes:expr, $rule:literal, $list:expr) => {
        #[doc = concat!("A URL that is ", $rule, ".")]
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The URL itself (it may hold a password: never log it).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = UrlError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                let urls: Vec<&str> = if $list {
                    s.split(',').map(str::trim).collect()
                } else {
                    vec![s]
                };
                for url in urls {
                    check_url(url, &$schemes, $rule)?;
                }
                Ok(Self(s.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = UrlError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(u: $name) -> String {
                u.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&redacted(&self.0, $list))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), redacted(&self.0, $list))
            }
        }
    };
}

/// A URL setting that is malformed or has the wrong scheme (the message never repeats it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {0}")]
pub struct UrlError(&'static str);

fn check_url(s: &str, schemes: &[&str], rule: &'static str) -> Result<(), UrlError> {
    let url = url::Url::parse(s).map_err(|_| UrlError(rule))?;
    if schemes.contains(&url.scheme()) && url.has_host() {
        Ok(())
    } else {
        Err(UrlError(rule))
    }
}

/// The URL (each URL of a comma-separated `list`) with its password, if any, replaced by `***`.
fn redacted(s: &str, list: bool) -> String {
    if list {
        return s.split(',').map(redacted_one).collect::<Vec<_>>().join(",");
    }
    redacted_one(s)
}

fn redacted_one(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => s.to_string(),
        Err(_) => "[unparsable URL]".to_string(),
    }
}

checked_url!(
    PostgresUrl,
    ["postgres", "postgresql"],
    "a postgres:// or postgresql:// URL with a host"
);
impl PostgresUrl {
    /// The database it names, if any.
    pub fn database(&self) -> Option<String> {
        let url = url::Url::parse(&self.0).ok()?;
        let name = url.path().trim_start_matches('/');
        (!name.is_empty()).then(|| name.to_string())
    }

    /// The same server, user and parameters (`sslmode`, …), another database.
    pub fn with_database(&self, name: &str) -> PostgresUrl {
        match url::Url::parse(&self.0) {
            Ok(mut url) => {
                url.set_path(&format!("/{name}"));
                PostgresUrl(url.to_string())
            }
            Err(_) => self.clone(),
        }
    }
}

checked_url!(
    RedisUrl,
    ["redis", "rediss"],
    "a redis:// or rediss:// (TLS) URL with a host (for a cluster: seed nodes, comma-separated)",
    true
);
checked_url!(
    HttpUrl,
    ["http", "https"],
    "an http:// or https:// URL with a host"
);

/// Where the record (Postgres) and the conveyor (Redis) are, and this deployment's key prefix.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct Connections {
    /// Postgres, the record; honours `sslmode` and `sslrootcert` (and `PGPASSWORD`).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, value_parser = parser::<PostgresUrl>())]
    pub database_url: PostgresUrl,
    /// Redis holding the queues and the id cache: `redis://`, or `rediss://` for TLS; with
    /// `REDIS_CLUSTER`, the cluster's seed nodes, comma-separated.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true, value_parser = parser::<RedisUrl>())]
    pub redis_url: RedisUrl,
    /// Redis user (overrides the URL's).
    #[arg(long, env = "REDIS_USERNAME")]
    pub redis_username: Option<String>,
    /// Redis password (overrides the URL's; keep it in a secret, not in the URL).
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true, value_parser = parser::<Secret>())]
    pub redis_password: Option<Secret>,
    /// PEM bundle trusted for `rediss://` besides the system roots.
    #[arg(long, env = "REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of every queue key of this deployment (several can share one Redis).
    #[arg(long, env = "QUEUE_PREFIX", default_value = DEFAULT_QUEUE_PREFIX)]
    pub queue_prefix: String,
    /// `REDIS_URL` is a Redis Cluster (its seed nodes): commands are routed by slot.
    #[arg(long, env = "REDIS_CLUSTER", default_value_t = false, action = clap::ArgAction::Set)]
    #[serde(default)]
    pub redis_cluster: bool,
}

impl Connections {
    /// Local Postgres and Redis with `prefix` (tests, benches).
    pub fn local(database_url: PostgresUrl, redis_url: RedisUrl, prefix: &str) -> Self {
        Self {
            database_url,
            redis_url,
            redis_username: None,
            redis_password: None,
            redis_ca_file: None,
            redis_cluster: false,
            queue_prefix: prefix.to_string(),
        }
    }
}

/// How a service serves HTTP (see `serve`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct HttpServer {
    /// A client that has not sent its request headers within this time is disconnected (ms).
    #[arg(long = "header-read-timeout-ms", env = "HEADER_READ_TIMEOUT_MS", default_value = "10000", value_parser = millis)]
    pub header_read_timeout: Duration,
    /// Serve HTTPS with this certificate chain (PEM); needs TLS_KEY_FILE.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of TLS_CERT_FILE.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

impl HttpServer {
    /// Plain HTTP with the default header timeout (tests, benches).
    pub fn plain() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// How long a stopping service lets work in progress finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct ShutdownGrace {
    /// How long in-flight requests or held jobs may take to finish on shutdown (ms).
    #[arg(
        long = "shutdown-grace-ms",
        env = "SHUTDOWN_GRACE_MS",
        default_value = "30000",
        value_parser = millis
    )]
    pub grace: Duration,
}

impl ShutdownGrace {
    /// The grace period.
    pub fn duration(&self) -> Duration {
        self.grace
    }
}

/// How many threads run a service's tasks (`WORKER_THREADS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, Serialize, Deserialize)]
pub struct Threads {
    /// Runtime threads. 1 (the default) runs every task on one thread: no task is woken
    /// across threads, which on two cores measured 28 % more requests/s for the producer
    /// and a sixth to a quarter less CPU per transaction for the consumer; scale out with
    /// replicas rather than threads.
    #[arg(
        long = "worker-threads",
        env = "WORKER_THREADS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub worker_threads: u16,
}

impl Default for Threads {
    fn default() -> Self {
        Self { worker_threads: 1 }
    }
}

impl Threads {
    /// The runtime: one thread runs everything; more share the tasks by work stealing.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        match self.worker_threads {
            0 | 1 => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            n => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n.into())
                .enable_all()
                .build(),
        }
    }
}

/// A duration setting, given in whole milliseconds (as every `*_MS` variable is).
pub fn millis(text: &str) -> Result<Duration, std::num::ParseIntError> {
    text.trim().parse().map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_thread_runs_every_task_on_it_and_zero_threads_are_refused() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Settings {
            #[command(flatten)]
            threads: Threads,
        }
        let parse = |args: &[&str]| Settings::try_parse_from(args).map(|s| s.threads);
        assert_eq!(parse(&["bin"]).unwrap(), Threads::default());
        let flavor = |t: Threads| t.runtime().unwrap().handle().runtime_flavor();
        assert_eq!(
            flavor(Threads::default()),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
        let two = parse(&["bin", "--worker-threads", "2"]).unwrap();
        assert_eq!(two.worker_threads, 2);
        assert_eq!(flavor(two), tokio::runtime::RuntimeFlavor::MultiThread);
        assert!(
            parse(&["bin", "--worker-threads", "0"]).is_err(),
            "zero threads are refused"
        );
    }

    #[test]
    fn urls_must_have_their_scheme_and_a_host() {
        assert!(
            "postgres://u:p@db:5432/x?sslmode=require"
                .parse::<PostgresUrl>()
                .is_ok()
        );
        assert!("postgresql://db/x".parse::<PostgresUrl>().is_ok());
        for bad in ["mysql://db/x", "db:5432", "", "postgres://"] {
            let err = bad.parse::<PostgresUrl>().unwrap_err();
            assert!(!err.to_string().contains("mysql"), "{err}");
        }
        assert!("rediss://cache:6380".parse::<RedisUrl>().is_ok());
        assert!("redis://cache".parse::<RedisUrl>().is_ok());
        let seeds: RedisUrl = "redis://a:7000, redis://:pw@b:7001".parse().unwrap();
        assert_eq!(
            format!("{seeds}"),
            "redis://a:7000,redis://:***@b:7001",
            "each seed checked and redacted"
        );
        assert!("redis://a:7000,http://b".parse::<RedisUrl>().is_err());
        assert!(
            "postgres://u:pw@h/db?options=a,b"
                .parse::<PostgresUrl>()
                .is_ok(),
            "only Redis URLs are lists"
        );
        assert!("http://cache".parse::<RedisUrl>().is_err());
        assert!("https://api.example".parse::<HttpUrl>().is_ok());
        assert!("thirdparty:3300".parse::<HttpUrl>().is_err());
        assert!("ftp://x".parse::<HttpUrl>().is_err());
    }

    #[test]
    fn a_url_never_shows_its_password() {
        let url: PostgresUrl = "postgres://app:hunter2@db/x".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db/x");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(url.as_str().contains("hunter2"), "the real one connects");
        let tls: PostgresUrl = "postgres://app@db/x?sslmode=require".parse().unwrap();
        assert_eq!(tls.database().as_deref(), Some("x"));
        assert_eq!(
            tls.with_database("postgres").as_str(),
            "postgres://app@db/postgres?sslmode=require"
        );
    }
}
