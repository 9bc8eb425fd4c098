//! Server settings: where it listens, who may connect, and every limit of DESIGN.md section 4.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::edge::trusted_proxy::TrustedProxies;
use crate::proto::{DEFAULT_SESSION_WINDOW, DEFAULT_STREAM_WINDOW};

/// Limits a server enforces; each one that is hit answers with a clear error code.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sessions at once.
    pub max_sessions: usize,
    /// Bindings per session.
    pub max_bindings_per_session: usize,
    /// Streams per session.
    pub max_streams_per_session: usize,
    /// Carriers per session (v2 `connectionsGranted` is clamped to this).
    pub max_connections_per_session: u32,
    /// Time a new carrier has to send HELLO or JOIN.
    pub hello_timeout: Duration,
    /// Initial per-stream credit granted in HELLO_OK.
    pub stream_window: u32,
    /// Initial per-session credit granted in HELLO_OK.
    pub session_window: u32,
    /// Ping a carrier after this long without receiving.
    pub ping_after: Duration,
    /// Close a carrier whose pong is this late.
    pub pong_timeout: Duration,
    /// How long a join ticket stays valid.
    pub join_ticket_ttl: Duration,
    /// How long a session whose carrier dropped is kept for the client to resume (0: never).
    pub resume_grace: Duration,
    /// How long a visitor waits for the response head before 504.
    pub response_timeout: Duration,
    /// How long an HTTP connection may take to send a whole request head, counted from the
    /// first byte or, on a kept-alive connection, from the end of the previous answer. Slow
    /// (slowloris) and idle connections are closed after it, so they cannot pin descriptors.
    pub header_timeout: Duration,
    /// A stream that moves nothing either way this long is reset with IDLE_TIMEOUT (0: never).
    pub idle_stream_timeout: Duration,
    /// New public requests and TCP connections one visitor address may start per second (and
    /// in one burst); `None`: no limit.
    pub visitor_rate: Option<std::num::NonZeroU32>,
    /// Accepted connections at once (the file-descriptor budget); `None`: the open-file limit
    /// minus a reserve.
    pub fd_budget: Option<usize>,
    /// Connections one visitor address may hold at once on the public listeners (trusted
    /// proxies exempt); 0: no cap.
    pub max_connections_per_ip: usize,
    /// Wrong Basic Auth credentials one visitor address may send per minute (all at once, too)
    /// before it gets 429 and its credentials go unchecked for a while; 0: no throttling.
    pub basic_auth_failures_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 256,
            max_bindings_per_session: 8,
            max_streams_per_session: crate::mux::DEFAULT_MAX_STREAMS,
            max_connections_per_session: 8,
            hello_timeout: Duration::from_secs(5),
            stream_window: DEFAULT_STREAM_WINDOW,
            session_window: DEFAULT_SESSION_WINDOW,
            ping_after: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(60),
            join_ticket_ttl: Duration::from_secs(30),
            resume_grace: Duration::from_secs(60),
            response_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
            idle_stream_timeout: Duration::from_secs(300),
            visitor_rate: None,
            fd_budget: None,
            max_connections_per_ip: 256,
            basic_auth_failures_per_minute: 10,
        }
    }
}

/// Everything a server needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    /// Main listener: public HTTP, control endpoint, health.
    pub listen: SocketAddr,
    /// Root domain for host routing (`D` = root route, `X.D` = route `X`).
    pub domain: Option<String>,
    /// Shared client token: the client `default`, with every right. `None` only with a
    /// clients file.
    pub token: Option<String>,
    /// The clients file (`--clients`): named clients with their own tokens and scopes.
    pub clients_file: Option<PathBuf>,
    /// Bearer token of the admin API and metrics; `None` turns them off (404).
    pub admin_token: Option<String>,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// Port range for dedicated public ports picked by the server.
    pub expose_ports: RangeInclusive<u16>,
    /// Server loopback ports clients may `forward` to (empty: none).
    pub allow_forward: Vec<RangeInclusive<u16>>,
    /// Allow public ports 80-1023.
    pub allow_privileged_ports: bool,
    /// Template of a dedicated port's public URL (`{host}`, `{port}`).
    pub public_url_template: String,
    /// Limits.
    pub limits: Limits,
    /// Optional hoody-compatible control listener (`/api/v1/tunnel/connect` and the admin API
    /// at `/api/v1/tunnel/...`), for deployments built for that protocol.
    pub control_listen: Option<SocketAddr>,
    /// QUIC listener, when enabled.
    #[cfg(feature = "quic")]
    pub quic: Option<QuicListen>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::redact::Redacted;
        let mut d = f.debug_struct("ServerConfig");
        d.field("listen", &self.listen)
            .field("domain", &self.domain)
            .field("token", &Redacted::of(&self.token))
            .field("clients_file", &self.clients_file)
            .field("admin_token", &Redacted::of(&self.admin_token))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("expose_ports", &self.expose_ports)
            .field("allow_forward", &self.allow_forward)
            .field("allow_privileged_ports", &self.allow_privileged_ports)
            .field("public_url_template", &self.public_url_template)
            .field("limits", &self.limits)
            .field("control_listen", &self.control_listen);
        #[cfg(feature = "quic")]
        d.field("quic", &self.quic);
        d.finish()
    }
}

/// Where the QUIC listener binds and the certificate it presents.
#[cfg(feature = "quic")]
#[derive(Debug, Clone)]
pub struct QuicListen {
    /// UDP address.
    pub addr: SocketAddr,
    /// Certificate and key (given, or self-signed and pinned by clients).
    pub cert: underpass_transports::quic::QuicServerCert,
}

impl ServerConfig {
    /// A loopback server on an ephemeral port with `token` and default limits (tests, demo).
    pub fn local(token: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            domain: None,
            token: Some(token.into()),
            clients_file: None,
            admin_token: None,
            trusted_proxies: TrustedProxies::none(),
            expose_ports: 20000..=65534,
            allow_forward: Vec::new(),
            allow_privileged_ports: false,
            public_url_template: "http://{host}:{port}".into(),
            limits: Limits::default(),
            control_listen: None,
            #[cfg(feature = "quic")]
            quic: None,
        }
    }
}
