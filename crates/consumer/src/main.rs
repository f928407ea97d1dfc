//! `consumer`: run the worker pools, or `consumer migrate` to apply the migrations.

use clap::{Parser, Subcommand};
use consumer::Config;
use txn_core::config::DEFAULT_DATABASE_URL;

#[derive(Parser)]
#[command(
    name = "consumer",
    about = "The worker pools of the transaction pipeline",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Option<Config>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations and exit.
    Migrate {
        /// The database to migrate.
        #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
        database_url: String,
    },
}

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = txn_core::start::settings();
    match (cli.command, cli.config) {
        (Some(Command::Migrate { database_url }), _) => {
            consumer::migrate(&database_url).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        (None, Some(config)) => {
            let listener = txn_core::start::bind(config.addr).await?;
            consumer::run(config, listener, txn_core::shutdown::on_signal()?).await
        }
        (None, None) => anyhow::bail!("no configuration"),
    }
}
