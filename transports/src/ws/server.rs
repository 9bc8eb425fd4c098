//! The server side: checking an upgrade request and answering it inside a hyper service.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{
    HeaderValue, AUTHORIZATION, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::carrier::{into_carrier, Side};
use crate::{Carrier, CarrierInfo};

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
        // hyper keeps any bytes read past the request inside `upgraded` and returns them first.
        Ok(into_carrier(
            TokioIo::new(upgraded),
            Bytes::new(),
            Side::Server,
            self.info,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
