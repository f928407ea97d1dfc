//! Settings of the client simulator, from the environment or flags.

use std::net::SocketAddr;

use clap::{Args, Parser};
use domain::{WebhookSecrets, fault::Rate};
use service::{config::HttpServer, secret::parser};

/// Settings of the client simulator.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "client-sim",
    about = "A client app that receives status callbacks"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CLIENT_SIM_ADDR", default_value = "127.0.0.1:3400")]
    pub addr: SocketAddr,
    /// How it serves HTTP (HTTPS with TLS_CERT_FILE and TLS_KEY_FILE).
    #[command(flatten)]
    pub server: HttpServer,
    /// Secret(s) the callbacks must be signed with (any of them verifies).
    #[arg(long, env = "CLIENT_WEBHOOK_SECRET", hide_env_values = true, value_parser = parser::<WebhookSecrets>())]
    pub client_webhook_secret: WebhookSecrets,
    /// Which faults it injects.
    #[command(flatten)]
    pub faults: Faults,
}

/// The faults the client simulator injects; the defaults ([`Faults::NONE`]) inject none.
#[derive(Debug, Clone, Copy, PartialEq, Args)]
pub struct Faults {
    /// Seed of every fault decision.
    #[arg(long, env = "CLIENT_SIM_SEED", default_value_t = Faults::NONE.seed)]
    pub seed: u64,
    /// Share of callbacks answered 503.
    #[arg(long, env = "CLIENT_SIM_FAIL_RATE", default_value_t = Faults::NONE.fail_rate)]
    pub fail_rate: Rate,
    /// Latency added to every callback (ms).
    #[arg(long, env = "CLIENT_SIM_LATENCY_MS", default_value_t = Faults::NONE.latency_ms)]
    pub latency_ms: u64,
    /// Share of callbacks answered 429 with `Retry-After`.
    #[arg(long, env = "CLIENT_SIM_RATE_LIMIT_RATE", default_value_t = Faults::NONE.rate_limit_rate)]
    pub rate_limit_rate: Rate,
    /// The `Retry-After` of a 429 (seconds).
    #[arg(long, env = "CLIENT_SIM_RETRY_AFTER_S", default_value_t = Faults::NONE.retry_after_s)]
    pub retry_after_s: u64,
}

impl Faults {
    /// No faults: the flags' defaults.
    pub const NONE: Faults = Faults {
        seed: 1,
        fail_rate: Rate::NEVER,
        latency_ms: 0,
        rate_limit_rate: Rate::NEVER,
        retry_after_s: 1,
    };
}

impl Config {
    /// A simulator on a free local port that injects `faults` (tests, the bench).
    pub fn local(client_webhook_secret: WebhookSecrets, faults: Faults) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            server: HttpServer::plain(),
            client_webhook_secret,
            faults,
        }
    }
}

impl service::start::Checked for Config {}
