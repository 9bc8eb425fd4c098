//! Issue 12, item 6: a client's `max_bytes_per_second` covers every kind of stream it carries,
//! not only tcp exposes (tests/client_identities.rs has those and a plain HTTP answer): HTTP
//! request bodies on their way in, the bytes of an upgraded visitor WebSocket in both
//! directions, and `forward` streams to a server loopback port. Each case moves 3 MiB at
//! 1 MiB/s, which takes at least 2.5 s on any machine (the bucket starts with 0.1 s of credit
//! and each stream may run one read ahead), so the bounds are lower bounds only: a busy machine
//! can make them slower, never faster. Every byte must arrive.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::Method;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const ALICE: &str = "alice-token-0123456789";
const MIB: usize = 1 << 20;
const AT_LEAST: Duration = Duration::from_millis(2500);

/// Alice may use `alice` and forward to `forward_port`, at 1 MiB/s in each direction.
fn limited(forward_port: u16) -> TempClients {
    TempClients::new(&client_block(
        "alice",
        ALICE,
        &format!(
            "subdomains = [\"alice\"]\nforward = [\"{forward_port}\"]\n\
             max_bytes_per_second = \"1MiB\""
        ),
    ))
}

fn host() -> String {
    format!("alice.{DOMAIN}")
}

#[tokio::test]
async fn an_http_request_body_is_slowed_to_the_limit_and_arrives_whole() {
    let file = limited(1);
    let server = clients_server(&file, |_| {}).await;
    let alice = connect_as(&server, ALICE).await;
    let app = app(|req: http::Request<hyper::body::Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        http::Response::new(full_body(body.len().to_string()))
    })
    .await;
    let _route = alice.expose_http(app, &named("alice")).await.unwrap();

    let body = Bytes::from(pattern(3 * MIB, 7));
    let started = tokio::time::Instant::now();
    let reply = within(
        60,
        request(server.local_addr(), Method::POST, &host(), "/up", &[], body),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, (3 * MIB).to_string(), "the app read every byte");
    assert!(took >= AT_LEAST, "3 MiB request body in {took:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_upgraded_websocket_is_slowed_to_the_limit_in_both_directions() {
    let file = limited(1);
    let server = clients_server(&file, |_| {}).await;
    let alice = connect_as(&server, ALICE).await;
    let app = app(|req| async move { ws_upgrade_response(req) }).await;
    let _route = alice.expose_http(app, &named("alice")).await.unwrap();

    let (ws, _) = ws_handshake(server.local_addr(), &host(), "/ws")
        .await
        .expect("upgrade through the tunnel");
    let (mut tx, mut rx) = ws.split();
    // 48 messages of 64 KiB: 3 MiB to the app, and its echo of 3 MiB back.
    let messages: Vec<Vec<u8>> = (0..48).map(|i| pattern(64 * 1024, i)).collect();
    let sent = messages.clone();
    let started = tokio::time::Instant::now();
    let send = async move {
        for m in sent {
            tx.send(Message::binary(m)).await.unwrap();
        }
        tx
    };
    let receive = async move {
        let mut got = Vec::new();
        while got.len() < 48 {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) => got.push(b.to_vec()),
                Some(Ok(_)) => {}
                other => panic!("echo ended early: {other:?}"),
            }
        }
        got
    };
    let (_tx, got) = within(60, async { tokio::join!(send, receive) }).await;
    let took = started.elapsed();
    assert!(got == messages, "every echoed message intact and in order");
    assert!(
        took >= AT_LEAST,
        "3 MiB each way over a WebSocket in {took:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_forward_stream_is_slowed_to_the_limit_and_arrives_whole() {
    let sink = counting_sink().await;
    let file = limited(sink.port());
    let server = clients_server(&file, |cfg| {
        cfg.allow_forward = vec![sink.port()..=sink.port()];
    })
    .await;
    let alice = connect_as(&server, ALICE).await;
    let forward = alice.forward(0, sink.port()).await.unwrap();
    let local = forward.local_addr().expect("forward listens on the client");

    let started = tokio::time::Instant::now();
    let count = within(60, async {
        let mut tcp = TcpStream::connect(local).await.unwrap();
        tcp.write_all(&pattern(3 * MIB, 9)).await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut n = [0u8; 8];
        tcp.read_exact(&mut n).await.unwrap();
        u64::from_be_bytes(n)
    })
    .await;
    let took = started.elapsed();
    assert_eq!(count, 3 * MIB as u64, "the server-side app got every byte");
    assert!(took >= AT_LEAST, "3 MiB through forward in {took:?}");
    server.shutdown().await;
}
