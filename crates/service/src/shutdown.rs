//! Stopping. Every service's `run` takes a [`CancellationToken`]; cancelling it starts a
//! graceful stop (no new work, work in progress finishes within its grace period). Binaries
//! cancel it on a signal ([`on_signal`]); tests and `stack` cancel it themselves.

pub use tokio_util::sync::CancellationToken;

use tokio::signal::unix::{SignalKind, signal};

/// A token cancelled on the first SIGTERM or Ctrl-C (SIGINT). Fails at once if either handler
/// cannot be installed: a service that cannot hear SIGTERM would be killed mid-work instead of
/// stopping gracefully, so it must not start. Call it inside a Tokio runtime.
pub fn on_signal() -> std::io::Result<CancellationToken> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown signal received");
        cancel.cancel();
    });
    Ok(token)
}
