//! The QUIC listener: every accepted QUIC stream is a carrier that goes through the same
//! HELLO/JOIN handshake as a WebSocket carrier. Nothing above the handshake knows the difference.
//! Each QUIC connection is admitted like a TCP connection (`--max-connections-per-ip`, then a
//! permit of `--fd-budget`, held while it lives).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use underpass_transports::quic::{Admission, QuicAcceptor, QuicTuning};

use super::config::QuicListen;
use super::handshake;
use super::state::ServerState;

/// Binds the UDP listener and starts accepting carriers.
pub fn start(
    state: Arc<ServerState>,
    listen: QuicListen,
) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let tuning = tuning_for(&state);
    let admitting = state.clone();
    let admission: Admission = Arc::new(move |peer: SocketAddr| {
        let admitted = admitting.admit_connection(peer.ip()).ok()?;
        Some(Box::new(admitted) as Box<dyn Send>)
    });
    let mut acceptor = QuicAcceptor::bind_admitting(listen.addr, listen.cert, tuning, admission)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for QUIC on {}: {e}", listen.addr),
            )
        })?;
    let addr = acceptor.local_addr();
    let task = tokio::spawn(async move {
        while let Some(carrier) = acceptor.accept().await {
            tokio::spawn(handshake::accept_carrier(state.clone(), carrier));
        }
    });
    Ok((addr, task))
}

/// QUIC flow-control windows at least as large as the mux windows, so QUIC never becomes the
/// tighter limit once a carrier is authenticated; keep-alive well inside the mux's ping
/// interval; a connection that authenticates no carrier in twice the hello timeout is closed.
fn tuning_for(state: &ServerState) -> QuicTuning {
    let limits = &state.config.limits;
    let mut t = QuicTuning::default();
    t.stream_receive_window = t.stream_receive_window.max(limits.session_window);
    t.receive_window = t
        .receive_window
        .max(limits.session_window.saturating_mul(2));
    t.max_carriers_per_connection = t
        .max_carriers_per_connection
        .max(limits.max_connections_per_session * 2);
    t.unauthenticated_timeout = limits.hello_timeout.saturating_mul(2);
    t
}
