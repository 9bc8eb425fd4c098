//! The client's connections to the local service behind an http expose: reused across
//! requests, made again when the service closed the last one (no 502 for the visitor), and
//! the request as the service reads it (origin-form target, the visitor's Host, the service's
//! own address as Host when the visitor sent none). Raw-socket apps, so what they count and
//! echo is exactly what reached them.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use underpass::client::HttpExpose;

/// Reads one request head (no body: the tests send GETs); `None` at EOF.
async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}

/// An app answering each request with its own head as the body; counts the connections it
/// accepted. With `close_after_answer`, it closes each connection after one answer without
/// saying so (no `Connection: close`), as a service whose keep-alive timer ran out does.
async fn head_echo_app(close_after_answer: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while let Some(head) = read_head(&mut tcp).await {
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{head}",
                        head.len()
                    );
                    if tcp.write_all(answer.as_bytes()).await.is_err() || close_after_answer {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

/// The request line and the Host header an answer of [`head_echo_app`] shows.
fn line_and_host(body: &str) -> (String, Option<String>) {
    let mut lines = body.split("\r\n");
    let line = lines.next().unwrap_or_default().to_string();
    let host = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("host")
            .then(|| value.trim().to_string())
    });
    (line, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_connection_to_the_service() {
    within(30, async {
        let (port, accepted) = head_echo_app(false).await;
        let demo = demo(port).await;
        for i in 0..20 {
            let r = get(demo.addr(), DEMO_HOST, &format!("/n/{i}?x=1")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let (line, host) = line_and_host(&r.text());
            assert_eq!(line, format!("GET /n/{i}?x=1 HTTP/1.1"));
            assert_eq!(host.as_deref(), Some(DEMO_HOST));
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one kept-alive connection"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_closes_after_each_answer_gets_a_new_connection_each_time() {
    within(30, async {
        let (port, accepted) = head_echo_app(true).await;
        let demo = demo(port).await;
        for i in 0..20 {
            let r = get(demo.addr(), DEMO_HOST, &format!("/c/{i}")).await;
            assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 20);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_host_carries_the_service_address() {
    within(30, async {
        let (port, _) = head_echo_app(false).await;
        let server = server().await;
        let client = client(&server).await;
        let binding = client
            .expose_http(port, &HttpExpose::port(0))
            .await
            .unwrap();
        let public = SocketAddr::from(([127, 0, 0, 1], binding.container_port()));
        // HTTP/1.0 allows a request without Host; the tunnel has no authority to send then.
        let reply = raw_http(public, "GET /bare HTTP/1.0\r\n\r\n").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let (line, host) = line_and_host(&reply.body);
        assert_eq!(line, "GET /bare HTTP/1.1");
        assert_eq!(host, Some(format!("127.0.0.1:{port}")));
    })
    .await;
}
