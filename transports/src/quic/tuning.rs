//! Flow-control, liveness and socket settings, and the UDP endpoint they apply to.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::VarInt;
use socket2::{Domain, Protocol, Socket, Type};

/// Flow-control, liveness and socket settings of QUIC connections.
///
/// The defaults keep QUIC's own flow control out of the way of the mux's (1 MiB per stream,
/// 16 MiB per session): one carrier may carry a whole session's window, and a connection may
/// carry a little more than one session.
#[derive(Debug, Clone)]
pub struct QuicTuning {
    /// Bytes the peer may send on one carrier (QUIC stream) ahead of our reading.
    pub stream_receive_window: u32,
    /// Bytes the peer may send on the whole connection ahead of our reading. This also bounds
    /// what an unauthenticated peer can make the server buffer per connection.
    pub receive_window: u32,
    /// Bytes of unacknowledged data quinn buffers for sending per connection.
    pub send_window: u64,
    /// Carriers (bidirectional streams) a client may have open at once on one connection.
    pub max_carriers_per_connection: u32,
    /// Server side: the connection receive window until one of the connection's carriers is
    /// authenticated ([`CarrierRx::peer_authenticated`](crate::CarrierRx::peer_authenticated)).
    /// With one partial frame per carrier, this bounds what an unauthenticated peer can make the
    /// server buffer.
    pub unauthenticated_receive_window: u32,
    /// Server side: carriers an unauthenticated connection may have open at once.
    pub unauthenticated_carriers: u32,
    /// Server side: a connection none of whose carriers is authenticated within this time is
    /// closed (a peer that completes the QUIC handshake and then says nothing).
    pub unauthenticated_timeout: Duration,
    /// Keep-alive interval; keeps NAT bindings and idle connections alive.
    pub keep_alive_interval: Duration,
    /// A connection silent for this long is dead (at most 2^62 ms).
    pub max_idle_timeout: Duration,
    /// SO_SNDBUF and SO_RCVBUF asked for on the UDP socket; the kernel may grant less.
    pub socket_buffer_bytes: usize,
}

impl Default for QuicTuning {
    fn default() -> Self {
        QuicTuning {
            stream_receive_window: 16 << 20,
            receive_window: 32 << 20,
            send_window: 32 << 20,
            max_carriers_per_connection: 64,
            // Two whole frames (a HELLO or JOIN is one).
            unauthenticated_receive_window: 128 << 10,
            unauthenticated_carriers: 4,
            unauthenticated_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(15),
            max_idle_timeout: Duration::from_secs(60),
            socket_buffer_bytes: 4 << 20,
        }
    }
}

impl QuicTuning {
    /// quinn's transport settings. A client accepts no stream from the server (`server` false):
    /// carriers are always opened by the client. A server starts every connection at the
    /// unauthenticated limits; [`open_up`](Self::open_up) lifts them. Datagrams and
    /// unidirectional streams are unused, so they are refused.
    pub(super) fn transport_config(&self, server: bool) -> io::Result<quinn::TransportConfig> {
        let idle = quinn::IdleTimeout::try_from(self.max_idle_timeout).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "QUIC max_idle_timeout is too large",
            )
        })?;
        let mut config = quinn::TransportConfig::default();
        config
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(if server {
                self.unauthenticated_receive_window.min(self.receive_window)
            } else {
                self.receive_window
            }))
            .send_window(self.send_window)
            .max_concurrent_bidi_streams(VarInt::from_u32(if server {
                self.unauthenticated_carriers
                    .min(self.max_carriers_per_connection)
            } else {
                0
            }))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None)
            .keep_alive_interval(Some(self.keep_alive_interval))
            .max_idle_timeout(Some(idle));
        // GSO and GRO need no setting: quinn-udp uses them by itself where the kernel has them,
        // and falls back to one datagram per system call elsewhere.
        Ok(config)
    }

    /// Lifts a server connection from the unauthenticated limits to the full ones.
    pub(super) fn open_up(&self, conn: &quinn::Connection) {
        conn.set_receive_window(VarInt::from_u32(self.receive_window));
        conn.set_max_concurrent_bi_streams(VarInt::from_u32(self.max_carriers_per_connection));
    }
}

/// The UDP socket of an endpoint, with large kernel buffers: at high rates the default
/// (about 200 KiB on Linux) overflows between two reads and every drop costs a QUIC loss
/// recovery. The effective sizes are logged, and a warning says how to raise the cap.
fn udp_socket(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Failing to enlarge a buffer is not fatal: the reported sizes below show what we got.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    let recv = socket.recv_buffer_size().unwrap_or(0);
    let send = socket.send_buffer_size().unwrap_or(0);
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    // Linux reports twice the usable size (the other half is its bookkeeping).
    let usable = |reported: usize| {
        if cfg!(target_os = "linux") {
            reported / 2
        } else {
            reported
        }
    };
    tracing::info!(
        %local,
        recv_buffer = usable(recv),
        send_buffer = usable(send),
        asked = buffer,
        "QUIC UDP socket buffers"
    );
    if usable(recv) < buffer {
        tracing::warn!(
            %local,
            granted = usable(recv),
            asked = buffer,
            "the kernel capped the QUIC receive buffer; fast transfers may lose packets: raise \
             the cap with `sysctl -w net.core.rmem_max={buffer}` (persist it in /etc/sysctl.d)"
        );
    }
    if usable(send) < buffer {
        tracing::warn!(
            %local,
            granted = usable(send),
            asked = buffer,
            "the kernel capped the QUIC send buffer: raise the cap with \
             `sysctl -w net.core.wmem_max={buffer}`"
        );
    }
    Ok(socket.into())
}

pub(super) fn new_endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    tuning: &QuicTuning,
) -> io::Result<quinn::Endpoint> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "a QUIC endpoint needs a running Tokio runtime",
        ));
    }
    let socket = udp_socket(addr, tuning.socket_buffer_bytes)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tuning_covers_the_mux_windows() {
        let t = QuicTuning::default();
        assert!(t.stream_receive_window >= 2 << 20);
        assert!(t.receive_window >= 32 << 20);
        assert!(t.max_carriers_per_connection >= 64);
        assert!(t.transport_config(true).is_ok());
        assert!(t.transport_config(false).is_ok());
    }
}
