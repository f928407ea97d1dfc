//! `consumer`: run the worker pools, `consumer migrate` to apply the migrations, or
//! `consumer clients …` to administer client apps.

use consumer::Invocation;

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::start::prepare();
    match consumer::invocation_from(std::env::args_os()) {
        Invocation::Run(config) => {
            let listener = service::start::bind(config.addr).await?;
            let ran = consumer::run(*config, listener, service::shutdown::on_signal()?).await;
            service::trace::flush();
            ran
        }
        Invocation::Migrate(migrate) => {
            consumer::migrate_when_ready(migrate.database_url.as_str(), migrate.wait).await?;
            tracing::info!("migrations applied");
            consumer::bootstrap_dev(&migrate).await
        }
        Invocation::Clients(clients) => {
            let answer = consumer::administer(clients).await?;
            service::start::print(format_args!("{answer:#}"));
            Ok(())
        }
    }
}
