//! WebSocket carriers (RFC 6455) over TCP, or TLS for `wss://`.
//!
//! Client side: [`WsTransport`] dials the server's control endpoint and upgrades. Server side:
//! [`accept_upgrade`] answers an upgrade request inside a hyper 1.x service and gives a
//! [`PendingCarrier`] that becomes a [`Carrier`](crate::Carrier) once hyper has handed over the
//! connection.
//!
//! Each carrier message is one binary WebSocket message, so message boundaries come for free.
//! Both sides refuse messages and frames larger than [`MAX_MESSAGE_BYTES`](crate::MAX_MESSAGE_BYTES).
//!
//! The upgrade is HTTP/1.1 through hyper (tungstenite derives and generates the keys); after it
//! the carrier reads and writes RFC 6455 frames itself (`reader`, `writer`): a message is sent as
//! one final binary frame, written with the frame header in one vectored write straight from the
//! mux's buffers (the client copies once, to mask), and a received single-frame message is a
//! slice of the read buffer. Fragmented messages, interleaved control frames and the close
//! handshake are handled as RFC 6455 asks, so any conforming peer works.
//!
//! Pings from the peer are answered while `recv` is being polled, not by `send`: a carrier whose
//! `recv` nobody polls leaves pings unanswered. That is acceptable because the mux always has a
//! `recv` pending and relies on its own PING frames, not on WebSocket pings, to detect a dead
//! carrier.

mod carrier;
mod client;
mod frame;
mod proxy;
mod reader;
mod server;
mod writer;

use std::time::Duration;

pub use client::{UpgradeRefused, WsTransport};
pub use proxy::{EgressProxy, HttpProxy, ProxyRefused};
pub use server::{accept_upgrade, is_upgrade_request, PendingCarrier, Rejection};

/// The rustls version this crate builds its TLS on, for [`WsTransport::with_tls_config`].
pub use tokio_rustls::rustls;

/// Path appended to a server base URL that has no path of its own.
pub const CONTROL_PATH: &str = "/__underpass__/control";

/// Time allowed by default for TCP connect, TLS and the upgrade together.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
