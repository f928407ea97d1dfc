//! `producer`: parse the settings, bind, serve until Ctrl-C or SIGTERM.

use clap::Parser;
use producer::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    txn_core::load_dotenv();
    txn_core::telemetry::init();
    let config = Config::parse();
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    producer::run(config, listener, txn_core::telemetry::shutdown_signal()).await
}
