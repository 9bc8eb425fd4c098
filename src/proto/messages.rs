//! Typed JSON payloads of the control frames, with the exact camelCase field names of PROTOCOL.md.
//! Fields marked *(underpass)* are our extensions; other clients ignore them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{BindErrorCode, ErrorCode};

/// A client-chosen reference echoed in BIND_OK/BIND_ERR. Other clients send strings or numbers, so it
/// is kept as raw JSON and echoed unchanged.
pub type ClientBindRef = serde_json::Value;

/// Server-assigned binding id.
pub type BindId = u32;

/// HELLO: the first frame of the first carrier (client -> server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// `hoody-tunnel.v1` or `hoody-tunnel.v2`.
    pub version: String,
    /// `[]` or `["multi-ws"]`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Token, when not given as `Authorization: Bearer` on the upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HelloAuth>,
    /// Resume a parked session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<HelloResume>,
    /// Carriers wanted (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

/// Credentials inside HELLO.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloAuth {
    /// Always `bearer`.
    pub kind: String,
    /// The shared token.
    pub token: String,
}

impl std::fmt::Debug for HelloAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelloAuth")
            .field("kind", &self.kind)
            .field("token", &crate::redact::REDACTED)
            .finish()
    }
}

/// Resume request inside HELLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloResume {
    /// The session to resume.
    pub session_id: String,
}

/// HELLO_OK: the server accepted the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloOk {
    /// Session id, used by JOIN and resume.
    pub session_id: String,
    /// True when HELLO resumed a parked session.
    #[serde(default)]
    pub resumed: bool,
    /// Bindings carried over by a resume.
    #[serde(default)]
    pub resumed_binds: Vec<ResumedBind>,
    /// Carriers granted (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_granted: Option<u32>,
    /// Tickets for carriers 1..M-1 (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_tickets: Option<Vec<JoinTicket>>,
    /// Initial credit per stream and direction.
    pub stream_window: u32,
    /// Initial credit per session and direction.
    pub session_window: u32,
    /// *(underpass)* Server version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// *(underpass)* The server's `--domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// *(underpass)* Most streams the server keeps open in this session
    /// (`--max-streams-per-session`). A client takes it as its own limit, so raising the flag on
    /// the server is enough; without it (another server) the client keeps the default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams: Option<u32>,
}

/// One binding restored by a resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumedBind {
    /// Binding id (unchanged).
    pub bind_id: BindId,
    /// `http` or `tcp`.
    pub kind: BindKind,
    /// `expose`, `pull` or `forward`.
    pub mode: BindMode,
    /// The server port.
    pub container_port: u16,
}

/// Permission to attach one extra v2 carrier.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinTicket {
    /// Carrier index, 1..M-1.
    pub index: u32,
    /// Random single-use nonce.
    pub nonce: String,
    /// Milliseconds the ticket stays valid.
    pub expires_ms: u64,
}

impl std::fmt::Debug for JoinTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinTicket")
            .field("index", &self.index)
            .field("nonce", &crate::redact::REDACTED)
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

/// JOIN: first frame of an extra v2 carrier.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Join {
    /// Session to join.
    pub session_id: String,
    /// Carrier index from the ticket.
    pub index: u32,
    /// The ticket's nonce.
    pub nonce: String,
}

impl std::fmt::Debug for Join {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Join")
            .field("session_id", &self.session_id)
            .field("index", &self.index)
            .field("nonce", &crate::redact::REDACTED)
            .finish()
    }
}

/// JOIN_OK: the carrier is attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinOk {
    /// Session joined.
    #[serde(default)]
    pub session_id: String,
    /// Carrier index.
    pub index: u32,
}

/// JOIN_ERR / UNBIND_ERR / GOAWAY style `{code, message}` with a string code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinErr {
    /// Machine-readable reason, e.g. `INVALID_TICKET`.
    pub code: String,
    /// Human-readable reason.
    pub message: String,
}

/// `http` or `tcp`. Values this build does not know decode as `Unknown` so the server can answer
/// `INVALID_KIND` instead of dropping the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindKind {
    /// HTTP, SSE and WebSocket, proxied per request.
    Http,
    /// Raw TCP.
    Tcp,
    /// Anything else.
    #[serde(other)]
    Unknown,
}

/// Direction of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// Public side on the server, service on the client.
    Expose,
    /// Server loopback listener, service on the client.
    Pull,
    /// *(underpass)* Client loopback listener, service on the server loopback.
    Forward,
    /// Anything else.
    #[serde(other)]
    Unknown,
}

/// How a host route is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    /// One holder; a second is refused unless it takes over.
    #[default]
    Single,
    /// Every holder shares the route, round robin.
    Cluster,
}

/// *(underpass)* Host route requested by an `http` expose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// `demo`, `@` (root) or null (server assigns `up-xxxxxxxxxx`).
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Sharing mode.
    #[serde(default)]
    pub mode: RouteMode,
}

/// *(underpass)* Basic Auth protecting a binding.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct BasicAuth {
    /// Required username; absent = any username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Required password.
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords never reach logs.
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// BIND: ask the server for a binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bind {
    /// Echoed in the answer.
    pub client_bind_ref: ClientBindRef,
    /// `http` or `tcp`.
    pub kind: BindKind,
    /// `expose`, `pull` or `forward`.
    pub mode: BindMode,
    /// Server port; 0 = pick one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    /// Free-form label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Claim the route/port from its holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover: Option<bool>,
    /// Listen address of a pull (`127.0.0.1` or `::1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// *(underpass)* Host route of an http expose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteSpec>,
    /// *(underpass)* Basic Auth of an http expose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// *(underpass)* Visitor addresses an expose admits: IPs, CIDR ranges, `loopback`,
    /// `private`; absent or empty = everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_allow: Option<Vec<String>>,
    /// *(underpass)* Visitor addresses an expose refuses (same forms), even inside `cidrAllow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_deny: Option<Vec<String>>,
}

/// BIND_OK: the binding exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindOk {
    /// Echo of the request's reference.
    pub client_bind_ref: ClientBindRef,
    /// Binding id.
    pub bind_id: BindId,
    /// Port on the server (0 for a route-only http expose).
    pub container_port: u16,
    /// Public URL, or null.
    pub public_url: Option<String>,
    /// *(underpass)* Route name (`@` for root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
}

/// BIND_ERR: the binding was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindErr {
    /// Echo of the request's reference.
    pub client_bind_ref: ClientBindRef,
    /// Why.
    pub code: BindErrorCode,
    /// Human-readable reason.
    pub message: String,
}

/// UNBIND / UNBIND_OK payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindRef {
    /// Binding id.
    pub bind_id: BindId,
}

/// UNBIND_ERR payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnbindErr {
    /// Binding id.
    pub bind_id: BindId,
    /// Why, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// STREAM_OPEN: a new proxied connection or HTTP request.
///
/// On the wire an `http` open always carries `headers` and `isUpgrade` (PROTOCOL.md lists them,
/// and a strict peer may require them even when empty or false); a `tcp` open is just
/// `{bindId, kind}`. See the `Serialize` impl below.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamOpen {
    /// Binding the stream belongs to.
    pub bind_id: BindId,
    /// `http` or `tcp`.
    pub kind: BindKind,
    /// HTTP method.
    #[serde(default)]
    pub method: Option<String>,
    /// HTTP request target (path and query).
    #[serde(default)]
    pub target: Option<String>,
    /// HTTP request headers, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// True for a protocol upgrade (WebSocket).
    #[serde(default)]
    pub is_upgrade: bool,
    /// *(underpass)* For a TCP connection the server accepted: the connecting peer's address
    /// (`ip:port`), so the client can hand it to its service (PROXY protocol). Kept as text and
    /// parsed where used, so a malformed value costs the header, not the session.
    #[serde(default)]
    pub visitor_addr: Option<String>,
    /// *(underpass)* The server address that peer connected to (`ip:port`).
    #[serde(default)]
    pub server_addr: Option<String>,
}

impl Serialize for StreamOpen {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("StreamOpen", 8)?;
        out.serialize_field("bindId", &self.bind_id)?;
        out.serialize_field("kind", &self.kind)?;
        if let Some(method) = &self.method {
            out.serialize_field("method", method)?;
        }
        if let Some(target) = &self.target {
            out.serialize_field("target", target)?;
        }
        // The HTTP fields are written even when empty/false for http opens only: a derive with
        // `skip_serializing_if` would drop `isUpgrade: false`, which PROTOCOL.md peers expect.
        if self.kind == BindKind::Http || !self.headers.is_empty() {
            out.serialize_field("headers", &self.headers)?;
        }
        if self.kind == BindKind::Http || self.is_upgrade {
            out.serialize_field("isUpgrade", &self.is_upgrade)?;
        }
        if let Some(addr) = &self.visitor_addr {
            out.serialize_field("visitorAddr", addr)?;
        }
        if let Some(addr) = &self.server_addr {
            out.serialize_field("serverAddr", addr)?;
        }
        out.end()
    }
}

impl StreamOpen {
    /// A raw TCP stream open for `bind_id`.
    pub fn tcp(bind_id: BindId) -> Self {
        Self {
            bind_id,
            kind: BindKind::Tcp,
            method: None,
            target: None,
            headers: Vec::new(),
            is_upgrade: false,
            visitor_addr: None,
            server_addr: None,
        }
    }

    /// Names the connection the stream carries: who connected (`visitor`) to which server
    /// address (`server`, when known).
    pub fn from_connection(mut self, visitor: SocketAddr, server: Option<SocketAddr>) -> Self {
        self.visitor_addr = Some(visitor.to_string());
        self.server_addr = server.map(|s| s.to_string());
        self
    }

    /// The first value of request header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }
}

/// The first value of header `name` (any case) in `(name, value)` pairs, as heads carry them.
pub fn first_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// STREAM_RESPONSE_HEAD: the client's answer to an HTTP STREAM_OPEN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseHead {
    /// HTTP status.
    pub status: u16,
    /// Response headers, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// False for an interim 1xx head.
    #[serde(rename = "final", default = "default_true")]
    pub is_final: bool,
}

fn default_true() -> bool {
    true
}

/// GOAWAY: the session is ending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoAway {
    /// RESET/GOAWAY code.
    pub code: ErrorCode,
    /// Human-readable reason.
    #[serde(default)]
    pub message: String,
}

/// BIND_REVOKED: a binding was taken over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindRevoked {
    /// The binding that is gone.
    pub bind_id: BindId,
    /// Why.
    #[serde(default)]
    pub reason: String,
}
