//! `stack`: the whole pipeline in one process against the local Postgres and Redis — creates
//! the database if needed, migrates, then runs the producer, the consumer (every queue) and
//! both simulators. Ctrl-C stops everything cleanly.
//!
//! Every setting is read from the environment (and `.env`) as by the separate binaries;
//! `WEBHOOK_SECRET`, `CLIENT_WEBHOOK_SECRET` and `API_KEY_PEPPER` are generated when unset.
//! The development client app `dev` is made (or kept) with `DEV_API_KEY`, or with a key made
//! at start and printed once.
#![deny(unsafe_code)]

use std::future::Future;

use anyhow::Context;
use clap::Parser;
use domain::{WebhookSecrets, client_app::Pepper};
use service::config::PostgresUrl;
use sqlx::{Connection, PgConnection};

/// A secret from the environment, or a generated development one.
fn secret(var: &str) -> anyhow::Result<String> {
    match std::env::var(var) {
        Ok(value) => {
            WebhookSecrets::parse(&value).with_context(|| format!("{var} is malformed"))?;
            Ok(value)
        }
        Err(_) => {
            tracing::warn!(
                variable = var,
                "unset: using a generated development secret"
            );
            Ok(WebhookSecrets::generate().expose())
        }
    }
}

/// `DEV_API_KEY`, or a new key, printed once (it is not stored in plaintext anywhere).
fn dev_api_key(pepper: &Pepper) -> anyhow::Result<String> {
    match std::env::var("DEV_API_KEY") {
        Ok(key) => {
            pepper.key_from(&key).context("DEV_API_KEY is malformed")?;
            Ok(key)
        }
        Err(_) => {
            let key = pepper.new_key().plaintext;
            // Printed, not logged: the one time this key is shown.
            service::start::print(format_args!("DEV_API_KEY={key}"));
            tracing::warn!(
                variable = "DEV_API_KEY",
                "unset: made a development API key, printed above"
            );
            Ok(key)
        }
    }
}

/// Creates the database named in `url` if it does not exist (a fresh machine has none).
async fn ensure_database(url: &PostgresUrl) -> anyhow::Result<()> {
    let name = url
        .database()
        .context("DATABASE_URL has no database name")?;
    if PgConnection::connect(url.as_str()).await.is_ok() {
        return Ok(());
    }
    let server = url.with_database("postgres");
    let mut admin = PgConnection::connect(server.as_str())
        .await
        .with_context(|| format!("cannot reach Postgres at {server}"))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    sqlx::query(&format!("CREATE DATABASE {quoted}"))
        .execute(&mut admin)
        .await?;
    tracing::info!(database = %name, "database created");
    Ok(())
}

fn parse<C: Parser>(name: &str, extra: &[(&str, &str)]) -> anyhow::Result<C> {
    let mut args = vec![name.to_string()];
    for (flag, value) in extra {
        args.push(format!("--{flag}={value}"));
    }
    C::try_parse_from(args).map_err(|e| anyhow::anyhow!("{name} settings: {e}"))
}

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `stack`'s command line: run (no command) or `check-config`.
#[derive(Debug, Parser)]
#[command(
    name = "stack",
    about = "The whole pipeline in one process against the local Postgres and Redis: creates the database if needed, migrates, runs the producer, the consumer and both simulators. Settings come from the environment and .env, as for the separate binaries."
)]
struct Cli {
    /// What to do instead of running.
    #[command(subcommand)]
    command: Option<Command>,
}

/// `stack`'s commands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Read every service's settings exactly as a start would, print them (secrets redacted)
    /// and exit: 0 if they are valid, 2 if not.
    CheckConfig,
}

/// Every service's settings, with the development secrets filled in.
#[derive(Debug)]
struct Settings {
    pepper: Pepper,
    producer: producer::Config,
    consumer: consumer::Config,
    thirdparty: thirdparty_sim::Config,
    client_sim: client_sim::Config,
}

/// Reads every service's settings from the environment, generating the development secrets
/// that are unset; checks the connection settings as the services will read them.
fn settings() -> anyhow::Result<Settings> {
    let webhook = secret("WEBHOOK_SECRET")?;
    let client = secret("CLIENT_WEBHOOK_SECRET")?;

    let pepper_text = match std::env::var("API_KEY_PEPPER") {
        Ok(value) => value,
        Err(_) => {
            tracing::warn!(
                variable = "API_KEY_PEPPER",
                "unset: using a generated development pepper (keys made now verify only in this run)"
            );
            Pepper::generate()
        }
    };
    let pepper: Pepper = pepper_text
        .parse()
        .map_err(|e| anyhow::anyhow!("API_KEY_PEPPER {e}"))?;

    let producer: producer::Config = parse(
        "producer",
        &[
            ("webhook-secret", &webhook),
            ("api-key-pepper", &pepper_text),
        ],
    )?;
    let consumer: consumer::Config = parse("consumer", &[("client-webhook-secret", &client)])?;
    let thirdparty: thirdparty_sim::Config =
        parse("thirdparty-sim", &[("webhook-secret", &webhook)])?;
    let client_sim: client_sim::Config =
        parse("client-sim", &[("client-webhook-secret", &client)])?;
    // What each binary checks beyond its parse, as its own start would.
    use service::start::Checked;
    producer.check().map_err(anyhow::Error::msg)?;
    consumer.check().map_err(anyhow::Error::msg)?;
    Ok(Settings {
        pepper,
        producer,
        consumer,
        thirdparty,
        client_sim,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    service::start::prepare();
    if let Some(Command::CheckConfig) = cli.command {
        match settings() {
            Ok(settings) => {
                service::start::print(format_args!("{settings:#?}"));
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        }
    }
    let Settings {
        pepper,
        producer,
        consumer,
        thirdparty,
        client_sim,
    } = settings()?;

    let database_url = &consumer.connections.database_url;
    ensure_database(database_url).await?;
    consumer::migrate(database_url.as_str())
        .await
        .context("migrations")?;
    let dev_key = dev_api_key(&pepper)?;
    let store = store::Store::connect_lazy(database_url.as_str(), 2)?;
    let dev = consumer::clients::ensure_dev(
        &store,
        &pepper,
        &dev_key,
        consumer.client_url.as_str(),
        &consumer.client_webhook_secret,
    )
    .await
    .context("the development client app")?;
    tracing::info!(client_app = %dev.id, "client app `dev` ready: send Authorization: Bearer $DEV_API_KEY");

    let shutdown = service::shutdown::on_signal()?;
    let bind = service::start::bind;
    let listeners = (
        bind(producer.addr).await?,
        bind(consumer.addr).await?,
        bind(thirdparty.addr).await?,
        bind(client_sim.addr).await?,
    );
    tracing::info!(
        producer = %producer.addr, consumer = %consumer.addr, thirdparty = %thirdparty.addr, client = %client_sim.addr,
        "stack up: POST http://127.0.0.1:{}/transaction", producer.addr.port()
    );
    let tasks = [
        spawn(
            "producer",
            producer::run(producer, listeners.0, shutdown.clone()),
        ),
        spawn(
            "consumer",
            consumer::run(consumer, listeners.1, shutdown.clone()),
        ),
        spawn("thirdparty-sim", {
            let stop = shutdown.clone();
            async move { Ok(thirdparty_sim::run(thirdparty, listeners.2, stop).await?) }
        }),
        spawn("client-sim", {
            let stop = shutdown.clone();
            async move { Ok(client_sim::run(client_sim, listeners.3, stop).await?) }
        }),
    ];
    let mut failed = false;
    for task in tasks {
        failed |= !matches!(task.await, Ok(Ok(())));
    }
    tracing::info!("stack stopped");
    service::trace::flush();
    if failed {
        anyhow::bail!("a service stopped with an error");
    }
    Ok(())
}

fn spawn(
    name: &'static str,
    service: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let result = service.await;
        if let Err(e) = &result {
            tracing::error!(service = name, error = %e, "service failed");
        }
        result
    })
}
