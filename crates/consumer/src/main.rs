//! `consumer`: run the worker pools, or `consumer migrate` to apply the migrations.

use consumer::{Config, MigrateConfig};

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "migrate") {
        args.remove(1);
        service::start::prepare();
        let migrate: MigrateConfig = service::start::settings_from(args);
        let wait = std::time::Duration::from_millis(migrate.wait_ms);
        consumer::migrate_when_ready(migrate.database_url.as_str(), wait).await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    let config: Config = service::start::settings();
    let listener = service::start::bind(config.addr).await?;
    consumer::run(config, listener, service::shutdown::on_signal()?).await
}
