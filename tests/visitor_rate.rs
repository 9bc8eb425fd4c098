//! `--visitor-rate`: one visitor address may start only so many requests or TCP connections per
//! second; past that it gets 429 (HTTP) or a closed connection (TCP), while other addresses,
//! including distinct clients behind a trusted proxy, keep their own budgets.

mod common;

use std::net::SocketAddr;
use std::num::NonZeroU32;

use common::*;
use http::{header, Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use underpass::http::edge::trusted_proxy::TrustedProxies;
use underpass::server::Server;

/// Two starts per visitor and second.
async fn limited(trusted: &[&str]) -> Server {
    server_with(|cfg| {
        cfg.domain = Some(DOMAIN.into());
        cfg.limits.visitor_rate = NonZeroU32::new(2);
        cfg.trusted_proxies = TrustedProxies::parse(trusted).unwrap();
    })
    .await
}

#[tokio::test]
async fn a_flooding_visitor_gets_429_with_retry_after() {
    let server = limited(&[]).await;
    let client = client(&server).await;
    let _b = client
        .expose_http(echo_app("app").await, &named("demo"))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let r = get(server.local_addr(), DEMO_HOST, "/").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers[header::RETRY_AFTER], "1");
            assert!(r.text().contains("too many requests"), "{}", r.text());
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], StatusCode::OK);
    // 30 requests cannot all fit in a budget of 2 per second unless they took 15 s.
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Health probes are not visitors.
    for _ in 0..10 {
        let r = get(server.local_addr(), "x", "/__underpass__/health/live").await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_have_their_own_budgets() {
    let server = limited(&["loopback"]).await;
    let client = client(&server).await;
    let _b = client
        .expose_http(echo_app("app").await, &named("demo"))
        .await
        .unwrap();
    for i in 0..10 {
        let ip = format!("203.0.113.{i}");
        let r = request(
            server.local_addr(),
            Method::GET,
            DEMO_HOST,
            "/",
            &[("x-forwarded-for", &ip)],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{ip}: {}", r.text());
    }
}

#[tokio::test]
async fn a_flooding_tcp_visitor_is_disconnected() {
    let server = limited(&[]).await;
    let client = client(&server).await;
    let b = client
        .expose_tcp(echo_server().await.port(), 0)
        .await
        .unwrap();
    let public = SocketAddr::from(([127, 0, 0, 1], b.container_port()));
    let mut echoed = 0;
    for _ in 0..30 {
        let mut tcp = TcpStream::connect(public).await.unwrap();
        let _ = tcp.write_all(b"ping").await;
        let mut back = Vec::new();
        let _ = within(10, async {
            let _ = tcp.shutdown().await;
            tcp.read_to_end(&mut back).await
        })
        .await;
        if back == b"ping" {
            echoed += 1;
        }
    }
    assert!(echoed >= 1, "the first connections pass");
    assert!(echoed < 30, "not all 30 within the budget");
}
