//! Local apps behind the tunnels: hyper apps on 127.0.0.1:0 (a JSON echo that describes what it
//! saw, a counting echo, SSE, WebSocket upgrades) and a plain tokio-tungstenite echo server.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::http::{empty_body, full_body, AppBody, ChanBody};

/// A local hyper app on 127.0.0.1:0 (upgrades enabled) answering every request with `f`;
/// returns its port.
pub async fn app<F, Fut, B>(f: F) -> u16
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let f = Arc::new(f);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let f = f.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(f(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

/// What the echo app saw: its label, method, target, every header and the body.
pub async fn describe(label: &str, req: Request<Incoming>) -> Value {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let values = headers
            .entry(name.as_str())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap();
        values.push(json!(String::from_utf8_lossy(value.as_bytes())));
    }
    json!({
        "app": label,
        "method": parts.method.as_str(),
        "target": parts.uri.path_and_query().map_or("/".to_string(), |p| p.to_string()),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    })
}

/// Every value the app saw for header `name`, from a [`describe`] answer.
pub fn seen(v: &Value, name: &str) -> Vec<String> {
    v["headers"][name]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The one value the app saw for header `name`, if any; panics if it saw several.
pub fn seen_one(v: &Value, name: &str) -> Option<String> {
    let all = seen(v, name);
    assert!(all.len() <= 1, "{name} seen {} times: {all:?}", all.len());
    all.into_iter().next()
}

pub fn json_response(v: Value) -> Response<AppBody> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(full_body(v.to_string()))
        .unwrap()
}

/// Answers every request with [`describe`] as JSON.
pub async fn echo_app(label: &'static str) -> u16 {
    app(move |req| async move { json_response(describe(label, req).await) }).await
}

/// Answers with [`describe`] and counts the requests it got.
pub async fn counting_app(label: &'static str) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let port = app(move |req| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { json_response(describe(label, req).await) }
    })
    .await;
    (port, hits)
}

pub const EVENT_ONE: &str = "event: one\ndata: 1\n\n";
pub const EVENT_TWO: &str = "event: two\ndata: 2\n\n";

/// SSE: event one at once, event two only after `release` is notified, then the end.
pub fn sse_response(release: Arc<Notify>) -> Response<AppBody> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let _ = tx.send(Bytes::from_static(EVENT_ONE.as_bytes())).await;
        release.notified().await;
        let _ = tx.send(Bytes::from_static(EVENT_TWO.as_bytes())).await;
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(ChanBody(rx).boxed())
        .unwrap()
}

/// A streamed body: `data: one` at once, `data: two` only after `go` is notified, then the end.
pub fn two_events(go: Arc<Notify>) -> AppBody {
    let stream = futures_util::stream::unfold(0, move |n| {
        let go = go.clone();
        async move {
            match n {
                0 => Some((Ok(Frame::data(Bytes::from_static(b"data: one\n\n"))), 1)),
                1 => {
                    go.notified().await;
                    Some((Ok(Frame::data(Bytes::from_static(b"data: two\n\n"))), 2))
                }
                _ => None,
            }
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// Echoes text and binary messages until the peer closes.
pub async fn echo_ws<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) {
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_text() || msg.is_binary() {
            if ws.send(msg).await.is_err() {
                return;
            }
        } else if msg.is_close() {
            return;
        }
    }
}

/// Accepts a WebSocket upgrade inside a hyper app and echoes on it.
pub fn ws_upgrade_response(mut req: Request<Incoming>) -> Response<AppBody> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(full_body("no key"))
            .unwrap();
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            echo_ws(ws).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(empty_body())
        .unwrap()
}

/// One app for everything: `/sse` streams events, a WebSocket upgrade echoes, anything else is
/// described. Returns its port and the notifier that releases SSE event two.
pub async fn full_app(label: &'static str) -> (u16, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let r = release.clone();
    let port = app(move |req| {
        let release = r.clone();
        async move {
            if req.headers().contains_key(header::UPGRADE) {
                ws_upgrade_response(req)
            } else if req.uri().path() == "/sse" {
                sse_response(release)
            } else {
                json_response(describe(label, req).await)
            }
        }
    })
    .await;
    (port, release)
}

/// A plain tokio-tungstenite echo server (no hyper) on 127.0.0.1:0.
pub async fn tungstenite_echo_app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    echo_ws(ws).await;
                }
            });
        }
    });
    port
}
