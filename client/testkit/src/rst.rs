//! Ending a TCP connection with a reset (RST) instead of a FIN.

use std::time::Duration;

use tokio::net::TcpStream;

/// Sets `SO_LINGER` to zero, so that dropping the socket sends RST at once
/// rather than closing it gracefully. Best effort: on failure the drop
/// closes with a FIN, which a client sees as a drop all the same.
pub(crate) fn arm_reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
