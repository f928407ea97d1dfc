//! Settings of the client simulator (DESIGN §3), from the environment or flags.

use std::net::SocketAddr;

use clap::Parser;
use txn_core::{fault::Rate, secret::WebhookSecrets};

/// Settings of the client simulator.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "client-sim",
    about = "A client app that receives status callbacks"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CLIENT_SIM_ADDR", default_value = "0.0.0.0:3400")]
    pub addr: SocketAddr,
    /// Secret(s) the callbacks must be signed with (any of them verifies).
    #[arg(long, env = "CLIENT_WEBHOOK_SECRET", hide_env_values = true)]
    pub client_webhook_secret: WebhookSecrets,
    /// Seed of every fault decision.
    #[arg(long, env = "CLIENT_SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Share of callbacks answered 503.
    #[arg(long, env = "CLIENT_SIM_FAIL_RATE", default_value = "0")]
    pub fail_rate: Rate,
    /// Latency added to every callback (ms).
    #[arg(long, env = "CLIENT_SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
}

impl Config {
    /// Settings with every fault off, for tests and the stack.
    pub fn reliable(client_webhook_secret: WebhookSecrets) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_webhook_secret,
            seed: 1,
            fail_rate: Rate::NEVER,
            latency_ms: 0,
        }
    }
}
