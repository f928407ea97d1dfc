//! `consumer`: run the worker pools, `consumer migrate` to apply the migrations, or
//! `consumer clients …` to administer client apps.

use consumer::Invocation;
use service::config::Threads;

// glibc malloc spends a sixth of the producer's CPU under load (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    service::start::prepare();
    match consumer::invocation_from(std::env::args_os()) {
        Invocation::Run(config) => {
            let ran = config.threads.runtime()?.block_on(async {
                let listener = service::start::bind(config.addr).await?;
                consumer::run(*config, listener, service::shutdown::on_signal()?).await
            });
            service::trace::flush();
            ran
        }
        Invocation::Migrate(migrate) => Threads::default().runtime()?.block_on(async {
            consumer::migrate_when_ready(migrate.database_url.as_str(), migrate.wait).await?;
            tracing::info!("migrations applied");
            consumer::bootstrap_dev(&migrate).await
        }),
        Invocation::Clients(clients) => Threads::default().runtime()?.block_on(async {
            let answer = consumer::administer(clients).await?;
            service::start::print(format_args!("{answer:#}"));
            Ok(())
        }),
    }
}
