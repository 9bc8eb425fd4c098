//! The server side: the UDP endpoint and the carriers of every connection it accepts.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use quinn::rustls;
use quinn::VarInt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::carrier::carrier;
use super::cert::QuicServerCert;
use super::tuning::{new_endpoint, QuicTuning};
use super::ALPN;
use crate::tls::provider;
use crate::Carrier;

/// Accepts QUIC connections on a UDP socket and yields their carriers.
///
/// Dropping it stops accepting connections, like dropping a `TcpListener`: new handshakes get no
/// answer (the client times out) and new streams on existing connections are not taken, but the
/// carriers already handed out keep working until they close. [`close`](Self::close) ends
/// everything at once and refuses new handshakes outright.
pub struct QuicAcceptor {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    carriers: mpsc::Receiver<Carrier>,
    connections: Arc<AtomicU64>,
    accept_loop: JoinHandle<()>,
}

impl fmt::Debug for QuicAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicAcceptor")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl QuicAcceptor {
    /// Binds a UDP socket on `addr` and serves `cert` with the default [`QuicTuning`]. Must be
    /// called inside a Tokio runtime.
    pub fn bind(addr: SocketAddr, cert: QuicServerCert) -> io::Result<QuicAcceptor> {
        Self::bind_with_tuning(addr, cert, QuicTuning::default())
    }

    /// [`bind`](Self::bind) with explicit tuning.
    pub fn bind_with_tuning(
        addr: SocketAddr,
        cert: QuicServerCert,
        tuning: QuicTuning,
    ) -> io::Result<QuicAcceptor> {
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_single_cert(cert.chain, cert.key)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("QUIC server certificate or key unusable: {e}"),
                )
            })?;
        // rustls refuses, in QUIC, a client that does not offer this ALPN.
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto =
            QuicServerConfig::try_from(tls).map_err(|e| io::Error::other(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(Arc::new(tuning.transport_config(true)?));

        let endpoint = new_endpoint(addr, Some(server_config), &tuning)?;
        let local_addr = endpoint.local_addr()?;
        // Small: a full queue holds back accept_bi of that connection, and the client waits.
        let (sink, carriers) = mpsc::channel(16);
        let connections = Arc::new(AtomicU64::new(0));
        let accept_loop = tokio::spawn(accept_loop(endpoint.clone(), sink, connections.clone()));
        Ok(QuicAcceptor {
            endpoint,
            local_addr,
            carriers,
            connections,
            accept_loop,
        })
    }

    /// The bound UDP address (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Next carrier: one per bidirectional stream a client opened, from any connection, in the
    /// order the streams arrived. `None` once the endpoint is closed and its connections are
    /// gone. Cancel safe.
    pub async fn accept(&mut self) -> Option<Carrier> {
        self.carriers.recv().await
    }

    /// QUIC connections whose handshake completed since the bind (for metrics and tests).
    pub fn connections_accepted(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Closes every connection now with application error `code` and `reason` (peers' carriers
    /// fail with that [`CloseReason`](crate::CloseReason)) and stops accepting.
    pub fn close(&self, code: u16, reason: &str) {
        self.endpoint.close(VarInt::from(code), reason.as_bytes());
    }
}

impl Drop for QuicAcceptor {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.endpoint.set_server_config(None);
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    sink: mpsc::Sender<Carrier>,
    connections: Arc<AtomicU64>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let sink = sink.clone();
        let connections = connections.clone();
        // A task per connection, so a slow handshake holds up nobody else.
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            let conn = match incoming.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "QUIC handshake failed");
                    return;
                }
            };
            // rustls already refused other ALPNs; this keeps the invariant local.
            let alpn = conn
                .handshake_data()
                .and_then(|data| data.downcast::<HandshakeData>().ok())
                .and_then(|data| data.protocol);
            if alpn.as_deref() != Some(ALPN) {
                conn.close(VarInt::from_u32(0x0178), b"unsupported ALPN");
                return;
            }
            connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "QUIC connection accepted");
            serve_connection(conn, sink).await;
        });
    }
}

/// Hands out every bidirectional stream of `conn` as a carrier until it closes.
async fn serve_connection(conn: quinn::Connection, sink: mpsc::Sender<Carrier>) {
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    if sink.send(carrier(send, recv, conn.clone())).await.is_err() {
                        // The acceptor is gone: nobody takes carriers any more.
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(
                        peer = %conn.remote_address(),
                        reason = %e,
                        "QUIC connection ended"
                    );
                    return;
                }
            },
            () = sink.closed() => return,
        }
    }
}
