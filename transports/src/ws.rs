//! WebSocket carriers (RFC 6455) over TCP, or TLS for `wss://`.
//!
//! Client side: [`WsTransport`] dials the server's control endpoint and upgrades. Server side:
//! [`accept_upgrade`] answers an upgrade request inside a hyper 1.x service and gives a
//! [`PendingCarrier`] that becomes a [`Carrier`] once hyper has handed over the connection.
//!
//! Each carrier message is one binary WebSocket message, so message boundaries come for free.
//! Both sides refuse messages and frames larger than [`MAX_MESSAGE_BYTES`].
//!
//! Pings from the peer are answered by tungstenite while `recv` is being polled (it flushes the
//! queued pong before reading on), not by `send`: a carrier whose `recv` nobody polls leaves
//! pings unanswered. That is acceptable because the mux always has a `recv` pending and relies
//! on its own PING frames, not on WebSocket pings, to detect a dead carrier.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::header::{
    HeaderValue, AUTHORIZATION, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE, USER_AGENT,
};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{
    Carrier, CarrierInfo, CarrierRx, CarrierTx, CloseReason, Endpoint, Transport, MAX_MESSAGE_BYTES,
};

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

// ---------------------------------------------------------------------------------------------
// Client

/// Dials WebSocket carriers: `ws://`, `wss://`, `http://` (= `ws`), `https://` (= `wss`).
///
/// The server base URL gets [`CONTROL_PATH`] appended when its path is empty or `/`; any other
/// path (e.g. `/api/v1/tunnel/connect`) is used as given, and a query string is kept. The upgrade
/// offers exactly `endpoint.subprotocol` and sends `Authorization: Bearer` when
/// `endpoint.bearer` is set; a server that does not select the subprotocol is refused.
///
/// Errors from [`connect`](Transport::connect): an HTTP answer other than 101 becomes an error
/// whose message starts with `WebSocket upgrade refused: HTTP <code> <reason>` followed by the
/// start of the body, of kind [`io::ErrorKind::PermissionDenied`] for 401/403 and
/// [`io::ErrorKind::ConnectionRefused`] otherwise; a bad URL is
/// [`io::ErrorKind::InvalidInput`]; running out of time is [`io::ErrorKind::TimedOut`].
#[derive(Debug, Clone)]
pub struct WsTransport {
    /// `None`: the Mozilla roots from `webpki-roots`, built on first `wss` use.
    tls: Option<Arc<rustls::ClientConfig>>,
    handshake_timeout: Duration,
}

impl Default for WsTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl WsTransport {
    /// A transport that trusts the Mozilla root certificates (`webpki-roots`) for `wss`.
    pub fn new() -> Self {
        WsTransport {
            tls: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A transport that uses `config` for `wss` (own CA, pinned certificate, client
    /// certificates). Its ALPN list is used as is; leave it empty or put `http/1.1` in it,
    /// since the upgrade needs HTTP/1.1.
    pub fn with_tls_config(config: Arc<rustls::ClientConfig>) -> Self {
        WsTransport {
            tls: Some(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Sets the time allowed for TCP connect, TLS and the upgrade together
    /// (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    fn tls_config(&self) -> io::Result<Arc<rustls::ClientConfig>> {
        if let Some(config) = &self.tls {
            return Ok(config.clone());
        }
        static DEFAULT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
        if let Some(config) = DEFAULT.get() {
            return Ok(config.clone());
        }
        let built = default_tls_config()?;
        Ok(DEFAULT.get_or_init(|| built).clone())
    }

    async fn dial(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        let target = Target::parse(&endpoint.url)?;
        let request = build_request(&target, endpoint)?;
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
        // Carrier messages are latency-sensitive mux frames; never let the kernel hold them back.
        tcp.set_nodelay(true)?;
        let peer = tcp.peer_addr().ok();
        if target.tls {
            let server_name = ServerName::try_from(target.host.clone()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{:?} is not a valid TLS server name", target.host),
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(self.tls_config()?)
                .connect(server_name, tcp)
                .await?;
            client_handshake(tls, request, endpoint, peer).await
        } else {
            client_handshake(tcp, request, endpoint, peer).await
        }
    }
}

#[async_trait]
impl Transport for WsTransport {
    fn name(&self) -> &'static str {
        "ws"
    }

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        match tokio::time::timeout(self.handshake_timeout, self.dial(endpoint)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "WebSocket connect to {} timed out after {:?}",
                    endpoint.url, self.handshake_timeout
                ),
            )),
        }
    }
}

fn default_tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // An explicit provider instead of the process-wide default: nothing else has to install
    // one, and a second provider compiled in by another crate cannot make this ambiguous.
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // A TLS-terminating proxy that speaks HTTP/2 must not pick it: the upgrade is HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where a carrier URL points, once normalised.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    /// Host for DNS and TLS, without IPv6 brackets.
    host: String,
    port: u16,
    /// `ws://` or `wss://` URL of the upgrade request, with the path filled in.
    request_uri: String,
}

impl Target {
    fn parse(url: &str) -> io::Result<Target> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad server URL {url:?}: {why}"),
            )
        };
        let uri: Uri = url.trim().parse().map_err(|e| bad(&format!("{e}")))?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| bad("no scheme"))?
            .to_ascii_lowercase();
        let (ws_scheme, tls, default_port) = match scheme.as_str() {
            "ws" | "http" => ("ws", false, 80),
            "wss" | "https" => ("wss", true, 443),
            _ => return Err(bad("scheme must be ws, wss, http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL are not supported; use a bearer token",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority.port_u16().unwrap_or(default_port);
        let path = match uri.path() {
            "" | "/" => CONTROL_PATH,
            path => path,
        };
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            request_uri: format!("{ws_scheme}://{}{path}{query}", authority.as_str()),
        })
    }
}

fn build_request(
    target: &Target,
    endpoint: &Endpoint,
) -> io::Result<tokio_tungstenite::tungstenite::handshake::client::Request> {
    let invalid = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot send {what} in a header"),
        )
    };
    if endpoint.subprotocol.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no subprotocol to offer",
        ));
    }
    let mut request = target
        .request_uri
        .as_str()
        .into_client_request()
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad upgrade request: {e}"),
            )
        })?;
    let headers = request.headers_mut();
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&endpoint.subprotocol).map_err(|_| invalid("the subprotocol"))?,
    );
    if let Some(token) = &endpoint.bearer {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| invalid("the token"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("underpass/", env!("CARGO_PKG_VERSION"))),
    );
    Ok(request)
}

async fn client_handshake<S>(
    stream: S,
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    endpoint: &Endpoint,
    peer: Option<SocketAddr>,
) -> io::Result<Carrier>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(websocket_config()))
            .await
            .map_err(handshake_error)?;
    // tungstenite already checks this; checking again keeps the guarantee if it ever relaxes.
    let selected = response
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    if selected != Some(endpoint.subprotocol.as_str()) {
        return Err(no_subprotocol_error(&endpoint.subprotocol));
    }
    Ok(into_carrier(
        ws,
        CarrierInfo {
            transport: "ws",
            peer,
            subprotocol: Some(endpoint.subprotocol.clone()),
            bearer: None,
        },
    ))
}

fn no_subprotocol_error(offered: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("server did not select the WebSocket subprotocol {offered:?}"),
    )
}

/// Most of the body of a refused upgrade worth putting in an error message.
const MAX_BODY_IN_ERROR: usize = 200;

fn handshake_error(err: WsError) -> io::Error {
    match err {
        WsError::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(MAX_BODY_IN_ERROR)]).into_owned())
                .unwrap_or_default()
                // Keeps a hostile or chatty body from breaking log lines.
                .replace(|c: char| c.is_control(), " ");
            let body = body.trim();
            let kind = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => io::ErrorKind::PermissionDenied,
                _ => io::ErrorKind::ConnectionRefused,
            };
            let mut message = format!("WebSocket upgrade refused: HTTP {status}");
            if !body.is_empty() {
                message.push_str(": ");
                message.push_str(body);
            }
            io::Error::new(kind, message)
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(e)) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("server did not select the offered WebSocket subprotocol: {e}"),
        ),
        WsError::Protocol(e) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket upgrade failed: {e}"),
        ),
        other => io_error(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Server

/// Why [`accept_upgrade`] refused a request: an HTTP status and a short text for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    reason: &'static str,
}

impl Rejection {
    /// HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Short text for the body and the logs.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The answer to send: the status, `text/plain` body with the reason, and the headers RFC
    /// 6455 asks for (`Sec-WebSocket-Version: 13` with 426, `Allow: GET` with 405). Map the body
    /// with [`Response::map`] if the service uses another body type.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from_static(self.reason.as_bytes())));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.status == StatusCode::UPGRADE_REQUIRED {
            headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        } else if self.status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        }
        response
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebSocket upgrade rejected ({}): {}",
            self.status, self.reason
        )
    }
}

impl std::error::Error for Rejection {}

fn reject(status: StatusCode, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// A WebSocket upgrade that was answered with 101 but whose connection hyper has not handed over
/// yet. Await [`upgrade`](Self::upgrade) *after* the service returned the response (typically in
/// a spawned task): hyper only hands over the connection once the 101 is on its way.
#[derive(Debug)]
pub struct PendingCarrier {
    on_upgrade: hyper::upgrade::OnUpgrade,
    info: CarrierInfo,
}

impl PendingCarrier {
    /// What the carrier will report: transport `ws`, the peer given to [`accept_upgrade`], the
    /// chosen subprotocol, and the bearer token from the upgrade's `Authorization` header. Lets
    /// the server decide about the client before the connection is handed over.
    pub fn info(&self) -> &CarrierInfo {
        &self.info
    }

    /// Waits for hyper to hand over the connection and wraps it as a carrier. Fails if the
    /// client went away first or the server was not built with `with_upgrades()`.
    pub async fn upgrade(self) -> io::Result<Carrier> {
        let upgraded = self.on_upgrade.await.map_err(|e| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("WebSocket upgrade failed: {e}"),
            )
        })?;
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(websocket_config()),
        )
        .await;
        Ok(into_carrier(ws, self.info))
    }
}

/// Whether `req` asks for a WebSocket upgrade (`Upgrade: websocket`), for routing before
/// [`accept_upgrade`].
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    header_has_token(req, UPGRADE, "websocket")
}

/// Answers a WebSocket upgrade request inside a hyper 1.x service.
///
/// Checks the request (GET, HTTP/1.1, `Connection: upgrade`, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13`, a well-formed `Sec-WebSocket-Key`) and picks the first
/// subprotocol the client offers that is in `supported`. On success it returns the 101 response,
/// which the service must return as is, and a [`PendingCarrier`] to await afterwards. `peer` is
/// recorded in the [`CarrierInfo`] (the accepted socket's address, or the client address a
/// trusted proxy reported).
///
/// On failure the [`Rejection`] says which answer to give: 400 for a malformed request or no
/// supported subprotocol (body `unsupported WebSocket subprotocol`), 405 for another method, 426
/// for another WebSocket version.
///
/// The connection must be served with `hyper::server::conn::http1::Builder::serve_connection(..)
/// .with_upgrades()`, and the listener should set `TCP_NODELAY` on accepted sockets, since the
/// upgraded stream no longer exposes the socket.
pub fn accept_upgrade<B>(
    req: &mut Request<B>,
    supported: &[&str],
    peer: Option<SocketAddr>,
) -> Result<(Response<Full<Bytes>>, PendingCarrier), Rejection> {
    if req.method() != Method::GET {
        return Err(reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "WebSocket upgrade needs GET",
        ));
    }
    if req.version() != Version::HTTP_11 {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrade needs HTTP/1.1",
        ));
    }
    if !is_upgrade_request(req) || !header_has_token(req, CONNECTION, "upgrade") {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "not a WebSocket upgrade request",
        ));
    }
    if req
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err(reject(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version",
        ));
    }
    let key = match req.headers().get(SEC_WEBSOCKET_KEY) {
        Some(key) if is_valid_key(key.as_bytes()) => key.as_bytes(),
        _ => return Err(reject(StatusCode::BAD_REQUEST, "bad Sec-WebSocket-Key")),
    };
    let accept = derive_accept_key(key);
    let subprotocol = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|offered| supported.contains(offered))
        .map(str::to_owned)
        .ok_or_else(|| reject(StatusCode::BAD_REQUEST, "unsupported WebSocket subprotocol"))?;
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()));

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    // Exactly "Upgrade": some clients (tungstenite among them) compare the whole value.
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| reject(StatusCode::BAD_REQUEST, "bad key"))?,
    );
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&subprotocol)
            .map_err(|_| reject(StatusCode::BAD_REQUEST, "unsupported WebSocket subprotocol"))?,
    );

    let pending = PendingCarrier {
        on_upgrade: hyper::upgrade::on(req),
        info: CarrierInfo {
            transport: "ws",
            peer,
            subprotocol: Some(subprotocol),
            bearer,
        },
    };
    Ok((response, pending))
}

/// Whether a comma-separated header (any of its occurrences) contains `token`, ignoring case.
fn header_has_token<B>(req: &Request<B>, name: http::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A key is the base64 encoding of 16 bytes: 22 significant characters and `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Carrier halves

fn into_carrier<S>(ws: WebSocketStream<S>, info: CarrierInfo) -> Carrier
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    Carrier {
        tx: Box::new(WsTx { sink }),
        rx: Box::new(WsRx {
            stream,
            state: RxState::Open,
        }),
        info,
    }
}

struct WsTx<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
}

#[async_trait]
impl<S> CarrierTx for WsTx<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn send(&mut self, message: Bytes) -> io::Result<()> {
        // SinkExt::send flushes, so the message is on the socket when this returns.
        self.sink
            .send(Message::Binary(message))
            .await
            .map_err(io_error)
    }

    async fn close(&mut self) -> io::Result<()> {
        // Sends the close frame and flushes; does not wait for the peer's answering close,
        // which the receiving half sees.
        match self.sink.close().await {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }
}

struct WsRx<S> {
    stream: SplitStream<WebSocketStream<S>>,
    state: RxState,
}

/// Where a receiving half stands once it stopped yielding messages. tokio-tungstenite ends its
/// stream after an error too, which must not turn into a clean `Ok(None)` on the next call.
#[derive(Clone, Copy)]
enum RxState {
    Open,
    /// The peer closed cleanly; every later `recv` returns `Ok(None)`.
    Closed,
    /// `recv` returned an error of this kind; every later `recv` fails the same way.
    Failed(io::ErrorKind),
}

impl<S> WsRx<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn next_message(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Binary(message))) => return Ok(Some(message)),
                // Pongs to pings were queued by tungstenite and go out with the next read.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message on a binary carrier",
                    ))
                }
                Some(Ok(Message::Close(Some(frame))))
                    if !matches!(frame.code, CloseCode::Normal | CloseCode::Away) =>
                {
                    return Err(CloseReason {
                        code: frame.code.into(),
                        reason: frame.reason.as_str().to_owned(),
                    }
                    .into_io_error())
                }
                // tokio-tungstenite ends the stream only after a completed close handshake.
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Err(e)) => return Err(io_error(e)),
            }
        }
    }
}

#[async_trait]
impl<S> CarrierRx for WsRx<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        match self.state {
            RxState::Open => {}
            RxState::Closed => return Ok(None),
            RxState::Failed(kind) => {
                return Err(io::Error::new(kind, "WebSocket carrier failed earlier"))
            }
        }
        // Cancel safe: `next` keeps partial frames inside the WebSocketStream, and a message is
        // only taken out of it in the poll that returns it; the state changes only after that.
        let result = self.next_message().await;
        match &result {
            Ok(Some(_)) => {}
            Ok(None) => self.state = RxState::Closed,
            Err(e) => self.state = RxState::Failed(e.kind()),
        }
        result
    }
}

/// Turns a tungstenite error on an open carrier into the `io::Error` the mux sees.
fn io_error(err: WsError) -> io::Error {
    match err {
        WsError::Io(e) => e,
        WsError::Capacity(e) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket message over the {MAX_MESSAGE_BYTES}-byte limit: {e}"),
        ),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => io::Error::new(
            io::ErrorKind::ConnectionReset,
            "peer dropped the WebSocket connection without closing it",
        ),
        WsError::Protocol(ProtocolError::SendAfterClosing)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket carrier is closed")
        }
        WsError::Protocol(e) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket protocol error: {e}"),
        ),
        WsError::Utf8(e) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket UTF-8 error: {e}"),
        ),
        WsError::AttackAttempt => io::Error::new(
            io::ErrorKind::InvalidData,
            "WebSocket attack attempt detected",
        ),
        other => io::Error::other(format!("WebSocket error: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn url_schemes_and_paths() {
        let t = target("wss://proxy.example.com");
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("proxy.example.com", 443));
        assert_eq!(
            t.request_uri,
            "wss://proxy.example.com/__underpass__/control"
        );

        let t = target("http://127.0.0.1:8080/");
        assert!(!t.tls);
        assert_eq!(t.port, 8080);
        assert_eq!(t.request_uri, "ws://127.0.0.1:8080/__underpass__/control");

        let t = target("HTTPS://h:9/api/v1/tunnel/connect?x=1");
        assert!(t.tls);
        assert_eq!(t.request_uri, "wss://h:9/api/v1/tunnel/connect?x=1");

        let t = target("ws://h/?x=1");
        assert_eq!(
            (t.port, t.request_uri.as_str()),
            (80, "ws://h/__underpass__/control?x=1")
        );

        let t = target("ws://[::1]:7000");
        assert_eq!((t.host.as_str(), t.port), ("::1", 7000));
        assert_eq!(t.request_uri, "ws://[::1]:7000/__underpass__/control");
    }

    #[test]
    fn bad_urls_are_invalid_input() {
        for url in ["ftp://h", "h:80", "/path", "ws://user:pw@h", "", "ws://"] {
            let err = Target::parse(url).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{url}");
        }
    }

    fn upgrade_request() -> http::request::Builder {
        Request::builder()
            .method("GET")
            .uri("/__underpass__/control")
            .header("Host", "h")
            .header("Connection", "keep-alive, Upgrade")
            .header("Upgrade", "WebSocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    const SUPPORTED: &[&str] = &["hoody-tunnel.v1", "hoody-tunnel.v2"];

    #[test]
    fn accepts_and_picks_first_offered_supported_subprotocol() {
        let mut req = upgrade_request()
            .header("Sec-WebSocket-Protocol", "bogus, hoody-tunnel.v2")
            .header("Sec-WebSocket-Protocol", "hoody-tunnel.v1")
            .header("Authorization", "bearer  tok3n ")
            .body(())
            .unwrap();
        let peer: SocketAddr = "192.0.2.1:5555".parse().unwrap();
        let (response, pending) = accept_upgrade(&mut req, SUPPORTED, Some(peer)).unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let h = response.headers();
        // RFC 6455 section 1.3 example.
        assert_eq!(h[SEC_WEBSOCKET_ACCEPT], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(h[SEC_WEBSOCKET_PROTOCOL], "hoody-tunnel.v2");
        assert_eq!(h[UPGRADE], "websocket");
        assert_eq!(h[CONNECTION], "Upgrade");
        let info = pending.info();
        assert_eq!(info.transport, "ws");
        assert_eq!(info.peer, Some(peer));
        assert_eq!(info.subprotocol.as_deref(), Some("hoody-tunnel.v2"));
        assert_eq!(info.bearer.as_deref(), Some("tok3n"));
    }

    #[test]
    fn rejections() {
        let status = |req: &mut Request<()>| accept_upgrade(req, SUPPORTED, None).unwrap_err();

        let mut req = upgrade_request().body(()).unwrap();
        let r = status(&mut req);
        assert_eq!(
            (r.status(), r.reason()),
            (StatusCode::BAD_REQUEST, "unsupported WebSocket subprotocol")
        );

        let mut req = upgrade_request()
            .header("Sec-WebSocket-Protocol", "x")
            .body(())
            .unwrap();
        assert_eq!(status(&mut req).status(), StatusCode::BAD_REQUEST);

        let mut req = upgrade_request()
            .method("POST")
            .header("Sec-WebSocket-Protocol", "hoody-tunnel.v1")
            .body(())
            .unwrap();
        let r = status(&mut req);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.into_response().headers()[http::header::ALLOW], "GET");

        let mut req = upgrade_request()
            .header("Sec-WebSocket-Protocol", "hoody-tunnel.v1")
            .body(())
            .unwrap();
        req.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        let r = status(&mut req);
        assert_eq!(r.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(r.into_response().headers()[SEC_WEBSOCKET_VERSION], "13");

        let mut req = upgrade_request()
            .header("Sec-WebSocket-Protocol", "hoody-tunnel.v1")
            .body(())
            .unwrap();
        req.headers_mut()
            .insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("short"));
        assert_eq!(status(&mut req).reason(), "bad Sec-WebSocket-Key");

        let mut req = upgrade_request()
            .header("Sec-WebSocket-Protocol", "hoody-tunnel.v1")
            .body(())
            .unwrap();
        req.headers_mut().remove(UPGRADE);
        assert!(!is_upgrade_request(&req));
        assert_eq!(status(&mut req).reason(), "not a WebSocket upgrade request");

        let mut req = upgrade_request()
            .header("Sec-WebSocket-Protocol", "hoody-tunnel.v1")
            .body(())
            .unwrap();
        req.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(status(&mut req).status(), StatusCode::BAD_REQUEST);

        let mut req = upgrade_request()
            .version(Version::HTTP_10)
            .header("Sec-WebSocket-Protocol", "hoody-tunnel.v1")
            .body(())
            .unwrap();
        assert_eq!(status(&mut req).status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn rejection_response_has_text_body() {
        let r = reject(StatusCode::BAD_REQUEST, "unsupported WebSocket subprotocol");
        let response = r.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers()[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc").as_deref(), Some("abc"));
        assert_eq!(bearer_token(b"BEARER abc").as_deref(), Some("abc"));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"\xffBearer x"), None);
    }

    #[test]
    fn key_validation() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZ!=="));
        assert!(!is_valid_key(b""));
    }

    #[test]
    fn config_limits_are_exact() {
        let c = websocket_config();
        assert_eq!(c.max_message_size, Some(MAX_MESSAGE_BYTES));
        assert_eq!(c.max_frame_size, Some(MAX_MESSAGE_BYTES));
    }

    #[test]
    fn default_tls_config_builds() {
        let config = default_tls_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(WsTransport::new().tls_config().is_ok());
    }
}
