//! The small app `underpass demo` exposes: an HTML page, `/events` (SSE) and `/ws` (WebSocket
//! echo). A real local HTTP server, so the demo goes through the same path as a user's app.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::http::body::{full, ProxyBody};

const PAGE: &str = include_str!("demo_page.html");

/// Starts the app on `127.0.0.1:0` and returns its address.
pub async fn start() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req| async move { Ok::<_, Infallible>(route(req)) });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(addr)
}

fn route(req: Request<Incoming>) -> Response<ProxyBody> {
    match req.uri().path() {
        "/" => with_type(Response::new(full(PAGE)), "text/html; charset=utf-8"),
        "/events" => events(),
        "/ws" => websocket(req),
        _ => {
            let mut r = Response::new(full("not found\n"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

fn with_type(mut resp: Response<ProxyBody>, ty: &'static str) -> Response<ProxyBody> {
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    resp
}

/// Ten events, one per second: each is flushed as it is produced.
fn events() -> Response<ProxyBody> {
    let stream = futures_util::stream::unfold(0u32, |n| async move {
        if n >= 10 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let event = format!("id: {n}\ndata: tick {n}\n\n");
        Some((
            Ok::<_, std::io::Error>(Frame::data(Bytes::from(event))),
            n + 1,
        ))
    });
    let mut resp = with_type(
        Response::new(http_body_util::BodyExt::boxed(StreamBody::new(stream))),
        "text/event-stream",
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn websocket(mut req: Request<Incoming>) -> Response<ProxyBody> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        let mut r = Response::new(full("expected a WebSocket upgrade\n"));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                if ws.send(msg).await.is_err() {
                    return;
                }
            } else if msg.is_close() {
                return;
            }
        }
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}
