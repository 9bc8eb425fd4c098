//! QUIC carriers (quinn, rustls with the *ring* provider), behind the `quic` feature.
//!
//! One QUIC connection per server URL, one bidirectional QUIC stream per carrier (PROTOCOL.md,
//! "QUIC carrier"): striping costs no extra handshake and a lost packet stalls only the stream it
//! belongs to. The ALPN is [`ALPN`]; the first stream carries HELLO, the others JOIN, exactly as
//! over WebSocket, but that is the business of the layer above.
//!
//! Client side: [`QuicTransport`] dials `quic://host:port`. Its first `connect` opens the
//! connection, later ones open a new stream on it while it lives. The server is authenticated by
//! a pinned SHA-256 fingerprint of its certificate or by a CA file
//! ([`ServerTrust`](crate::tls::ServerTrust), shared with `wss://`); there is no way to skip
//! verification.
//!
//! Server side: [`QuicAcceptor`] owns the UDP endpoint and yields one
//! [`Carrier`](crate::Carrier) per bidirectional stream of any connection. [`QuicServerCert`]
//! loads, generates or caches the certificate.
//!
//! # Framing
//! A QUIC stream is a byte stream, not a sequence of messages. The protocol's frames delimit
//! themselves (a 9-byte header holding the payload length), so `send` writes the message's frames
//! as they are and `recv` cuts the byte stream back into frames: it returns exactly **one frame**
//! per call, not the batch the peer sent. The mux decodes every message as a sequence of frames
//! anyway, so this is all it needs; a carrier user that sends bytes which are not whole frames
//! gets them back cut differently (or refused).

mod carrier;
mod cert;
mod client;
mod errors;
mod framing;
mod gate;
mod server;
mod tuning;

use std::time::Duration;

pub use cert::QuicServerCert;
pub use client::QuicTransport;
pub use framing::MAX_FRAME_PAYLOAD;
pub use server::{Admission, QuicAcceptor};
pub use tuning::QuicTuning;

/// The rustls version quinn is built on (the same one as [`crate::ws::rustls`]).
pub use quinn::rustls;
/// DER certificate and private key types, for [`QuicServerCert::new`].
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN protocol of underpass over QUIC (PROTOCOL.md).
pub const ALPN: &[u8] = b"underpass/2";

/// [`ALPN`] as text, reported in [`CarrierInfo::subprotocol`](crate::CarrierInfo::subprotocol).
pub const ALPN_STR: &str = "underpass/2";

/// Time allowed by default for name resolution, the QUIC handshake and opening the stream.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Stream reset code of a carrier dropped without `close` (not a clean end for the peer).
const CODE_DROPPED: u32 = 0;
