//! `consumer`: run the worker pools, or `consumer migrate` to apply the migrations.

use clap::Parser;
use consumer::Config;
use txn_core::{
    config::{DEFAULT_DATABASE_URL, PostgresUrl},
    secret::parser,
};

/// `consumer migrate`: needs the database and nothing else.
#[derive(Debug, Parser)]
#[command(
    name = "consumer migrate",
    about = "Apply the database migrations and exit"
)]
struct Migrate {
    /// The database to migrate.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, value_parser = parser::<PostgresUrl>())]
    database_url: PostgresUrl,
}

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "migrate") {
        args.remove(1);
        txn_core::start::prepare();
        let migrate: Migrate = txn_core::start::settings_from(args);
        consumer::migrate(migrate.database_url.as_str()).await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    let config: Config = txn_core::start::settings();
    let listener = txn_core::start::bind(config.addr).await?;
    consumer::run(config, listener, txn_core::shutdown::on_signal()?).await
}
