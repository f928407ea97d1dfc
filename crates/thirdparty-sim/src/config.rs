//! Settings of the third-party simulator, from the environment or flags.

use std::net::SocketAddr;

use clap::{Args, Parser};
use domain::{WebhookSecrets, fault::Rate};
use service::{
    config::{HttpServer, HttpUrl},
    secret::{Secret, parser},
};

/// Settings of the third-party simulator.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "thirdparty-sim",
    about = "A deliberately unreliable third-party payment processor"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "THIRDPARTY_ADDR", default_value = "127.0.0.1:3300")]
    pub addr: SocketAddr,
    /// How it serves HTTP (HTTPS with TLS_CERT_FILE and TLS_KEY_FILE).
    #[command(flatten)]
    pub server: HttpServer,
    /// Where to send status webhooks (the producer's `/webhook`).
    #[arg(long, env = "WEBHOOK_URL", default_value = "http://127.0.0.1:3100/webhook", value_parser = parser::<HttpUrl>())]
    pub webhook_url: HttpUrl,
    /// PEM bundle trusted for an `https://` WEBHOOK_URL besides the system roots.
    #[arg(long, env = "HTTPS_CA_FILE")]
    pub https_ca_file: Option<std::path::PathBuf>,
    /// Secret(s) signing the webhooks (`whsec_<base64>`; each signs).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true, value_parser = parser::<WebhookSecrets>())]
    pub webhook_secret: WebhookSecrets,
    /// When set, every call must carry this key (`Authorization: Bearer <key>`, or raw in
    /// THIRDPARTY_AUTH_HEADER); others are answered 401.
    #[arg(long, env = "THIRDPARTY_API_KEY", hide_env_values = true, value_parser = parser::<Secret>())]
    pub api_key: Option<Secret>,
    /// The header carrying the raw key instead of `Authorization: Bearer`.
    #[arg(long, env = "THIRDPARTY_AUTH_HEADER", value_parser = outbound::thirdparty::header_name)]
    pub auth_header: Option<String>,
    /// How it resolves transactions and how it misbehaves.
    #[command(flatten)]
    pub behaviour: Behaviour,
}

/// How the simulator resolves transactions and which faults it injects. The defaults
/// ([`Behaviour::RELIABLE`]) inject none.
#[derive(Debug, Clone, Copy, PartialEq, Args)]
pub struct Behaviour {
    /// Seed of every fault decision.
    #[arg(long, env = "THIRDPARTY_SEED", default_value_t = Behaviour::RELIABLE.seed)]
    pub seed: u64,
    /// Shortest delay before a transaction resolves (ms).
    #[arg(long, env = "RESOLVE_MIN_MS", default_value_t = Behaviour::RELIABLE.resolve_min_ms)]
    pub resolve_min_ms: u64,
    /// Longest delay before a transaction resolves (ms).
    #[arg(long, env = "RESOLVE_MAX_MS", default_value_t = Behaviour::RELIABLE.resolve_max_ms)]
    pub resolve_max_ms: u64,
    /// Share of transactions declined.
    #[arg(long, env = "DECLINE_RATE", default_value_t = Behaviour::RELIABLE.decline_rate)]
    pub decline_rate: Rate,
    /// Latency added to every call (ms).
    #[arg(long, env = "THIRDPARTY_LATENCY_MS", default_value_t = Behaviour::RELIABLE.latency_ms)]
    pub latency_ms: u64,
    /// Share of creates answered 504 without creating.
    #[arg(long, env = "CREATE_504_BEFORE_RATE", default_value_t = Behaviour::RELIABLE.create_504_before_rate)]
    pub create_504_before_rate: Rate,
    /// Share of creates answered 504 after creating.
    #[arg(long, env = "CREATE_504_AFTER_RATE", default_value_t = Behaviour::RELIABLE.create_504_after_rate)]
    pub create_504_after_rate: Rate,
    /// Share of creates that hang past any caller's timeout (after creating).
    #[arg(long, env = "CREATE_HANG_RATE", default_value_t = Behaviour::RELIABLE.create_hang_rate)]
    pub create_hang_rate: Rate,
    /// Share of creates answered 201 without creating (the third party loses them: later
    /// status checks answer 404).
    #[arg(long, env = "CREATE_LOST_RATE", default_value_t = Behaviour::RELIABLE.create_lost_rate)]
    pub create_lost_rate: Rate,
    /// Share of creates refused with a permanent 422 (nothing created).
    #[arg(long, env = "CREATE_4XX_RATE", default_value_t = Behaviour::RELIABLE.create_4xx_rate)]
    pub create_4xx_rate: Rate,
    /// Share of calls (creates and status checks) answered 429 with `Retry-After`.
    #[arg(long, env = "RATE_LIMIT_RATE", default_value_t = Behaviour::RELIABLE.rate_limit_rate)]
    pub rate_limit_rate: Rate,
    /// The `Retry-After` of a 429 (seconds).
    #[arg(long, env = "RETRY_AFTER_S", default_value_t = Behaviour::RELIABLE.retry_after_s)]
    pub retry_after_s: u64,
    /// Share of calls answered 408 (nothing created).
    #[arg(long, env = "REQUEST_TIMEOUT_RATE", default_value_t = Behaviour::RELIABLE.request_timeout_rate)]
    pub request_timeout_rate: Rate,
    /// Share of calls answered 401, as if the key were wrong (nothing created).
    #[arg(long, env = "UNAUTHORIZED_RATE", default_value_t = Behaviour::RELIABLE.unauthorized_rate)]
    pub unauthorized_rate: Rate,
    /// Share of status checks answered 504.
    #[arg(long, env = "STATUS_504_RATE", default_value_t = Behaviour::RELIABLE.status_504_rate)]
    pub status_504_rate: Rate,
    /// Share of final webhooks never sent.
    #[arg(long, env = "WEBHOOK_DROP_RATE", default_value_t = Behaviour::RELIABLE.webhook_drop_rate)]
    pub webhook_drop_rate: Rate,
    /// Share of final webhooks sent twice (same `webhook-id`).
    #[arg(long, env = "WEBHOOK_DUP_RATE", default_value_t = Behaviour::RELIABLE.webhook_dup_rate)]
    pub webhook_dup_rate: Rate,
    /// Share of transactions followed by a stale `pending` webhook after the final one.
    #[arg(long, env = "WEBHOOK_STALE_RATE", default_value_t = Behaviour::RELIABLE.webhook_stale_rate)]
    pub webhook_stale_rate: Rate,
}

impl Behaviour {
    /// No faults, transactions resolved 50–500 ms after they are created: the flags' defaults.
    pub const RELIABLE: Behaviour = Behaviour {
        seed: 1,
        resolve_min_ms: 50,
        resolve_max_ms: 500,
        decline_rate: Rate::NEVER,
        latency_ms: 0,
        create_504_before_rate: Rate::NEVER,
        create_504_after_rate: Rate::NEVER,
        create_hang_rate: Rate::NEVER,
        create_lost_rate: Rate::NEVER,
        create_4xx_rate: Rate::NEVER,
        rate_limit_rate: Rate::NEVER,
        retry_after_s: 1,
        request_timeout_rate: Rate::NEVER,
        unauthorized_rate: Rate::NEVER,
        status_504_rate: Rate::NEVER,
        webhook_drop_rate: Rate::NEVER,
        webhook_dup_rate: Rate::NEVER,
        webhook_stale_rate: Rate::NEVER,
    };
}

impl Config {
    /// A simulator on a free local port that behaves as `behaviour` says (tests, the bench).
    pub fn local(
        webhook_url: HttpUrl,
        webhook_secret: WebhookSecrets,
        behaviour: Behaviour,
    ) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: HttpServer::plain(),
            webhook_url,
            https_ca_file: None,
            webhook_secret,
            api_key: None,
            auth_header: None,
            behaviour,
        }
    }
}

impl service::start::Checked for Config {}
