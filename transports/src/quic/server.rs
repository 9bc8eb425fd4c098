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
use super::gate::Gate;
use super::tuning::{new_endpoint, QuicTuning};
use super::ALPN;
use crate::tls::provider;
use crate::Carrier;

/// Decides whether a new QUIC connection from an address is taken, before any handshake work
/// (and after the address was validated with a Retry, so a spoofed source takes nothing): `Some`
/// admits it, and the value is held for as long as the connection lives (a permit of a connection
/// budget, say); `None` refuses it with CONNECTION_REFUSED.
pub type Admission = Arc<dyn Fn(SocketAddr) -> Option<Box<dyn Send>> + Send + Sync>;

/// Accepts QUIC connections on a UDP socket and yields their carriers.
///
/// Until one of its carriers is authenticated
/// ([`CarrierRx::peer_authenticated`](crate::CarrierRx::peer_authenticated)) a connection is
/// held to the `unauthenticated_*` limits of its [`QuicTuning`], and closed when that does not
/// happen within `unauthenticated_timeout`.
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

    /// [`bind`](Self::bind) with explicit tuning; every connection is admitted.
    pub fn bind_with_tuning(
        addr: SocketAddr,
        cert: QuicServerCert,
        tuning: QuicTuning,
    ) -> io::Result<QuicAcceptor> {
        Self::bind_admitting(addr, cert, tuning, Arc::new(|_| Some(Box::new(()))))
    }

    /// [`bind_with_tuning`](Self::bind_with_tuning), taking only the connections `admission`
    /// admits.
    pub fn bind_admitting(
        addr: SocketAddr,
        cert: QuicServerCert,
        tuning: QuicTuning,
        admission: Admission,
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
        let accept_loop = tokio::spawn(accept_loop(
            endpoint.clone(),
            sink,
            connections.clone(),
            admission,
            tuning,
        ));
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
    admission: Admission,
    tuning: QuicTuning,
) {
    while let Some(incoming) = endpoint.accept().await {
        let peer = incoming.remote_address();
        // A Retry first: it proves the source address, costs the server no state, and the
        // client one round trip.
        if !incoming.remote_address_validated() && incoming.may_retry() {
            if let Err(e) = incoming.retry() {
                tracing::debug!(%peer, error = %e, "QUIC retry failed");
            }
            continue;
        }
        let Some(admitted) = admission(peer) else {
            tracing::debug!(%peer, "QUIC connection not admitted; refused");
            incoming.refuse();
            continue;
        };
        let sink = sink.clone();
        let connections = connections.clone();
        let tuning = tuning.clone();
        // A task per connection, so a slow handshake holds up nobody else.
        tokio::spawn(async move {
            let _admitted = admitted;
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
            let deadline = tuning.unauthenticated_timeout;
            let gate = Arc::new(Gate::new(conn.clone(), tuning));
            let serving = serve_connection(conn.clone(), sink, gate.clone());
            tokio::pin!(serving);
            tokio::select! {
                () = &mut serving => return,
                () = gate.opened() => {}
                () = tokio::time::sleep(deadline) => {
                    tracing::debug!(%peer, "no carrier of a QUIC connection authenticated in time; closing");
                    conn.close(VarInt::from_u32(CODE_UNAUTHENTICATED), b"no HELLO or JOIN accepted in time");
                    return;
                }
            }
            serving.await;
        });
    }
}

/// Application close code of a connection that authenticated no carrier in time (PROTOCOL.md's
/// 1002, protocol error, as for a carrier that sends no HELLO).
const CODE_UNAUTHENTICATED: u32 = 1002;

/// Hands out every bidirectional stream of `conn` as a carrier until it closes.
async fn serve_connection(conn: quinn::Connection, sink: mpsc::Sender<Carrier>, gate: Arc<Gate>) {
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    let carrier = carrier(send, recv, conn.clone(), Some(gate.clone()));
                    if sink.send(carrier).await.is_err() {
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
