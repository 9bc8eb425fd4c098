//! The `Transport` trait of underpass and its carriers.
//!
//! A *carrier* is an ordered, reliable, message-preserving, bidirectional pipe of [`Bytes`]. The
//! mux above knows nothing else about it, so a new transport never touches the mux, the server's
//! routing or the client's bindings. The traits are dyn-compatible: the transport is chosen at run
//! time and passed around as `Arc<dyn Transport>`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::Bytes;

pub mod mem;
#[cfg(feature = "quic")]
pub mod quic;
mod rx_end;
pub mod tls;
pub mod ws;

/// Largest message a carrier must carry (PROTOCOL.md: 262,144 bytes per multi-frame message).
/// Receivers refuse anything larger.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// Where and how a client dials a carrier.
#[derive(Clone)]
pub struct Endpoint {
    /// Server base URL (`ws://`, `wss://`, `http://`, `https://`, or `mem://NAME` for tests). A
    /// transport appends its own path (WebSocket: `/__underpass__/control`) unless the URL already
    /// has a non-root path.
    pub url: String,
    /// WebSocket subprotocol to offer, e.g. `hoody-tunnel.v2`.
    pub subprotocol: String,
    /// Token sent as `Authorization: Bearer` on the upgrade, when set.
    pub bearer: Option<String>,
}

/// Facts about one carrier, for the session table, logs and the admin API.
#[derive(Clone, Default)]
pub struct CarrierInfo {
    /// Transport name: `mem`, `ws`, `quic`.
    pub transport: &'static str,
    /// Address of the other end, when known.
    pub peer: Option<SocketAddr>,
    /// Negotiated subprotocol (WebSocket) or ALPN (QUIC).
    pub subprotocol: Option<String>,
    /// Bearer token presented at the transport level (upgrade header), server side only.
    pub bearer: Option<String>,
}

/// How `Debug` shows a bearer token: whether there is one, never its value.
fn redacted(bearer: &Option<String>) -> &'static str {
    if bearer.is_some() {
        "<redacted>"
    } else {
        "None"
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("subprotocol", &self.subprotocol)
            .field("bearer", &format_args!("{}", redacted(&self.bearer)))
            .finish()
    }
}

impl std::fmt::Debug for CarrierInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierInfo")
            .field("transport", &self.transport)
            .field("peer", &self.peer)
            .field("subprotocol", &self.subprotocol)
            .field("bearer", &format_args!("{}", redacted(&self.bearer)))
            .finish()
    }
}

/// One carrier: the two halves are driven by separate tasks.
pub struct Carrier {
    /// Sending half.
    pub tx: Box<dyn CarrierTx>,
    /// Receiving half.
    pub rx: Box<dyn CarrierRx>,
    /// What this carrier is.
    pub info: CarrierInfo,
}

impl std::fmt::Debug for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carrier").field("info", &self.info).finish()
    }
}

/// Sending half of a carrier.
#[async_trait]
pub trait CarrierTx: Send {
    /// Sends one message (one or more whole frames). Resolves once the transport has taken it.
    async fn send(&mut self, message: Bytes) -> io::Result<()>;
    /// Sends one message given as consecutive pieces (frame headers, payloads as the mux holds
    /// them), so that a transport able to write them as they are (vectored writes, chunk lists)
    /// never copies the payload to join them. The default joins them and calls
    /// [`send`](Self::send).
    async fn send_parts(&mut self, mut parts: Vec<Bytes>) -> io::Result<()> {
        let message = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            parts.concat().into()
        };
        self.send(message).await
    }
    /// Closes the carrier cleanly; the peer's `recv` then returns `Ok(None)`.
    async fn close(&mut self) -> io::Result<()>;
    /// Closes the carrier with a protocol close code and reason (PROTOCOL.md: 1002 for a
    /// rejected HELLO, 1008 for a refused resume, 1013 when a limit is hit); the peer's `recv`
    /// fails with a [`CloseReason`]. Transports without close codes close normally.
    async fn close_with(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let _ = (code, reason);
        self.close().await
    }
}

/// Receiving half of a carrier.
#[async_trait]
pub trait CarrierRx: Send {
    /// Next message; `Ok(None)` when the peer closed cleanly. Cancel safe: dropping the future
    /// loses no message.
    async fn recv(&mut self) -> io::Result<Option<Bytes>>;

    /// The layer above accepted this carrier's first message (a HELLO with a valid token, a
    /// JOIN with a valid ticket): its peer is authenticated. A transport that holds
    /// unauthenticated peers to tighter limits (QUIC: a small receive window, few carriers, a
    /// deadline) lifts them for the whole connection. The default does nothing.
    fn peer_authenticated(&mut self) {}
}

/// A way to dial carriers to a server (client side).
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Short name for logs and metrics (`ws`, `quic`, `mem`).
    fn name(&self) -> &'static str;
    /// Dials one new carrier. Striping calls it once per carrier.
    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Carrier>;
}

/// Why a peer ended a carrier with something other than a clean close: a WebSocket close code
/// other than 1000 (normal) or 1001 (going away), or a QUIC application error code.
///
/// `recv` reports such a close as an [`io::Error`] of kind [`io::ErrorKind::ConnectionAborted`]
/// carrying this value, because the mux must tell "the server refused us" (e.g. close 1008
/// `resume grace expired`) from a clean end. Read it back with [`close_reason`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// Close code as sent by the peer.
    pub code: u16,
    /// Reason text as sent by the peer (may be empty).
    pub reason: String,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "peer closed the carrier with code {}", self.code)
        } else {
            write!(
                f,
                "peer closed the carrier with code {}: {}",
                self.code, self.reason
            )
        }
    }
}

impl std::error::Error for CloseReason {}

impl CloseReason {
    /// Wraps the reason in the error `recv` returns for it.
    pub fn into_io_error(self) -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, self)
    }
}

/// The [`CloseReason`] inside an error returned by `recv`, if the peer closed with one.
pub fn close_reason(err: &io::Error) -> Option<&CloseReason> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<CloseReason>())
}
