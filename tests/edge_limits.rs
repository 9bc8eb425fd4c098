//! Per-address limits at the edge, driven from two loopback source addresses (127.0.0.1 and
//! 127.0.0.2) with raw sockets: Basic Auth failures are throttled per address (429 with
//! `Retry-After`, and nothing is checked while throttled), and one address cannot hold more
//! than `--max-connections-per-ip` connections.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use underpass::client::HttpExpose;

const ONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const TWO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

fn get_request(host: &str, password: Option<&str>) -> String {
    let auth = password
        .map(|p| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("u:{p}"));
            format!("Authorization: Basic {encoded}\r\n")
        })
        .unwrap_or_default();
    format!("GET / HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_basic_auth_failures_from_one_address_get_429() {
    let demo = demo(echo_app("open").await).await;
    let locked = HttpExpose {
        basic_auth_password: Some("right-password".into()),
        ..named("locked")
    };
    let _b = demo
        .client
        .expose_http(echo_app("locked").await, &locked)
        .await
        .unwrap();
    let addr = demo.addr();
    let host = "locked.example.test";

    // Without credentials a visitor is only challenged: that is not a failure.
    for _ in 0..20 {
        assert_eq!(
            raw_http_from(Some(ONE), addr, &get_request(host, None))
                .await
                .status,
            401
        );
    }
    let mut statuses = Vec::new();
    for i in 0..12 {
        let wrong = format!("wrong-{i}");
        let r = raw_http_from(Some(ONE), addr, &get_request(host, Some(&wrong))).await;
        statuses.push(r.status);
        if r.status == 429 {
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "retry-after {retry}");
        }
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");

    // While throttled, even the right password is not checked (it would tell a guesser).
    let r = raw_http_from(Some(ONE), addr, &get_request(host, Some("right-password"))).await;
    assert_eq!(r.status, 429, "{}", r.body);
    // Other addresses and other routes are not affected.
    let r = raw_http_from(Some(TWO), addr, &get_request(host, Some("right-password"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw_http_from(Some(TWO), addr, &get_request(host, Some("wrong"))).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = raw_http_from(Some(ONE), addr, &get_request(DEMO_HOST, None)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// An idle connection from `from`: it has sent nothing yet.
async fn idle(from: IpAddr, addr: SocketAddr) -> tokio::net::TcpStream {
    connect_from(Some(from), addr).await
}

/// What a connection gets when it sends a request: its status, or `None` when the server
/// closed it without an answer.
async fn status_of(mut tcp: tokio::net::TcpStream, host: &str) -> Option<u16> {
    let _ = tcp.write_all(get_request(host, None).as_bytes()).await;
    let mut raw = Vec::new();
    let _ = within(10, tcp.read_to_end(&mut raw)).await;
    (!raw.is_empty()).then(|| parse_reply(&raw).status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_connection_cap() {
    let server = server_with(|cfg| {
        cfg.domain = Some(DOMAIN.into());
        cfg.limits.max_connections_per_ip = 3;
    })
    .await;
    let addr = server.local_addr();
    // The client's one carrier comes from 127.0.0.1 too and counts.
    let client = client_with(
        underpass::client::ClientOptions::new(server.control_url(), TOKEN).connections(1),
    )
    .await;
    let _b = client
        .expose_http(echo_app("app").await, &named("demo"))
        .await
        .unwrap();
    let held = [idle(ONE, addr).await, idle(ONE, addr).await];

    let over = idle(ONE, addr).await;
    assert_eq!(status_of(over, DEMO_HOST).await, Some(429));
    // Another address is not affected.
    assert_eq!(status_of(idle(TWO, addr).await, DEMO_HOST).await, Some(200));

    // A freed slot is usable again.
    drop(held);
    within(10, async {
        loop {
            if status_of(idle(ONE, addr).await, DEMO_HOST).await == Some(200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_covers_tcp_ports_and_spares_trusted_proxies() {
    let server = server_with(|cfg| {
        cfg.domain = Some(DOMAIN.into());
        cfg.limits.max_connections_per_ip = 2;
        cfg.trusted_proxies =
            underpass::http::edge::trusted_proxy::TrustedProxies::parse(&["127.0.0.2"]).unwrap();
    })
    .await;
    let client = client_with(
        underpass::client::ClientOptions::new(server.control_url(), TOKEN).connections(1),
    )
    .await;
    let tcp = client
        .expose_tcp(echo_server().await.port(), 0)
        .await
        .unwrap();
    let port_addr = SocketAddr::from(([127, 0, 0, 1], tcp.container_port()));
    let _b = client
        .expose_http(echo_app("app").await, &named("demo"))
        .await
        .unwrap();

    // 127.0.0.1 holds its carrier and one tcp connection: the next is closed at once.
    let mut first = connect_from(Some(ONE), port_addr).await;
    first.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    within(10, first.read_exact(&mut echoed)).await.unwrap();
    let mut second = connect_from(Some(ONE), port_addr).await;
    let _ = second.write_all(b"ping").await;
    let mut rest = Vec::new();
    let n = within(10, second.read_to_end(&mut rest)).await;
    assert!(
        matches!(n, Ok(0)) || n.is_err(),
        "over the cap: closed, got {rest:?}"
    );

    // A trusted proxy (127.0.0.2) carries many visitors: it is not capped.
    let proxies: Vec<_> =
        futures_util::future::join_all((0..4).map(|_| idle(TWO, server.local_addr()))).await;
    assert_eq!(
        status_of(idle(TWO, server.local_addr()).await, DEMO_HOST).await,
        Some(200)
    );
    drop(proxies);
}
