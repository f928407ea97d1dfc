//! A client app that receives status callbacks (DESIGN §3): it verifies each signature (401 on a
//! bad one), fails a configurable share on purpose, and records every accepted delivery with
//! its `delivery_id` (the `webhook-id` header) so tests can check what it was told.
#![deny(unsafe_code)]

mod config;
mod receiver;

pub use config::Config;
pub use receiver::{Received, ReceivedStats, router};

use std::future::Future;

use tokio::net::TcpListener;

/// Serves the simulator on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "client-sim listening");
    axum::serve(txn_core::listener::no_delay(listener), router(config))
        .with_graceful_shutdown(shutdown)
        .await
}
