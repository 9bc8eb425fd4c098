//! `serve(handler)`: an in-process handler answers tunnel requests with no local socket.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use http::Method;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use underpass::client::{serve, ClientOptions};
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

/// One request to route `svc`: status and body.
async fn svc(addr: SocketAddr, method: Method, path: &str, body: Bytes) -> (u16, Bytes) {
    let r = request(addr, method, "svc.example.test", path, &[], body).await;
    (r.status.as_u16(), r.body)
}

#[tokio::test]
async fn a_handler_serves_get_streamed_post_and_sse_without_a_listening_socket() {
    let server = domain_server().await;
    let addr = server.local_addr();
    let before = listening_sockets();
    assert!(!before.is_empty(), "the in-process server itself listens");
    let opts = ClientOptions::new(server.control_url(), TOKEN);
    let (_session, binding) = within(10, serve(&opts, &named("svc"), handler))
        .await
        .unwrap();
    assert_eq!(binding.subdomain(), Some("svc"));
    assert_eq!(
        listening_sockets(),
        before,
        "serve(handler) must not open a listening socket"
    );

    assert_eq!(
        svc(addr, Method::GET, "/hello?x=1", Bytes::new()).await,
        (200, Bytes::from("hello x=1"))
    );
    let upload = Bytes::from(pattern(3 << 20, 5));
    let expect_sum = upload
        .iter()
        .fold(0u64, |s, b| s.wrapping_mul(31).wrapping_add(*b as u64));
    let (status, body) = svc(addr, Method::POST, "/upload", upload.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body, Bytes::from(format!("{} {expect_sum}", upload.len())));
    let (status, body) = svc(addr, Method::GET, "/events", Bytes::new()).await;
    assert_eq!(status, 200);
    assert_eq!(body, Bytes::from("data: one\n\ndata: two\n\n"));
}
