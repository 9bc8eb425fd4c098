//! The client side: URL normalisation, TCP or TLS, and the upgrade request.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use http::header::{HeaderValue, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL, USER_AGENT};
use http::{StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};

use super::carrier::{into_carrier, io_error};
use super::{websocket_config, CONTROL_PATH, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::{Carrier, CarrierInfo, Endpoint, Transport};

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
        let config = default_tls_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(WsTransport::new().tls_config().is_ok());
    }
}
