//! Settings of the producer, from the environment or flags.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use domain::{WebhookSecrets, client_app::Pepper};
use id_cache::IdempotencyWindow;
use service::{
    config::{Connections, HttpServer, ShutdownGrace, Threads, millis},
    secret::parser,
};

use crate::durability::DurabilityMode;

/// Settings of the producer.
#[derive(Debug, Clone, Parser)]
#[command(name = "producer", about = "The transaction API")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PRODUCER_ADDR", default_value = "127.0.0.1:3100")]
    pub addr: SocketAddr,
    /// How it serves HTTP.
    #[command(flatten)]
    pub server: HttpServer,
    /// Postgres (read by `GET /transaction/{id}` and by webhooks past the idempotency
    /// window), Redis and the queue prefix.
    #[command(flatten)]
    pub connections: Connections,
    /// Most Postgres connections this process opens: more than the row look-ups keep
    /// ([`crate::acceptance::KEPT_CONNECTIONS`]), so that every other statement has one.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(i64::from(crate::acceptance::KEPT_CONNECTIONS) + 1..)
    )]
    pub database_max_connections: u32,
    /// Secret(s) the third party signs webhooks with (comma-separated during rotation).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true, value_parser = parser::<WebhookSecrets>())]
    pub webhook_secret: WebhookSecrets,
    /// The server secret API keys are hashed under (at least 32 bytes; the consumer's
    /// `clients` commands must use the same one).
    #[arg(long, env = "API_KEY_PEPPER", hide_env_values = true, value_parser = parser::<Pepper>())]
    pub api_key_pepper: Pepper,
    /// How long a key's grant (or refusal) is trusted before Postgres is asked again: a
    /// revoked key stops working within this time.
    #[arg(long = "auth-cache-ms", env = "AUTH_CACHE_MS", default_value = "5000", value_parser = millis)]
    pub auth_cache: Duration,
    /// How long an id is remembered for idempotent POSTs.
    #[command(flatten)]
    pub idempotency: IdempotencyWindow,
    /// Redis must run the reserve script within this long of the request's arrival (ms, by
    /// Redis's clock), or it does nothing: a 503 then means "not accepted" for certain. Below
    /// the Redis response timeout (2000 ms), so a reply to a script run in time can arrive.
    #[arg(long = "accept-deadline-ms", env = "ACCEPT_DEADLINE_MS", default_value = "1000", value_parser = millis)]
    pub accept_deadline: Duration,
    /// Replicas that must hold a new transaction before its 201 (`WAIT`), so that a primary's
    /// failover loses no accepted transaction; 0 = answer once the primary has it. Fewer
    /// acknowledgements within ACCEPT_DEADLINE_MS answer 504 (outcome unknown; retry the id).
    #[arg(long, env = "REDIS_ACK_REPLICAS", default_value_t = 0)]
    pub redis_ack_replicas: u32,
    /// Largest accepted request body (bytes).
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 65_536)]
    pub body_limit_bytes: usize,
    /// A request taking longer is answered 408 (ms).
    #[arg(long = "request-timeout-ms", env = "REQUEST_TIMEOUT_MS", default_value = "10000", value_parser = millis)]
    pub request_timeout: Duration,
    /// Origins allowed by CORS, comma-separated (`https://app.example`); empty = none (closed).
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: Origins,
    /// Refuse to start unless Redis fsyncs every write before replying (appendonly yes,
    /// appendfsync always), so no 201 can be lost in a Redis crash.
    #[arg(long, env = "REQUIRE_DURABLE_REDIS", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_durable_redis: bool,
    /// `check`: read Redis's persistence settings at start-up; `assume`: take durability as
    /// the provider's promise (managed Redis whose ACL forbids `CONFIG`).
    #[arg(long, env = "REDIS_DURABILITY", value_enum, default_value_t = DurabilityMode::Check)]
    pub redis_durability: DurabilityMode,
    /// How many threads serve.
    #[command(flatten)]
    pub threads: Threads,
    /// How long in-flight requests may take to finish on shutdown.
    #[command(flatten)]
    pub shutdown: ShutdownGrace,
}

impl service::start::Checked for Config {
    fn check(&self) -> Result<(), String> {
        store::check_url(self.connections.database_url.as_str())
            .map_err(|e| format!("DATABASE_URL: {e}"))
    }
}

/// The origins CORS allows, each `scheme://host[:port]`; none when the setting is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

impl std::str::FromStr for Origins {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| {
                    format!("{origin:?} is not an origin: it needs http:// or https://")
                })?;
            if rest.is_empty()
                || rest.contains('/')
                || !origin.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(format!(
                    "{origin:?} is not an origin: scheme://host[:port], no path"
                ));
            }
            origins.push(origin.to_string());
        }
        Ok(Self(origins))
    }
}

#[cfg(test)]
mod origins_tests {
    use super::Origins;

    #[test]
    fn origins_are_scheme_host_and_port_and_empty_means_none() {
        assert_eq!("".parse::<Origins>(), Ok(Origins(vec![])));
        assert_eq!(" , ".parse::<Origins>(), Ok(Origins(vec![])));
        assert_eq!(
            "https://a.example, http://localhost:5173".parse::<Origins>(),
            Ok(Origins(vec![
                "https://a.example".into(),
                "http://localhost:5173".into()
            ]))
        );
        for bad in ["a.example", "https://", "https://a.example/path", "ftp://a"] {
            assert!(bad.parse::<Origins>().is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_has_a_connection_beside_the_one_the_row_look_ups_keep() {
        let parse = |n: &str| {
            Config::try_parse_from([
                "producer",
                "--webhook-secret",
                "whsec_GOZzPLrU/3yotdscx22+zbb2pbHhvpup",
                "--api-key-pepper",
                "test-pepper-0123456789abcdef0123456789abcdef",
                "--database-max-connections",
                n,
            ])
        };
        let kept = crate::acceptance::KEPT_CONNECTIONS;
        let refused = parse(&kept.to_string()).unwrap_err().to_string();
        assert!(refused.contains("database-max-connections"), "{refused}");
        let fewest = parse(&(kept + 1).to_string()).unwrap();
        assert_eq!(fewest.database_max_connections, kept + 1);
    }
}
