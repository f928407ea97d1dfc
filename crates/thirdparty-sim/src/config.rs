//! Settings of the third-party simulator (DESIGN §3), from the environment or flags.

use std::net::SocketAddr;

use clap::Parser;
use txn_core::{fault::Rate, secret::WebhookSecrets};

/// Settings of the third-party simulator.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "thirdparty-sim",
    about = "A deliberately unreliable third-party payment processor"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "THIRDPARTY_ADDR", default_value = "0.0.0.0:3300")]
    pub addr: SocketAddr,
    /// Where to send status webhooks (the producer's `/webhook`).
    #[arg(
        long,
        env = "WEBHOOK_URL",
        default_value = "http://127.0.0.1:3100/webhook"
    )]
    pub webhook_url: String,
    /// Secret(s) signing the webhooks (`whsec_<base64>`; the first signs).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: WebhookSecrets,
    /// Seed of every fault decision.
    #[arg(long, env = "THIRDPARTY_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Shortest delay before a transaction resolves (ms).
    #[arg(long, env = "RESOLVE_MIN_MS", default_value_t = 50)]
    pub resolve_min_ms: u64,
    /// Longest delay before a transaction resolves (ms).
    #[arg(long, env = "RESOLVE_MAX_MS", default_value_t = 500)]
    pub resolve_max_ms: u64,
    /// Share of transactions declined.
    #[arg(long, env = "DECLINE_RATE", default_value = "0")]
    pub decline_rate: Rate,
    /// Latency added to every call (ms).
    #[arg(long, env = "THIRDPARTY_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of creates answered 504 without creating.
    #[arg(long, env = "CREATE_504_BEFORE_RATE", default_value = "0")]
    pub create_504_before_rate: Rate,
    /// Share of creates answered 504 after creating.
    #[arg(long, env = "CREATE_504_AFTER_RATE", default_value = "0")]
    pub create_504_after_rate: Rate,
    /// Share of creates that hang past any caller's timeout (after creating).
    #[arg(long, env = "CREATE_HANG_RATE", default_value = "0")]
    pub create_hang_rate: Rate,
    /// Share of creates refused with a permanent 422 (nothing created).
    #[arg(long, env = "CREATE_4XX_RATE", default_value = "0")]
    pub create_4xx_rate: Rate,
    /// Share of status checks answered 504.
    #[arg(long, env = "STATUS_504_RATE", default_value = "0")]
    pub status_504_rate: Rate,
    /// Share of final webhooks never sent.
    #[arg(long, env = "WEBHOOK_DROP_RATE", default_value = "0")]
    pub webhook_drop_rate: Rate,
    /// Share of final webhooks sent twice (same `webhook-id`).
    #[arg(long, env = "WEBHOOK_DUP_RATE", default_value = "0")]
    pub webhook_dup_rate: Rate,
    /// Share of transactions followed by a stale `pending` webhook after the final one.
    #[arg(long, env = "WEBHOOK_STALE_RATE", default_value = "0")]
    pub webhook_stale_rate: Rate,
}

impl Config {
    /// Settings with every fault off, for tests and the stack.
    pub fn reliable(webhook_url: String, webhook_secret: WebhookSecrets) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_url,
            webhook_secret,
            seed: 1,
            resolve_min_ms: 50,
            resolve_max_ms: 500,
            decline_rate: Rate::NEVER,
            latency_ms: 0,
            create_504_before_rate: Rate::NEVER,
            create_504_after_rate: Rate::NEVER,
            create_hang_rate: Rate::NEVER,
            create_4xx_rate: Rate::NEVER,
            status_504_rate: Rate::NEVER,
            webhook_drop_rate: Rate::NEVER,
            webhook_dup_rate: Rate::NEVER,
            webhook_stale_rate: Rate::NEVER,
        }
    }
}
