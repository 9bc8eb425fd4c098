//! How a client reaches its server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use underpass_transports::tls::ServerTrust;
use underpass_transports::ws::EgressProxy;
use underpass_transports::Transport;

use super::carriers::BuiltIn;
use super::error::ClientError;

/// Connection settings of a client session.
#[derive(Clone)]
pub struct ClientOptions {
    /// Server base URL: `ws://`, `wss://`, `http://` or `https://` (the control path is
    /// appended), or `quic://HOST:PORT`.
    pub server: String,
    /// Shared token.
    pub token: String,
    /// Carriers to ask for: 1 speaks v1, more speak v2 with striping.
    pub connections: u32,
    /// How carriers are dialed: by default the built-in WebSocket or QUIC transport the URL
    /// names, set up by [`trust`](Self::trust) and [`proxy`](Self::proxy).
    pub transport: Arc<dyn Transport>,
    /// How long to wait for HELLO_OK / JOIN_OK, and for a TICKET before concluding that the
    /// server does not re-admit lost carriers.
    pub handshake_timeout: Duration,
    /// The built-in transport behind `transport`, when it is one (for [`check`](Self::check)).
    built_in: Option<Arc<BuiltIn>>,
    trust: ServerTrust,
    proxy: EgressProxy,
    /// PING a carrier after this long without receiving anything on it.
    pub ping_interval: Duration,
    /// Give a carrier up when its PING is unanswered this long (carrier 0: the session is
    /// resumed; another: it is re-dialled).
    pub pong_timeout: Duration,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches logs; the proxy shows no password.
        f.debug_struct("ClientOptions")
            .field("server", &self.server)
            .field("connections", &self.connections)
            .field("transport", &self.transport.name())
            .field("trust", &self.trust)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// 4 carriers (v2) to `server` with `token`: WebSocket, or QUIC for a `quic://` URL; the
    /// server's certificate checked against the system's trust store ([`ServerTrust::System`]);
    /// no egress proxy (see [`proxy`](Self::proxy)).
    pub fn new(server: impl Into<String>, token: impl Into<String>) -> Self {
        let built_in = Arc::new(BuiltIn::new(ServerTrust::System, EgressProxy::Direct));
        Self {
            server: server.into(),
            token: token.into(),
            connections: 4,
            transport: built_in.clone(),
            handshake_timeout: Duration::from_secs(10),
            built_in: Some(built_in),
            trust: ServerTrust::System,
            proxy: EgressProxy::Direct,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(60),
        }
    }

    /// Sets the number of carriers (1 = protocol v1).
    pub fn connections(mut self, n: u32) -> Self {
        self.connections = n.max(1);
        self
    }

    /// Sets the keepalive: PING after `interval` of silence, give the carrier up after
    /// `timeout` without PONG.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.pong_timeout = timeout;
        self
    }

    /// Uses another transport (then [`trust`](Self::trust) and [`proxy`](Self::proxy) are up
    /// to it).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self.built_in = None;
        self
    }

    /// How the server's certificate is checked, for `wss://` and `quic://` alike.
    pub fn trust(mut self, trust: ServerTrust) -> Self {
        self.trust = trust;
        self.rebuild()
    }

    /// Trusts the CA certificates of this PEM file instead of the system's (`--ca`).
    pub fn ca(self, pem_file: impl Into<PathBuf>) -> Self {
        self.trust(ServerTrust::CaFile(pem_file.into()))
    }

    /// Trusts exactly the server certificate with this SHA-256 (`--server-cert-sha256`; parse
    /// hex with [`parse_fingerprint`](underpass_transports::tls::parse_fingerprint)).
    pub fn server_cert_sha256(self, sha256: [u8; 32]) -> Self {
        self.trust(ServerTrust::PinnedSha256(sha256))
    }

    /// Sends WebSocket carriers through an HTTP proxy with `CONNECT`
    /// ([`EgressProxy::FromEnv`] reads `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`). QUIC
    /// carriers ignore it.
    pub fn proxy(mut self, proxy: EgressProxy) -> Self {
        self.proxy = proxy;
        self.rebuild()
    }

    fn rebuild(mut self) -> Self {
        let built_in = Arc::new(BuiltIn::new(self.trust.clone(), self.proxy.clone()));
        self.transport = built_in.clone();
        self.built_in = Some(built_in);
        self
    }

    /// Sets up the transport for [`server`](Self::server) now, so that a setting that cannot
    /// work (an unreadable CA file) is reported before any connection.
    pub fn check(&self) -> Result<(), ClientError> {
        match &self.built_in {
            Some(built_in) => built_in
                .for_url(&self.server)
                .map(drop)
                .map_err(ClientError::Config),
            None => Ok(()),
        }
    }
}
