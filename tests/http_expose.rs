//! Issue 3 end to end on real loopback sockets: a server, tunnel clients and small local hyper
//! apps, with visitors speaking real HTTP/1.1 (hyper) and WebSocket (tokio-tungstenite). Covers
//! routing, bodies both ways, streaming (SSE, chunked), upgrades, the visitor-facing errors,
//! Basic Auth, single/cluster/takeover, forwarded-header trust, hop-by-hop hygiene, health probes
//! and dedicated ports.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Barrier, Notify};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use underpass::client::{Binding, ClientError, ClientOptions, ClientSession, HttpExpose};
use underpass::http::edge::trusted_proxy::TrustedProxies;
use underpass::proto::{BindErrorCode, RouteMode};
use underpass::server::Server;

const DOMAIN: &str = "example.test";
const DEMO_HOST: &str = "demo.example.test";

type AppBody = BoxBody<Bytes, Infallible>;

fn full_body(bytes: impl Into<Bytes>) -> AppBody {
    Full::new(bytes.into()).boxed()
}

fn empty_body() -> AppBody {
    Empty::new().boxed()
}

/// A body fed chunk by chunk from a channel: each chunk is sent as soon as it is queued, and
/// the body ends when every sender is gone.
struct ChanBody(mpsc::Receiver<Bytes>);

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

// ---------------------------------------------------------------------------------------------
// Setup

async fn domain_server() -> Server {
    server_with(|cfg| cfg.domain = Some(DOMAIN.into())).await
}

async fn client(server: &Server) -> ClientSession {
    client_with(ClientOptions::new(server.control_url(), TOKEN)).await
}

async fn client_with(opts: ClientOptions) -> ClientSession {
    within(10, ClientSession::connect(&opts))
        .await
        .expect("client connects")
}

fn named(route: &str) -> HttpExpose {
    HttpExpose::route(Some(route.into()))
}

fn cluster(route: &str) -> HttpExpose {
    HttpExpose {
        mode: RouteMode::Cluster,
        ..named(route)
    }
}

/// A local hyper app on 127.0.0.1:0 (upgrades enabled); returns its port.
async fn app<F, Fut>(f: F) -> u16
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<AppBody>> + Send + 'static,
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
async fn describe(label: &str, req: Request<Incoming>) -> Value {
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

fn json_response(v: Value) -> Response<AppBody> {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(full_body(v.to_string()))
        .unwrap()
}

/// Answers every request with [`describe`] as JSON.
async fn echo_app(label: &'static str) -> u16 {
    app(move |req| async move { json_response(describe(label, req).await) }).await
}

/// Answers with [`describe`] and counts the requests it got.
async fn counting_app(label: &'static str) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let port = app(move |req| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { json_response(describe(label, req).await) }
    })
    .await;
    (port, hits)
}

const EVENT_ONE: &str = "event: one\ndata: 1\n\n";
const EVENT_TWO: &str = "event: two\ndata: 2\n\n";

/// SSE: event one at once, event two only after `release` is notified, then the end.
fn sse_response(release: Arc<Notify>) -> Response<AppBody> {
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

/// Echoes text and binary messages until the peer closes.
async fn echo_ws<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) {
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
fn ws_upgrade_response(mut req: Request<Incoming>) -> Response<AppBody> {
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
async fn full_app(label: &'static str) -> (u16, Arc<Notify>) {
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
async fn tungstenite_echo_app() -> u16 {
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

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// Visitor side

/// Sends one request on a fresh connection and returns the response head with a live body.
async fn open(addr: SocketAddr, req: Request<AppBody>) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("http handshake");
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender.send_request(req).await.expect("request sent")
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {}", self.status, self.text()))
    }
}

fn request(
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

async fn send(addr: SocketAddr, req: Request<AppBody>) -> Reply {
    let (parts, body) = open(addr, req).await.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn call(
    addr: SocketAddr,
    method: Method,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    send(
        addr,
        request(method, host, target, headers, full_body(body)),
    )
    .await
}

async fn get(addr: SocketAddr, host: &str, target: &str) -> Reply {
    call(addr, Method::GET, host, target, &[], Bytes::new()).await
}

/// Every value the app saw for header `name`.
fn seen(v: &Value, name: &str) -> Vec<String> {
    v["headers"][name]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn seen_one(v: &Value, name: &str) -> Option<String> {
    let all = seen(v, name);
    assert!(all.len() <= 1, "{name} seen {} times: {all:?}", all.len());
    all.into_iter().next()
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Reads body frames until `acc` contains `needle`.
async fn read_until(body: &mut Incoming, acc: &mut Vec<u8>, needle: &str) {
    while !String::from_utf8_lossy(acc).contains(needle) {
        let frame = body
            .frame()
            .await
            .unwrap_or_else(|| {
                panic!(
                    "body ended before {needle:?}; got {:?}",
                    String::from_utf8_lossy(acc)
                )
            })
            .expect("body frame");
        if let Ok(data) = frame.into_data() {
            acc.extend_from_slice(&data);
        }
    }
}

/// Opens an SSE stream on `addr`, proves event one arrives before event two is released, then
/// reads event two and the end of the stream.
async fn check_sse(addr: SocketAddr, host: &str, release: &Notify) {
    let resp = open(
        addr,
        request(
            Method::GET,
            host,
            "/sse",
            &[("accept", "text/event-stream")],
            empty_body(),
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    let mut acc = Vec::new();
    read_until(&mut body, &mut acc, EVENT_ONE).await;
    assert_eq!(String::from_utf8_lossy(&acc), EVENT_ONE);
    // Only now may the app send event two: event one was not held back waiting for more.
    release.notify_one();
    read_until(&mut body, &mut acc, EVENT_TWO).await;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            acc.extend_from_slice(&data);
        }
    }
    assert_eq!(
        String::from_utf8_lossy(&acc),
        format!("{EVENT_ONE}{EVENT_TWO}")
    );
}

/// WebSocket through the tunnel: handshake, a text and a binary echo, clean close.
async fn check_websocket(addr: SocketAddr, host: &str) {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert(header::HOST, HeaderValue::from_str(host).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tcp)
        .await
        .expect("websocket handshake through the tunnel");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);

    ws.send(Message::text("hello through the tunnel"))
        .await
        .unwrap();
    let back = next_data(&mut ws).await;
    assert_eq!(back, Message::text("hello through the tunnel"));

    // Larger than one mux frame.
    let bin = pattern(100_000, 7);
    ws.send(Message::binary(bin.clone())).await.unwrap();
    let back = next_data(&mut ws).await;
    assert!(back.is_binary());
    assert_eq!(back.into_data(), bin);

    ws.close(None).await.unwrap();
    // The close handshake completes through the tunnel.
    while let Some(msg) = ws.next().await {
        if msg.is_err() || msg.unwrap().is_close() {
            break;
        }
    }
}

async fn next_data<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    loop {
        let msg = ws
            .next()
            .await
            .expect("websocket open")
            .expect("websocket message");
        if msg.is_text() || msg.is_binary() {
            return msg;
        }
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

// ---------------------------------------------------------------------------------------------
// Requests and bodies

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_post_reach_the_app_with_host_and_forwarded_headers() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let port = echo_app("app").await;
        let binding = client.expose_http(port, &named("demo")).await.unwrap();
        assert_eq!(binding.subdomain(), Some("demo"));
        assert_eq!(binding.container_port(), 0);

        let r = get(addr, DEMO_HOST, "/path/to?x=1&y=two").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["target"], "/path/to?x=1&y=two");
        assert_eq!(v["body"], "");
        assert_eq!(seen_one(&v, "host").as_deref(), Some(DEMO_HOST));
        assert_eq!(
            seen_one(&v, "x-forwarded-for").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(seen_one(&v, "x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(seen_one(&v, "x-forwarded-host").as_deref(), Some(DEMO_HOST));
        // A GET without a body stays without one on the last hop.
        assert!(seen(&v, "transfer-encoding").is_empty(), "{v}");

        // HEAD: the app's Content-Length comes back, no body.
        let r = call(addr, Method::HEAD, DEMO_HOST, "/path/to?x=1&y=two", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.is_empty());
        assert!(r.headers.contains_key(header::CONTENT_LENGTH));

        // Host case and port are ignored for routing, and the Host reaches the app unchanged.
        let r = call(
            addr,
            Method::POST,
            "Demo.Example.Test:8443",
            "/submit?q=a%20b",
            &[("content-type", "text/plain"), ("x-custom", "kept")],
            "hello body",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["target"], "/submit?q=a%20b");
        assert_eq!(v["body"], "hello body");
        assert_eq!(
            seen_one(&v, "host").as_deref(),
            Some("Demo.Example.Test:8443")
        );
        assert_eq!(seen_one(&v, "x-custom").as_deref(), Some("kept"));
        assert_eq!(seen_one(&v, "content-type").as_deref(), Some("text/plain"));
        assert_eq!(
            seen_one(&v, "x-forwarded-host").as_deref(),
            Some("Demo.Example.Test:8443")
        );

        // Other methods and an empty-bodied PUT/DELETE.
        for m in [Method::PUT, Method::DELETE, Method::PATCH] {
            let r = call(addr, m.clone(), DEMO_HOST, "/m", &[], "x").await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.json()["method"], m.as_str());
        }
        drop(binding);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_visitor_connection_carries_many_requests() {
    within(20, async {
        let server = domain_server().await;
        let client = client(&server).await;
        let (port, release) = full_app("app").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        release.notify_one();
        for i in 0..10 {
            sender.ready().await.expect("connection kept alive");
            let (target, body) = if i % 3 == 2 {
                ("/sse".to_string(), Bytes::new())
            } else {
                (format!("/{i}"), Bytes::from(format!("body {i}")))
            };
            let req = request(
                Method::POST,
                DEMO_HOST,
                &target,
                &[],
                full_body(body.clone()),
            );
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let got = resp.into_body().collect().await.unwrap().to_bytes();
            if target == "/sse" {
                assert_eq!(got, format!("{EVENT_ONE}{EVENT_TWO}"));
                release.notify_one();
            } else {
                let v: Value = serde_json::from_slice(&got).unwrap();
                assert_eq!(v["target"], target);
                assert_eq!(v["body"].as_str(), std::str::from_utf8(&body).ok());
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_are_isolated() {
    within(30, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        // The app answers only once all 20 requests are inside it, so they really are
        // concurrent (a tunnel that serialised them would time out here).
        let barrier = Arc::new(Barrier::new(20));
        let b = barrier.clone();
        let port = app(move |req| {
            let b = b.clone();
            async move {
                let v = describe("app", req).await;
                b.wait().await;
                json_response(v)
            }
        })
        .await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();

        let tasks: Vec<_> = (0..20)
            .map(|i| {
                tokio::spawn(async move {
                    let body = format!("body-{i}-").repeat(i + 1);
                    let r = call(
                        addr,
                        Method::POST,
                        DEMO_HOST,
                        &format!("/req/{i}?n={i}"),
                        &[("x-request", &i.to_string())],
                        body.clone(),
                    )
                    .await;
                    (i, body, r)
                })
            })
            .collect();
        for t in tasks {
            let (i, body, r) = t.await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
            let v = r.json();
            assert_eq!(v["target"], format!("/req/{i}?n={i}"));
            assert_eq!(v["body"], body);
            assert_eq!(seen_one(&v, "x-request"), Some(i.to_string()));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_and_chunked_download_are_byte_exact() {
    within(30, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        const CHUNK: usize = 64 * 1024;
        let download = Bytes::from(pattern(16 * CHUNK, 42));
        let d = download.clone();
        let port = app(move |req| {
            let download = d.clone();
            async move {
                if req.uri().path() == "/download" {
                    let (tx, rx) = mpsc::channel(2);
                    tokio::spawn(async move {
                        for i in 0..16 {
                            let chunk = download.slice(i * CHUNK..(i + 1) * CHUNK);
                            if tx.send(chunk).await.is_err() {
                                return;
                            }
                        }
                    });
                    return Response::new(ChanBody(rx).boxed());
                }
                let body = req.into_body().collect().await.unwrap().to_bytes();
                json_response(json!({"len": body.len(), "fnv": fnv1a(&body).to_string()}))
            }
        })
        .await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();

        // 1 MiB with Content-Length.
        let upload = pattern(1024 * 1024, 9);
        let r = call(
            addr,
            Method::POST,
            DEMO_HOST,
            "/upload",
            &[],
            upload.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["len"], upload.len());
        assert_eq!(v["fnv"], fnv1a(&upload).to_string());

        // 1 MiB again, chunked (no Content-Length), 16 x 64 KiB.
        let upload = pattern(1024 * 1024, 10);
        let (tx, rx) = mpsc::channel(2);
        let chunks = Bytes::from(upload.clone());
        tokio::spawn(async move {
            for i in 0..16 {
                let _ = tx.send(chunks.slice(i * CHUNK..(i + 1) * CHUNK)).await;
            }
        });
        let r = send(
            addr,
            request(Method::PUT, DEMO_HOST, "/upload", &[], ChanBody(rx).boxed()),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["len"], upload.len());
        assert_eq!(v["fnv"], fnv1a(&upload).to_string());

        // 16 x 64 KiB streamed by the app.
        let r = get(addr, DEMO_HOST, "/download").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.len(), download.len());
        assert!(r.body == download, "download differs");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_arrive_as_they_are_sent() {
    within(20, async {
        let server = domain_server().await;
        let client = client(&server).await;
        let (port, release) = full_app("app").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        check_sse(server.local_addr(), DEMO_HOST, &release).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_echoes_text_and_binary() {
    within(20, async {
        let server = domain_server().await;
        let client = client(&server).await;
        // A plain tokio-tungstenite server behind a route...
        let port = tungstenite_echo_app().await;
        let _ws = client.expose_http(port, &named("ws")).await.unwrap();
        check_websocket(server.local_addr(), "ws.example.test").await;
        // ...and a hyper app doing the upgrade itself.
        let (port, _) = full_app("app").await;
        let _demo = client.expose_http(port, &named("demo")).await.unwrap();
        check_websocket(server.local_addr(), DEMO_HOST).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Errors the visitor sees

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_and_unbound_route_are_404_naming_the_host() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let (port, hits) = counting_app("app").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();

        for host in [
            "other.org",
            "nobody.example.test",
            "a.demo.example.test",
            "example.test",
        ] {
            let r = get(addr, host, "/").await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{host}");
            assert!(
                r.text().contains("no tunnel for host") && r.text().contains(host),
                "{host}: {}",
                r.text()
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert_eq!(get(addr, DEMO_HOST, "/").await.status, StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_the_route_and_is_stripped_before_the_app() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let (port, hits) = counting_app("app").await;
        let any_user = HttpExpose {
            basic_auth_password: Some("s3cret".into()),
            ..named("demo")
        };
        let _a = client.expose_http(port, &any_user).await.unwrap();
        let alice_only = HttpExpose {
            basic_auth_username: Some("alice".into()),
            basic_auth_password: Some("s3cret".into()),
            ..named("alice")
        };
        let _b = client.expose_http(port, &alice_only).await.unwrap();

        let challenge = |r: &Reply| {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
            assert_eq!(
                r.headers[header::WWW_AUTHENTICATE],
                "Basic realm=\"underpass\""
            );
            assert!(r.text().contains("authentication required"), "{}", r.text());
        };
        challenge(&get(addr, DEMO_HOST, "/").await);
        let wrong = basic("bob", "nope");
        let r = call(
            addr,
            Method::GET,
            DEMO_HOST,
            "/",
            &[("authorization", &wrong)],
            "",
        )
        .await;
        challenge(&r);
        let r = call(
            addr,
            Method::GET,
            DEMO_HOST,
            "/",
            &[("authorization", "Bearer s3cret")],
            "",
        )
        .await;
        challenge(&r);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "refused requests reached the app"
        );

        // Any username with the right password; the app never sees the credentials.
        let right = basic("bob", "s3cret");
        let r = call(
            addr,
            Method::GET,
            DEMO_HOST,
            "/",
            &[("authorization", &right)],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(seen(&r.json(), "authorization").is_empty());

        // With a username set, the wrong one is refused even with the right password.
        let host = "alice.example.test";
        let r = call(
            addr,
            Method::GET,
            host,
            "/",
            &[("authorization", &right)],
            "",
        )
        .await;
        challenge(&r);
        let alice = basic("alice", "s3cret");
        let r = call(
            addr,
            Method::GET,
            host,
            "/",
            &[("authorization", &alice)],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(seen(&r.json(), "authorization").is_empty());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_basic_auth_the_app_sees_the_visitors_authorization() {
    within(20, async {
        let server = domain_server().await;
        let client = client(&server).await;
        let port = echo_app("app").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let r = call(
            server.local_addr(),
            Method::GET,
            DEMO_HOST,
            "/",
            &[("authorization", "Bearer app-token")],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            seen_one(&r.json(), "authorization").as_deref(),
            Some("Bearer app-token")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_service_down_is_502_naming_the_port() {
    within(20, async {
        let server = domain_server().await;
        let client = client(&server).await;
        let port = dead_port();
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let r = get(server.local_addr(), DEMO_HOST, "/").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
        assert!(
            r.text().contains(&format!("port {port}")),
            "body names the port: {}",
            r.text()
        );
        // The tunnel still works for the next request (the stream was answered, not wedged).
        let r = get(server.local_addr(), DEMO_HOST, "/again").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        // A WebSocket upgrade to the dead port gets the same 502.
        let addr = server.local_addr();
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static(DEMO_HOST));
        let tcp = TcpStream::connect(addr).await.unwrap();
        match tokio_tungstenite::client_async(req, tcp).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
                let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains(&format!("port {port}")), "{body}");
            }
            other => panic!("expected a 502 refusal, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_that_never_answers_is_504() {
    within(20, async {
        let server = server_with(|cfg| {
            cfg.domain = Some(DOMAIN.into());
            cfg.limits.response_timeout = Duration::from_millis(300);
        })
        .await;
        let client = client(&server).await;
        let port = app(|_req| std::future::pending::<Response<AppBody>>()).await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let started = Instant::now();
        let r = get(server.local_addr(), DEMO_HOST, "/slow").await;
        assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(
            r.text().contains("did not respond within 300 ms"),
            "{}",
            r.text()
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Routing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_route_serves_the_domain_itself() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let port = echo_app("root").await;
        let binding = client.expose_http(port, &named("@")).await.unwrap();
        assert_eq!(binding.subdomain(), Some("@"));
        let r = get(addr, "Example.Test:80", "/home").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["app"], "root");
        assert_eq!(r.json()["target"], "/home");
        let r = get(addr, "www.example.test", "/").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_domain_the_first_label_is_the_route() {
    within(20, async {
        let server = server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let port = echo_app("demo").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        for host in ["demo.anything.local:1234", "demo", "DEMO.other.example"] {
            let r = get(addr, host, "/").await;
            assert_eq!(r.status, StatusCode::OK, "{host}: {}", r.text());
            assert_eq!(seen_one(&r.json(), "host").as_deref(), Some(host));
        }
        for host in ["other.anything.local", "127.0.0.1"] {
            assert_eq!(get(addr, host, "/").await.status, StatusCode::NOT_FOUND);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_route_name_has_the_up_shape_and_works() {
    within(20, async {
        let server = domain_server().await;
        let client = client(&server).await;
        let port = echo_app("app").await;
        let binding = client
            .expose_http(port, &HttpExpose::route(None))
            .await
            .unwrap();
        let name = binding.subdomain().expect("a route name").to_string();
        let suffix = name.strip_prefix("up-").expect("up- prefix");
        assert_eq!(suffix.len(), 10, "{name}");
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{name}"
        );
        assert!(
            binding.public_url().is_some_and(|u| u.contains(&name)),
            "{:?}",
            binding.public_url()
        );
        let r = get(server.local_addr(), &format!("{name}.{DOMAIN}"), "/").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());

        // A second random route gets another name.
        let other = client
            .expose_http(port, &HttpExpose::route(None))
            .await
            .unwrap();
        assert_ne!(other.subdomain(), Some(name.as_str()));
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Single, takeover, cluster

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_route_is_refused_and_takeover_moves_it() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let first = client(&server).await;
        let second = client(&server).await;
        let port_a = echo_app("a").await;
        let port_b = echo_app("b").await;
        let binding_a = first.expose_http(port_a, &named("demo")).await.unwrap();

        match second.expose_http(port_b, &named("demo")).await {
            Err(ClientError::Bind {
                code: BindErrorCode::RouteTaken,
                message,
            }) => assert!(message.contains("demo"), "{message}"),
            other => panic!("expected ROUTE_TAKEN, got {other:?}"),
        }
        let r = get(addr, DEMO_HOST, "/").await;
        assert_eq!(r.json()["app"], "a", "the first holder keeps serving");

        let takeover = HttpExpose {
            takeover: true,
            ..named("demo")
        };
        let binding_b = second.expose_http(port_b, &takeover).await.unwrap();
        let (revoked_id, reason) = first.next_revocation().await.expect("revocation");
        assert_eq!(revoked_id, binding_a.bind_id());
        assert!(!reason.is_empty());
        assert_eq!(first.revoked(binding_a.bind_id()), Some(reason));
        let r = get(addr, DEMO_HOST, "/").await;
        assert_eq!(r.json()["app"], "b", "the route moved");

        // The old holder letting go of its binding does not disturb the new one.
        drop(binding_a);
        let r = get(addr, DEMO_HOST, "/after").await;
        assert_eq!(r.json()["app"], "b");
        drop(binding_b);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_requests_alternate_round_robin() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let one = client(&server).await;
        let two = client_with(ClientOptions::new(server.control_url(), TOKEN).connections(1)).await;
        let _a = one
            .expose_http(echo_app("a").await, &cluster("svc"))
            .await
            .unwrap();
        let _b = two
            .expose_http(echo_app("b").await, &cluster("svc"))
            .await
            .unwrap();
        let mut answers = Vec::new();
        for i in 0..10 {
            let r = get(addr, "svc.example.test", &format!("/{i}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            answers.push(r.json()["app"].as_str().unwrap().to_string());
        }
        let a = answers.iter().filter(|s| *s == "a").count();
        assert_eq!((a, answers.len() - a), (5, 5), "{answers:?}");
        assert!(
            answers.windows(2).all(|w| w[0] != w[1]),
            "alternates: {answers:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_refuses_mode_and_auth_mismatch() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let holder = client(&server).await;
        let other = client(&server).await;
        let port = echo_app("a").await;
        let _a = holder.expose_http(port, &cluster("svc")).await.unwrap();

        match other.expose_http(port, &named("svc")).await {
            Err(ClientError::Bind {
                code: BindErrorCode::ModeMismatch,
                message,
            }) => assert!(message.contains("cluster"), "{message}"),
            r => panic!("expected MODE_MISMATCH, got {r:?}"),
        }
        let with_auth = HttpExpose {
            basic_auth_password: Some("pw".into()),
            ..cluster("svc")
        };
        match other.expose_http(port, &with_auth).await {
            Err(ClientError::Bind {
                code: BindErrorCode::ModeMismatch,
                message,
            }) => assert!(message.contains("Basic Auth"), "{message}"),
            r => panic!("expected an auth mismatch refusal, got {r:?}"),
        }
        // A single route is likewise refused to a cluster client.
        let _s = holder.expose_http(port, &named("solo")).await.unwrap();
        match other.expose_http(port, &cluster("solo")).await {
            Err(ClientError::Bind {
                code: BindErrorCode::ModeMismatch,
                ..
            }) => {}
            r => panic!("expected MODE_MISMATCH, got {r:?}"),
        }
        // The refusals left the route alone: no auth, one holder.
        let r = get(addr, "svc.example.test", "/").await;
        assert_eq!(r.status, StatusCode::OK);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Header hygiene

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_headers_are_ignored_without_trusted_proxies() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let port = echo_app("app").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let r = call(
            addr,
            Method::GET,
            DEMO_HOST,
            "/",
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-host", "evil.example.test"),
                ("x-forwarded-proto", "https"),
                ("x-real-ip", "1.2.3.4"),
                ("forwarded", "for=1.2.3.4"),
            ],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let v = r.json();
        assert_eq!(seen(&v, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(seen(&v, "x-forwarded-host"), [DEMO_HOST]);
        assert_eq!(seen(&v, "x-forwarded-proto"), ["http"]);
        assert!(seen(&v, "forwarded").is_empty());
        assert!(seen(&v, "x-real-ip").iter().all(|ip| ip == "127.0.0.1"));

        // An untrusted X-Forwarded-Host is not used for routing either.
        let r = call(
            addr,
            Method::GET,
            &addr.to_string(),
            "/",
            &[("x-forwarded-host", DEMO_HOST)],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_chain_is_honoured_and_its_host_routes() {
    within(20, async {
        let server = server_with(|cfg| {
            cfg.domain = Some(DOMAIN.into());
            cfg.trusted_proxies = TrustedProxies::parse(&["loopback"]).unwrap();
        })
        .await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let port = echo_app("app").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let public_host = addr.to_string();
        let r = call(
            addr,
            Method::GET,
            &public_host,
            "/",
            &[
                ("x-forwarded-for", "198.51.100.7"),
                ("x-forwarded-host", DEMO_HOST),
                ("x-forwarded-proto", "https"),
            ],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(seen(&v, "x-forwarded-for"), ["198.51.100.7, 127.0.0.1"]);
        assert_eq!(seen(&v, "x-forwarded-host"), [DEMO_HOST]);
        assert_eq!(seen(&v, "x-forwarded-proto"), ["https"]);
        // The Host header still reaches the app as the visitor sent it.
        assert_eq!(seen(&v, "host"), [public_host]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    within(20, async {
        let server = domain_server().await;
        let client =
            client_with(ClientOptions::new(server.control_url(), TOKEN).connections(1)).await;
        let port = app(|req| async move {
            let mut resp = json_response(describe("app", req).await);
            let h = resp.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("x-app-secret"));
            h.insert("x-app-secret", HeaderValue::from_static("1"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
            h.insert("x-app-public", HeaderValue::from_static("yes"));
            resp
        })
        .await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let r = call(
            server.local_addr(),
            Method::GET,
            DEMO_HOST,
            "/",
            &[
                ("connection", "x-secret"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5, max=100"),
                ("proxy-connection", "keep-alive"),
                ("te", "trailers"),
                ("x-public", "yes"),
            ],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        for name in ["x-secret", "keep-alive", "proxy-connection", "te"] {
            assert!(seen(&v, name).is_empty(), "the app saw {name}: {v}");
        }
        assert!(
            seen(&v, "connection")
                .iter()
                .all(|c| !c.to_ascii_lowercase().contains("x-secret")),
            "{v}"
        );
        assert_eq!(seen(&v, "x-public"), ["yes"]);

        for name in ["x-app-secret", "keep-alive", "proxy-connection"] {
            assert!(!r.headers.contains_key(name), "the visitor got {name}");
        }
        for c in r.headers.get_all(header::CONNECTION) {
            assert!(!c.to_str().unwrap().contains("x-app-secret"));
        }
        assert_eq!(r.headers["x-app-public"], "yes");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Health and reserved paths

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_and_reserved_paths_are_never_proxied() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let (port, hits) = counting_app("root").await;
        let _root = client.expose_http(port, &named("@")).await.unwrap();
        let _demo = client.expose_http(port, &named("demo")).await.unwrap();

        for path in ["/__underpass__/health/live", "/__underpass__/health/ready"] {
            for host in [DOMAIN, DEMO_HOST, "unknown.host"] {
                let r = get(addr, host, path).await;
                assert_eq!(r.status, StatusCode::OK, "{path} {host}");
                assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(v["status"], "ok");
            }
            let r = call(addr, Method::HEAD, DOMAIN, path, &[], "").await;
            assert_eq!(r.status, StatusCode::OK, "HEAD {path}");
            assert!(r.body.is_empty());
            let r = call(addr, Method::POST, DOMAIN, path, &[], "x").await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "POST {path}");
            assert_eq!(r.headers[header::ALLOW], "GET, HEAD");
        }
        for path in [
            "/__underpass__/anything",
            "/__underpass__/health/other",
            "/__underpass__/",
        ] {
            for host in [DOMAIN, DEMO_HOST] {
                let r = get(addr, host, path).await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{path} {host}");
                assert!(r.text().starts_with("underpass:"), "{}", r.text());
            }
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "a reserved path reached the app"
        );
        // The routes do exist.
        assert_eq!(
            get(addr, DOMAIN, "/__underpass").await.status,
            StatusCode::OK
        );
        assert_eq!(get(addr, DEMO_HOST, "/x").await.status, StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Dedicated ports

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_port_serves_http_sse_and_websocket() {
    within(30, async {
        let server = server().await;
        let client =
            client_with(ClientOptions::new(server.control_url(), TOKEN).connections(1)).await;
        let (port, release) = full_app("dedicated").await;
        let binding: Binding = client
            .expose_http(port, &HttpExpose::port(0))
            .await
            .unwrap();
        let public_port = binding.container_port();
        assert_ne!(public_port, 0);
        assert_eq!(binding.subdomain(), None);
        assert!(
            binding
                .public_url()
                .is_some_and(|u| u.ends_with(&format!(":{public_port}"))),
            "{:?}",
            binding.public_url()
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], public_port));
        let host = addr.to_string();

        let r = call(addr, Method::POST, &host, "/p?q=1", &[], "on a port").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["app"], "dedicated");
        assert_eq!(v["target"], "/p?q=1");
        assert_eq!(v["body"], "on a port");
        assert_eq!(seen(&v, "host"), std::slice::from_ref(&host));
        assert_eq!(seen(&v, "x-forwarded-for"), ["127.0.0.1"]);

        check_sse(addr, &host, &release).await;
        check_websocket(addr, &host).await;

        // The main listener does not route to a port-only binding.
        assert_eq!(
            get(server.local_addr(), "anything.example", "/")
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    })
    .await;
}
