//! The visitor side: HTTP/1.1 requests to a listener, each on a fresh hyper connection with the
//! Host header the test names, the bodies they carry, and WebSocket handshakes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, handshake::client::Response as WsResponse};
use tokio_tungstenite::WebSocketStream;

use super::within;

/// The body type of the test apps' responses and of the visitors' requests.
pub type AppBody = BoxBody<Bytes, Infallible>;

pub fn full_body(bytes: impl Into<Bytes>) -> AppBody {
    Full::new(bytes.into()).boxed()
}

pub fn empty_body() -> AppBody {
    Empty::new().boxed()
}

/// A body fed chunk by chunk from a channel: each chunk is sent as soon as it is queued, and
/// the body ends when every sender is gone.
pub struct ChanBody(pub mpsc::Receiver<Bytes>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// A whole response: status, headers and the collected body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {}", self.status, self.text()))
    }
}

/// A request for `target` with a Host header and the extra `headers`.
pub fn build(
    method: Method,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: AppBody,
) -> Request<AppBody> {
    let mut b = Request::builder()
        .method(method)
        .uri(target)
        .header(header::HOST, host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).unwrap()
}

/// Sends one request on a fresh connection and returns the response head with a live body.
pub async fn open(addr: SocketAddr, req: Request<AppBody>) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("http handshake");
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    within(10, sender.send_request(req))
        .await
        .expect("request sent")
}

/// Sends one request on a fresh connection and collects the whole response.
pub async fn send(addr: SocketAddr, req: Request<AppBody>) -> Reply {
    let (parts, body) = open(addr, req).await.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// One request to `addr` for `host`: method, target, extra headers and a whole body.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    send(addr, build(method, host, target, headers, full_body(body))).await
}

pub async fn get(addr: SocketAddr, host: &str, target: &str) -> Reply {
    get_with(addr, host, target, &[]).await
}

/// A GET with extra headers.
pub async fn get_with(
    addr: SocketAddr,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Reply {
    request(addr, Method::GET, host, target, headers, Bytes::new()).await
}

/// A GET whose response body is left streaming, for reading it frame by frame.
pub async fn get_live(addr: SocketAddr, host: &str, target: &str) -> Response<Incoming> {
    open(addr, build(Method::GET, host, target, &[], empty_body())).await
}

/// The next frame of a streaming body, which must be data.
pub async fn next_chunk(body: &mut Incoming) -> Bytes {
    within(10, body.frame())
        .await
        .expect("body still open")
        .expect("body frame")
        .into_data()
        .expect("a data frame")
}

/// A WebSocket handshake for `ws://ADDR/PATH` with a Host header, on a fresh connection.
pub async fn ws_handshake(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(WebSocketStream<TcpStream>, WsResponse), tungstenite::Error> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut()
        .insert(header::HOST, HeaderValue::from_str(host).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    within(10, tokio_tungstenite::client_async(req, tcp)).await
}
