//! Every answer the edge writes itself (not the app) comes from one builder and so carries
//! the same headers: `text/plain; charset=utf-8`, `X-Content-Type-Options: nosniff` and
//! `Cache-Control: no-store`, with a body starting `underpass:`. Collected with raw sockets,
//! including the 503 written before hyper ever sees the connection.

mod common;

use std::time::Duration;

use common::*;

fn assert_edge_answer(what: &str, r: &RawReply, status: u16) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{what}: {:?}",
        r.headers
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}: {:?}",
        r.headers
    );
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "{what}: {:?}",
        r.headers
    );
    assert!(r.body.starts_with("underpass: "), "{what}: {}", r.body);
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_own_answers_share_one_set_of_headers() {
    let demo = demo(echo_app("app").await).await;
    let addr = demo.addr();
    let cases = [
        ("no route", get("/", "nobody.example.test"), 404),
        ("reserved path", get("/__underpass__/nothing", DEMO_HOST), 404),
        (
            "two hosts",
            format!("GET / HTTP/1.1\r\nHost: {DEMO_HOST}\r\nHost: {DEMO_HOST}\r\nConnection: close\r\n\r\n"),
            400,
        ),
        (
            "head too large for a STREAM_OPEN",
            format!(
                "GET / HTTP/1.1\r\nHost: {DEMO_HOST}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                "b".repeat(70_000)
            ),
            431,
        ),
    ];
    for (what, request, status) in cases {
        let r = raw_http(addr, &request).await;
        assert_edge_answer(what, &r, status);
    }
}

#[tokio::test]
async fn the_over_budget_503_is_built_the_same_way() {
    let server = server_with(|c| c.limits.fd_budget = Some(1)).await;
    let addr = server.local_addr();
    let state = server.state().clone();
    let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    within(5, async {
        while state.fd_budget.available() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let r = raw_http(addr, &get("/__underpass__/health/live", "x")).await;
    assert_edge_answer("over budget", &r, 503);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.header("connection"), Some("close"));
}
