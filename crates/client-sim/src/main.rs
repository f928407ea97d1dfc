//! `client-sim`: parse the settings, bind, serve until Ctrl-C or SIGTERM.

use client_sim::Config;

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = txn_core::start::settings();
    let listener = txn_core::start::bind(config.addr).await?;
    client_sim::run(config, listener, txn_core::shutdown::on_signal()?).await?;
    Ok(())
}
