//! `thirdparty-sim`: parse the settings, bind, serve until Ctrl-C or SIGTERM.

use thirdparty_sim::Config;

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = service::start::settings();
    let listener = service::start::bind(config.addr).await?;
    thirdparty_sim::run(config, listener, service::shutdown::on_signal()?).await?;
    Ok(())
}
