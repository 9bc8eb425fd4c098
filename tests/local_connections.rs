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

/// Reads one request head; `None` at EOF. A body that came with it is left unread (the apps
/// answer GETs, and the one POST is never answered).
async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
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

/// An app that answers one request per connection and then, as one whose keep-alive timer runs
/// out just as the next request arrives, reads that request and closes without answering.
/// Returns the port and every request line it read, in order.
async fn one_answer_then_close_app() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut answered = false;
                while let Some(head) = read_head(&mut tcp).await {
                    let line = head.lines().next().unwrap_or_default().to_string();
                    lines.lock().unwrap().push(line);
                    if answered {
                        return;
                    }
                    answered = true;
                    let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if tcp.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_the_service_closed_a_reused_connection_under_goes_again_on_a_new_one() {
    within(30, async {
        let (port, seen) = one_answer_then_close_app().await;
        let demo = demo(port).await;
        for i in 0..10 {
            let r = get(demo.addr(), DEMO_HOST, &format!("/g/{i}")).await;
            assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
        }
        // Every request after the first went out twice: on the reused connection, then anew.
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 19, "{seen:?}");
        assert_eq!(seen.last().map(String::as_str), Some("GET /g/9 HTTP/1.1"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_the_service_closed_a_reused_connection_under_is_not_sent_twice() {
    within(30, async {
        let (port, seen) = one_answer_then_close_app().await;
        let demo = demo(port).await;
        let first = get(demo.addr(), DEMO_HOST, "/warm").await;
        assert_eq!(first.status, StatusCode::OK);
        let r = request(
            demo.addr(),
            http::Method::POST,
            DEMO_HOST,
            "/order",
            &[],
            "one order",
        )
        .await;
        // The service may have acted on it: the visitor hears it failed, and decides.
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
        let posts = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("POST"))
            .count();
        assert_eq!(posts, 1);
    })
    .await;
}
