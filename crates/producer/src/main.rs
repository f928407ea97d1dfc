//! `producer`: parse the settings, build the runtime, bind, serve until Ctrl-C or SIGTERM.

use producer::Config;

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config: Config = service::start::settings();
    let runtime = config.threads.runtime()?;
    let served = runtime.block_on(async {
        let listener = service::start::bind(config.addr).await?;
        producer::run(config, listener, service::shutdown::on_signal()?).await
    });
    service::trace::flush();
    served
}
