//! The connection budget counts upgraded connections for as long as they live: a visitor's
//! WebSocket through a tunnel, and a carrier's WebSocket (also while it has not sent HELLO
//! yet). Filled with such connections, the server answers 503 to the next visitor; closing
//! them gives the permits back.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use underpass::client::ClientOptions;
use underpass_transports::ws::WsTransport;
use underpass_transports::{Endpoint, Transport};

fn health() -> String {
    "GET /__underpass__/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into()
}

/// Waits until the health probe is answered 200 again (the permits came back).
async fn until_served(addr: SocketAddr) {
    within(10, async {
        while raw_http(addr, &health()).await.status != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carriers_waiting_for_hello_hold_their_permits() {
    let server = server_with(|c| {
        c.limits.fd_budget = Some(2);
        c.limits.hello_timeout = Duration::from_secs(60);
    })
    .await;
    let addr = server.local_addr();
    let endpoint = Endpoint {
        url: server.control_url(),
        subprotocol: "hoody-tunnel.v1".into(),
        bearer: None,
    };
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(
            within(10, WsTransport::new().connect(&endpoint))
                .await
                .unwrap(),
        );
    }
    // Give the server time to have handed both over after their upgrades.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = raw_http(addr, &health()).await;
    assert_eq!(
        r.status, 503,
        "two silent carriers fill a budget of two: {}",
        r.body
    );
    assert_eq!(server.state().fd_budget.available(), 0);

    drop(silent);
    until_served(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_websockets_hold_their_permits() {
    let server = server_with(|c| {
        c.domain = Some(DOMAIN.into());
        c.limits.fd_budget = Some(3);
    })
    .await;
    let addr = server.local_addr();
    // One carrier: one permit.
    let client = client_with(ClientOptions::new(server.control_url(), TOKEN).connections(1)).await;
    let _b = client
        .expose_http(tungstenite_echo_app().await, &named("demo"))
        .await
        .unwrap();
    let mut sockets = Vec::new();
    for i in 0..2 {
        let (mut ws, _) = ws_handshake(addr, DEMO_HOST, "/ws").await.unwrap();
        ws.send(Message::text(format!("hi {i}"))).await.unwrap();
        let echoed = within(10, ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap(), format!("hi {i}"));
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = raw_http(addr, &health()).await;
    assert_eq!(
        r.status, 503,
        "a carrier and two WebSockets fill a budget of three: {}",
        r.body
    );

    drop(sockets);
    until_served(addr).await;
}
