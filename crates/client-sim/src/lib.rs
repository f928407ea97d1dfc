//! A client app that receives status callbacks: it verifies each signature (401 on a
//! bad one), fails a configurable share on purpose, and records every accepted delivery with
//! its `delivery_id` (the `webhook-id` header) so tests can check what it was told.
#![deny(unsafe_code)]

mod config;
mod receiver;

pub use config::{Config, Faults};
pub use receiver::{Received, ReceivedStats, router};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the simulator on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, tls = config.server.tls_cert_file.is_some(), "client-sim listening");
    let server = config.server.clone();
    service::serve::serve(listener, router(config), &server, shutdown).await
}
