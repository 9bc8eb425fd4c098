//! How a client reaches its server.

use std::sync::Arc;
use std::time::Duration;

use underpass_transports::ws::WsTransport;
use underpass_transports::Transport;

/// Connection settings of a client session.
#[derive(Clone)]
pub struct ClientOptions {
    /// Server base URL: `ws://`, `wss://`, `http://` or `https://` (the control path is appended).
    pub server: String,
    /// Shared token.
    pub token: String,
    /// Carriers to ask for: 1 speaks v1, more speak v2 with striping.
    pub connections: u32,
    /// How carriers are dialed.
    pub transport: Arc<dyn Transport>,
    /// How long to wait for HELLO_OK / JOIN_OK.
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches logs.
        f.debug_struct("ClientOptions")
            .field("server", &self.server)
            .field("connections", &self.connections)
            .field("transport", &self.transport.name())
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// WebSocket carriers, 4 of them (v2), to `server` with `token`.
    pub fn new(server: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            token: token.into(),
            connections: 4,
            transport: Arc::new(WsTransport::new()),
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// Sets the number of carriers (1 = protocol v1).
    pub fn connections(mut self, n: u32) -> Self {
        self.connections = n.max(1);
        self
    }

    /// Uses another transport.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }
}
