//! Serving HTTP: listener settings every service shares.

/// A listener whose connections send at once (no Nagle): answers are small, and waiting for the
/// peer's delayed ACK adds up to 40 ms to each.
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    })
}
