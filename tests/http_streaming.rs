//! Streaming through a route: server-sent events arrive as they are sent, WebSocket upgrades
//! echo text and binary, and a dedicated public port serves HTTP, SSE and WebSocket alike.

mod common;

use std::net::SocketAddr;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{header, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use underpass::client::{Binding, ClientOptions, HttpExpose};

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
        build(
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
    let (mut ws, resp) = ws_handshake(addr, host, "/ws")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_arrive_as_they_are_sent() {
    within(20, async {
        let (port, release) = full_app("app").await;
        let demo = demo(port).await;
        check_sse(demo.addr(), DEMO_HOST, &release).await;
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

        let r = request(addr, Method::POST, &host, "/p?q=1", &[], "on a port").await;
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
