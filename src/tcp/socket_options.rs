//! Socket options for every TCP connection that may live long: visitors, local services,
//! forwarded connections.
//!
//! A peer that vanishes without a FIN or RST (a laptop lid closed, a NAT entry dropped) leaves a
//! half-open socket: the tunnel would hold its mux stream and the matching connection at the
//! other end forever, and enough of them exhaust the stream limit of a session. TCP keepalive
//! finds such peers: after [`KEEPALIVE_IDLE`] of silence the kernel probes every
//! [`KEEPALIVE_INTERVAL`], and a peer that never answers turns into a read error, which resets
//! the stream and frees both ends (about 2.5 minutes with Linux's default 9 probes).

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Silence before the first keepalive probe.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time between unanswered probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Turns off Nagle (small interactive writes go out at once; the mux already batches) and turns
/// on keepalive. Failures only cost the tuning, so they are logged, not returned.
pub fn tune(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    let keepalive = TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "windows"
    ))]
    let keepalive = keepalive.with_interval(KEEPALIVE_INTERVAL);
    if let Err(e) = SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "TCP keepalive not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tuned_socket_has_nodelay_and_keepalive_with_our_timers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let sock = SockRef::from(&tcp);
        assert!(!sock.keepalive().unwrap(), "off until tuned");
        tune(&tcp);
        assert!(tcp.nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(sock.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
            assert_eq!(sock.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        }
    }
}
