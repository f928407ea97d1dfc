//! A payment processor that misbehaves on purpose: it accepts transactions,
//! resolves them after a random delay, and reports the outcome by signed webhook — and, at
//! configurable rates, answers 504 before or after creating, hangs, refuses, drops, duplicates
//! or follows a final webhook with a stale `pending`. `/stats` counts what it did, including
//! `conflicts`: creates for an id it already had, i.e. blind re-submissions.
#![deny(unsafe_code)]

mod config;
mod sim;

pub use config::{Behaviour, Config};
pub use sim::{Stats, router};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the simulator on `listener` until `shutdown` is cancelled; pending resolutions, hung
/// calls and webhooks in flight are cancelled then.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Its own stop as well, so the tasks it spawned end even if serving fails.
    let stop = shutdown.child_token();
    let server = config.server.clone();
    let app = router(config, stop.clone()).map_err(std::io::Error::other)?;
    tracing::info!(addr = %listener.local_addr()?, tls = server.tls_cert_file.is_some(), "thirdparty-sim listening");
    let served = service::serve::serve(listener, app, &server, stop.clone()).await;
    stop.cancel();
    served
}
