//! What every binary does before its service runs: read `.env`, set up logging, parse its
//! settings, bind its address.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Reads `.env` from the working directory, if there is one, for settings not already in the
/// environment (development convenience; production sets the environment itself), then sets up
/// logging.
pub fn prepare() {
    let _ = dotenvy::dotenv();
    crate::telemetry::init();
}

/// [`prepare`], then the binary's settings from the environment and its flags (a malformed
/// value ends the process with clap's message, naming the setting).
pub fn settings<C: clap::Parser>() -> C {
    prepare();
    C::parse()
}

/// Binds the service's address; the error names the address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
