//! The client side: URL normalisation, TCP or TLS, and the upgrade request.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{
    HeaderValue, AUTHORIZATION, CONNECTION, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE, USER_AGENT,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{CertificateError, OtherError};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::carrier::{into_carrier, Side};
use super::proxy::{connect_via, EgressProxy};
use super::{CONTROL_PATH, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::tls::{client_config, CertificateRejected, RejectionSlot, ServerTrust};
use crate::{Carrier, CarrierInfo, Endpoint, Transport};

/// Dials WebSocket carriers: `ws://`, `wss://`, `http://` (= `ws`), `https://` (= `wss`).
///
/// The server base URL gets [`CONTROL_PATH`] appended when its path is empty or `/`; any other
/// path (e.g. `/api/v1/tunnel/connect`) is used as given, and a query string is kept. The upgrade
/// offers exactly `endpoint.subprotocol` and sends `Authorization: Bearer` when
/// `endpoint.bearer` is set; a server that does not select the subprotocol is refused.
///
/// Errors from [`connect`](Transport::connect): an HTTP answer other than 101 becomes an error
/// carrying an [`UpgradeRefused`] (message `WebSocket upgrade refused: HTTP <code> <reason>`
/// followed by the start of the body), of kind [`io::ErrorKind::PermissionDenied`] for 401/403
/// and [`io::ErrorKind::ConnectionRefused`] otherwise; a refused server certificate carries a
/// [`CertificateRejected`] (kind [`io::ErrorKind::InvalidData`]); an egress proxy that refuses
/// the tunnel carries a [`ProxyRefused`](super::ProxyRefused); a bad URL is
/// [`io::ErrorKind::InvalidInput`]; running out of time is [`io::ErrorKind::TimedOut`].
#[derive(Debug, Clone)]
pub struct WsTransport {
    /// `None`: [`ServerTrust::System`], built on first `wss` use and shared by every transport.
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: EgressProxy,
    handshake_timeout: Duration,
}

impl Default for WsTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl WsTransport {
    /// A transport that trusts the system's certificate store for `wss`
    /// ([`ServerTrust::System`]).
    pub fn new() -> Self {
        WsTransport {
            tls: None,
            proxy: EgressProxy::Direct,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// A transport that authenticates `wss` servers with `trust`, as the QUIC transport does.
    /// A refused certificate fails `connect` with a [`CertificateRejected`] inside the error.
    /// Fails if the CA file cannot be read.
    pub fn with_trust(trust: &ServerTrust) -> io::Result<Self> {
        Ok(Self::with_tls_config(Arc::new(ws_tls_config(trust)?)))
    }

    /// A transport that uses `config` for `wss` (client certificates, own verifier). Its ALPN
    /// list is used as is; leave it empty or put `http/1.1` in it, since the upgrade needs
    /// HTTP/1.1.
    pub fn with_tls_config(config: Arc<rustls::ClientConfig>) -> Self {
        WsTransport {
            tls: Some(config),
            proxy: EgressProxy::Direct,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Sends carriers through `proxy` (default [`EgressProxy::Direct`]).
    pub fn proxy(mut self, proxy: EgressProxy) -> Self {
        self.proxy = proxy;
        self
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
        let built = Arc::new(ws_tls_config(&ServerTrust::System)?);
        Ok(DEFAULT.get_or_init(|| built).clone())
    }

    async fn dial(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        let target = Target::parse(&endpoint.url)?;
        // Checked before dialing, so a bad header value is an error without a connection.
        build_request(&target, endpoint, &generate_key())?;
        match self.proxy.for_target(target.tls, &target.host)? {
            Some(proxy) => {
                tracing::debug!(%proxy, "dialing through the proxy");
                let (io, peer) = connect_via(&proxy, &target.host, target.port).await?;
                self.upgrade(io, peer, &target, endpoint).await
            }
            None => {
                let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
                // Carrier messages are latency-sensitive mux frames; never let the kernel hold
                // them back.
                tcp.set_nodelay(true)?;
                let peer = tcp.peer_addr().ok();
                self.upgrade(tcp, peer, &target, endpoint).await
            }
        }
    }

    /// TLS when the URL asks for it, then the WebSocket upgrade, over `io`.
    async fn upgrade<S>(
        &self,
        io: S,
        peer: Option<SocketAddr>,
        target: &Target,
        endpoint: &Endpoint,
    ) -> io::Result<Carrier>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if !target.tls {
            return client_handshake(io, target, endpoint, peer).await;
        }
        let server_name = ServerName::try_from(target.host.clone()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{:?} is not a valid TLS server name", target.host),
            )
        })?;
        let tls = tokio_rustls::TlsConnector::from(self.tls_config()?)
            .connect(server_name, io)
            .await
            .map_err(tls_error)?;
        client_handshake(tls, target, endpoint, peer).await
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

fn ws_tls_config(trust: &ServerTrust) -> io::Result<rustls::ClientConfig> {
    // A TLS-terminating proxy that speaks HTTP/2 must not pick it: the upgrade is HTTP/1.1 only.
    // Refusals travel inside the error (below), so the verifier's slot is not read.
    client_config(trust, b"http/1.1", false, RejectionSlot::default())
}

/// A failed TLS handshake; a refused certificate becomes the plain [`CertificateRejected`]
/// error instead of rustls' nested one.
fn tls_error(err: io::Error) -> io::Error {
    let rejected = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .and_then(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<CertificateRejected>().cloned()
            }
            _ => None,
        });
    match rejected {
        Some(rejected) => rejected.into_io_error(),
        None => err,
    }
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
    key: &str,
) -> io::Result<Request<Empty<Bytes>>> {
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
    let bad_uri = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad upgrade request URI {:?}", target.request_uri),
        )
    };
    let uri: Uri = target.request_uri.parse().map_err(|_| bad_uri())?;
    let host = uri.authority().ok_or_else(bad_uri)?.as_str();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(
            HOST,
            HeaderValue::from_str(host).map_err(|_| invalid("the host"))?,
        )
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header(SEC_WEBSOCKET_VERSION, "13")
        .header(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_str(key).map_err(|_| invalid("the key"))?,
        )
        .header(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&endpoint.subprotocol).map_err(|_| invalid("the subprotocol"))?,
        )
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("underpass/", env!("CARGO_PKG_VERSION"))),
        );
    if let Some(token) = &endpoint.bearer {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| invalid("the token"))?;
        value.set_sensitive(true);
        request = request.header(AUTHORIZATION, value);
    }
    request.body(Empty::new()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad upgrade request: {e}"),
        )
    })
}

/// Sends the upgrade request with hyper and, on `101`, takes the connection back (with any bytes
/// read past the response) for the carrier's own framing.
async fn client_handshake<S>(
    stream: S,
    target: &Target,
    endpoint: &Endpoint,
    peer: Option<SocketAddr>,
) -> io::Result<Carrier>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let key = generate_key();
    let request = build_request(target, endpoint, &key)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(hyper_error)?;
    // Drives the connection until it is upgraded (then it hands the socket over and ends) or
    // the request and its answer are dropped.
    tokio::spawn(connection.with_upgrades());
    let response = sender.send_request(request).await.map_err(hyper_error)?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(refused(response).await);
    }
    check_accept(&response, &key, endpoint)?;
    let upgraded = hyper::upgrade::on(response).await.map_err(hyper_error)?;
    let info = CarrierInfo {
        transport: "ws",
        peer,
        subprotocol: Some(endpoint.subprotocol.clone()),
        bearer: None,
    };
    // Always the type handed to hyper above; the fallback keeps hyper's wrapper if it is not.
    Ok(match upgraded.downcast::<TokioIo<S>>() {
        Ok(parts) => into_carrier(parts.io.into_inner(), parts.read_buf, Side::Client, info),
        Err(upgraded) => into_carrier(TokioIo::new(upgraded), Bytes::new(), Side::Client, info),
    })
}

/// What RFC 6455 section 4.1 asks a client to check in a `101` answer, and the subprotocol.
fn check_accept<B>(response: &Response<B>, key: &str, endpoint: &Endpoint) -> io::Result<()> {
    let headers = response.headers();
    let has_token = |name: http::header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let failed = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket upgrade failed: {why}"),
        )
    };
    if !has_token(UPGRADE, "websocket") {
        return Err(failed("no \"Upgrade: websocket\" in the answer"));
    }
    if !has_token(CONNECTION, "upgrade") {
        return Err(failed("no \"Connection: upgrade\" in the answer"));
    }
    let accept = derive_accept_key(key.as_bytes());
    if headers.get(SEC_WEBSOCKET_ACCEPT).map(HeaderValue::as_bytes) != Some(accept.as_bytes()) {
        return Err(failed("wrong Sec-WebSocket-Accept"));
    }
    if headers.contains_key(SEC_WEBSOCKET_EXTENSIONS) {
        return Err(failed("the server chose an extension that was not offered"));
    }
    let selected = headers
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    if selected != Some(endpoint.subprotocol.as_str()) {
        return Err(no_subprotocol_error(&endpoint.subprotocol));
    }
    Ok(())
}

fn no_subprotocol_error(offered: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("server did not select the WebSocket subprotocol {offered:?}"),
    )
}

/// Most of the body of a refused upgrade worth putting in an error message.
const MAX_BODY_IN_ERROR: usize = 200;

/// The server (or a reverse proxy in front of it) answered the upgrade with an HTTP status other
/// than 101. Transports return it inside the `io::Error` of [`WsTransport::connect`]; its
/// status tells a configuration problem (4xx: wrong path, forbidden) from a server that is down
/// behind its proxy (502, 503, 504).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRefused {
    /// The HTTP status code.
    pub status: u16,
    /// `WebSocket upgrade refused: HTTP <code> <reason>`, then the start of the body.
    pub message: String,
}

impl std::fmt::Display for UpgradeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UpgradeRefused {}

/// The error for an answer other than `101`, with the start of its body (read within the
/// handshake timeout, at most [`MAX_BODY_IN_ERROR`] bytes).
async fn refused(response: Response<Incoming>) -> io::Error {
    let status = response.status();
    let mut body = response.into_body();
    let mut start = Vec::new();
    while start.len() < MAX_BODY_IN_ERROR {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    start.extend_from_slice(data);
                }
            }
            _ => break,
        }
    }
    start.truncate(MAX_BODY_IN_ERROR);
    // Keeps a hostile or chatty body from breaking log lines.
    let body = String::from_utf8_lossy(&start).replace(|c: char| c.is_control(), " ");
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
    io::Error::new(
        kind,
        UpgradeRefused {
            status: status.as_u16(),
            message,
        },
    )
}

/// A failed upgrade exchange: I/O errors keep their kind, a broken answer is `InvalidData`.
fn hyper_error(err: hyper::Error) -> io::Error {
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io::Error::new(io.kind(), format!("WebSocket upgrade failed: {err}"));
        }
        source = cause.source();
    }
    let kind = if err.is_parse() {
        io::ErrorKind::InvalidData
    } else if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, format!("WebSocket upgrade failed: {err}"))
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

    #[test]
    fn default_tls_config_builds() {
        let config = ws_tls_config(&ServerTrust::System).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(WsTransport::new().tls_config().is_ok());
    }
}
