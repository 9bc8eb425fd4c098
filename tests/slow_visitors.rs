//! Visitors that hold a connection without using it: a request head sent too slowly
//! (slowloris) and an idle kept-alive connection are closed after `header_timeout`, while a
//! long streamed answer is not cut by it.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use underpass::server::Server;

const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

async fn impatient_server() -> Server {
    server_with(|cfg| {
        cfg.domain = Some(DOMAIN.into());
        cfg.limits.header_timeout = HEADER_TIMEOUT;
    })
    .await
}

/// Reads until the server closes the connection; returns what came before.
async fn until_closed(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = within(10, tcp.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until `needle` has arrived.
async fn read_until(tcp: &mut TcpStream, acc: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(acc).contains(needle) {
        let n = within(10, tcp.read(&mut buf)).await.unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(acc)
        );
        acc.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    let server = impatient_server().await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: demo.example.test\r\nX-Slow: 1")
        .await
        .unwrap();
    let got = until_closed(&mut tcp).await;
    assert!(!got.contains("200"), "{got}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_its_answer() {
    let server = impatient_server().await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(b"GET /__underpass__/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = until_closed(&mut tcp).await;
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
}

#[tokio::test]
async fn a_long_stream_outlives_the_header_timeout() {
    let server = impatient_server().await;
    let client = client(&server).await;
    let (port, release) = full_app("slow").await;
    let _binding = client.expose_http(port, &named("demo")).await.unwrap();
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    tcp.write_all(b"GET /sse HTTP/1.1\r\nHost: demo.example.test\r\n\r\n")
        .await
        .unwrap();
    let mut acc = Vec::new();
    read_until(&mut tcp, &mut acc, EVENT_ONE).await;
    // Three header timeouts between two events of one answer.
    tokio::time::sleep(HEADER_TIMEOUT * 3).await;
    release.notify_one();
    read_until(&mut tcp, &mut acc, EVENT_TWO).await;
}

#[tokio::test]
async fn a_trusted_proxy_may_keep_idle_connections_open() {
    let server = server_with(|cfg| {
        cfg.domain = Some(DOMAIN.into());
        cfg.limits.header_timeout = HEADER_TIMEOUT;
        cfg.trusted_proxies =
            underpass::http::edge::trusted_proxy::TrustedProxies::parse(&["loopback"]).unwrap();
    })
    .await;
    let mut tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let probe = b"GET /__underpass__/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    tcp.write_all(probe).await.unwrap();
    let mut acc = Vec::new();
    read_until(&mut tcp, &mut acc, "\"status\"").await;
    // Idle for three header timeouts, then the same connection serves another request.
    tokio::time::sleep(HEADER_TIMEOUT * 3).await;
    tcp.write_all(probe).await.unwrap();
    let mut again = Vec::new();
    read_until(&mut tcp, &mut again, "HTTP/1.1 200 OK").await;
}
