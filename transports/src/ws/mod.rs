//! WebSocket carriers (RFC 6455) over TCP, or TLS for `wss://`.
//!
//! Client side: [`WsTransport`] dials the server's control endpoint and upgrades. Server side:
//! [`accept_upgrade`] answers an upgrade request inside a hyper 1.x service and gives a
//! [`PendingCarrier`] that becomes a [`Carrier`](crate::Carrier) once hyper has handed over the
//! connection.
//!
//! Each carrier message is one binary WebSocket message, so message boundaries come for free.
//! Both sides refuse messages and frames larger than [`MAX_MESSAGE_BYTES`].
//!
//! Pings from the peer are answered by tungstenite while `recv` is being polled (it flushes the
//! queued pong before reading on), not by `send`: a carrier whose `recv` nobody polls leaves
//! pings unanswered. That is acceptable because the mux always has a `recv` pending and relies
//! on its own PING frames, not on WebSocket pings, to detect a dead carrier.

mod carrier;
mod client;
mod server;

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::MAX_MESSAGE_BYTES;

pub use client::WsTransport;
pub use server::{accept_upgrade, is_upgrade_request, PendingCarrier, Rejection};

/// The rustls version this crate builds its TLS on, for [`WsTransport::with_tls_config`].
pub use tokio_rustls::rustls;

/// Path appended to a server base URL that has no path of its own.
pub const CONTROL_PATH: &str = "/__underpass__/control";

/// Time allowed by default for TCP connect, TLS and the upgrade together.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The WebSocket settings both sides use: messages and frames capped at exactly
/// [`MAX_MESSAGE_BYTES`], and every frame written to the socket at once instead of being gathered
/// into a 128 KiB buffer (`send` flushes anyway; this just avoids a useless copy-and-wait).
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
        .write_buffer_size(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_limits_are_exact() {
        let c = websocket_config();
        assert_eq!(c.max_message_size, Some(MAX_MESSAGE_BYTES));
        assert_eq!(c.max_frame_size, Some(MAX_MESSAGE_BYTES));
    }
}
