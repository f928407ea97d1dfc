//! Free TCP ports on 127.0.0.1.

use std::{collections::BTreeSet, io, net::TcpListener, sync::Mutex};

/// A TCP port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port for a Redis Cluster node: free now, with its cluster-bus port (port + 10000) free
/// too, and never handed out before by this process. Tests start clusters concurrently, and
/// the OS may give the same ephemeral port to two of them between a probe and a node's bind.
pub fn free_port_with_bus() -> io::Result<u16> {
    static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = free_port()?;
        // Both ports must stay below 65536.
        if port >= 55_000 {
            continue;
        }
        let bus = port + 10_000;
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        // Neither port may be a port or a bus port handed out before.
        let clashes = [Some(port), Some(bus), port.checked_sub(10_000)]
            .into_iter()
            .flatten()
            .any(|p| taken.contains(&p));
        if !clashes && TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            taken.insert(port);
            taken.insert(bus);
            return Ok(port);
        }
    }
}
