//! `serve(handler)`: an in-process handler answers tunnel requests with no local socket.

mod common;

use std::collections::HashSet;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use underpass::client::{serve, ClientOptions, HttpExpose};
use underpass::http::body::{full, ProxyBody};

/// Inodes of the TCP sockets this process has in LISTEN state (Linux /proc).
fn listening_sockets() -> HashSet<u64> {
    let mut own: HashSet<u64> = HashSet::new();
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                if let Ok(n) = inode.parse() {
                    own.insert(n);
                }
            }
        }
    }
    let mut listening = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" {
                if let Ok(inode) = cols[9].parse::<u64>() {
                    if own.contains(&inode) {
                        listening.insert(inode);
                    }
                }
            }
        }
    }
    listening
}

async fn handler(req: hyper::Request<ProxyBody>) -> hyper::Response<ProxyBody> {
    match req.uri().path() {
        "/hello" => {
            hyper::Response::new(full(format!("hello {}", req.uri().query().unwrap_or(""))))
        }
        "/upload" => {
            // Streamed request body: count bytes and chunks as they arrive.
            let mut body = req.into_body();
            let (mut n, mut sum) = (0usize, 0u64);
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(d) = frame.into_data() {
                    n += d.len();
                    sum = d
                        .iter()
                        .fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(*b as u64));
                }
            }
            hyper::Response::new(full(format!("{n} {sum}")))
        }
        "/events" => {
            let stream = futures_util::stream::iter(["data: one\n\n", "data: two\n\n"])
                .map(|s| Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(s.as_bytes()))));
            let mut resp = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
            resp.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            resp
        }
        _ => {
            let mut r = hyper::Response::new(full("nope"));
            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
            r
        }
    }
}

use futures_util::StreamExt;

async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Bytes,
) -> (u16, Bytes) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "svc.example.test")
        .body(Full::new(body))
        .unwrap();
    let resp = within(10, send.send_request(req)).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn a_handler_serves_get_streamed_post_and_sse_without_a_listening_socket() {
    let server = server_with(|c| c.domain = Some("example.test".into())).await;
    let addr = server.local_addr();
    let before = listening_sockets();
    assert!(!before.is_empty(), "the in-process server itself listens");
    let opts = ClientOptions::new(server.control_url(), TOKEN);
    let (_session, binding) = within(
        10,
        serve(&opts, &HttpExpose::route(Some("svc".into())), handler),
    )
    .await
    .unwrap();
    assert_eq!(binding.subdomain(), Some("svc"));
    assert_eq!(
        listening_sockets(),
        before,
        "serve(handler) must not open a listening socket"
    );

    assert_eq!(
        request(addr, "GET", "/hello?x=1", Bytes::new()).await,
        (200, Bytes::from("hello x=1"))
    );
    let upload = Bytes::from(pattern(3 << 20, 5));
    let expect_sum = upload
        .iter()
        .fold(0u64, |s, b| s.wrapping_mul(31).wrapping_add(*b as u64));
    let (status, body) = request(addr, "POST", "/upload", upload.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body, Bytes::from(format!("{} {expect_sum}", upload.len())));
    let (status, body) = request(addr, "GET", "/events", Bytes::new()).await;
    assert_eq!(status, 200);
    assert_eq!(body, Bytes::from("data: one\n\ndata: two\n\n"));
}
