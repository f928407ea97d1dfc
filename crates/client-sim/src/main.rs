//! `client-sim`: parse the settings, bind, serve until Ctrl-C or SIGTERM.

use client_sim::Config;

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread, as the services default to: no task is woken across threads, which cost the
// simulators a sixth of their CPU per transaction on two cores (measured end to end).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    Ok(service::start::serve_until_signal(|c: &Config| c.addr, client_sim::run).await?)
}
