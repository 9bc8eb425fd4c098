//! `--cidr-allow` and `--cidr-deny`: an expose admits only visitors from the allowed addresses
//! and never those denied. HTTP visitors refused get 403 (judged by the address the edge
//! believes, so behind a trusted proxy the forwarded one); TCP visitors are disconnected.
//! Cluster holders must agree; pull and forward refuse a policy; a malformed entry is refused
//! with its own code.

mod common;

use std::net::SocketAddr;

use common::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use underpass::client::{ClientError, HttpExpose, StreamHandler, TcpExpose};
use underpass::http::edge::trusted_proxy::TrustedProxies;
use underpass::proto::{Bind, BindErrorCode, BindKind, BindMode};

fn allowing(route: &str, cidrs: &[&str]) -> HttpExpose {
    HttpExpose {
        cidr_allow: cidrs.iter().map(|c| c.to_string()).collect(),
        ..named(route)
    }
}

fn bind_error(r: Result<underpass::client::Binding, ClientError>) -> BindErrorCode {
    match r {
        Err(ClientError::Bind { code, .. }) => code,
        other => panic!("expected BIND_ERR, got {other:?}"),
    }
}

#[tokio::test]
async fn http_visitors_outside_the_list_get_403() {
    let server = domain_server().await;
    let client = client(&server).await;
    let port = echo_app("app").await;
    let _closed = client
        .expose_http(port, &allowing("office", &["10.0.0.0/8"]))
        .await
        .unwrap();
    let _open = client
        .expose_http(port, &allowing("local", &["loopback"]))
        .await
        .unwrap();
    let r = get(server.local_addr(), "office.example.test", "/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("127.0.0.1"), "{}", r.text());
    let r = get(server.local_addr(), "local.example.test", "/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_judged() {
    let server = server_with(|cfg| {
        cfg.domain = Some(DOMAIN.into());
        cfg.trusted_proxies = TrustedProxies::parse(&["loopback"]).unwrap();
    })
    .await;
    let client = client(&server).await;
    let port = echo_app("app").await;
    let _b = client
        .expose_http(port, &allowing("office", &["203.0.113.0/24"]))
        .await
        .unwrap();
    let addr = server.local_addr();
    let from = |ip: &'static str| async move {
        request(
            addr,
            Method::GET,
            "office.example.test",
            "/",
            &[("x-forwarded-for", ip)],
            "",
        )
        .await
        .status
    };
    assert_eq!(from("203.0.113.9").await, StatusCode::OK);
    assert_eq!(from("198.51.100.1").await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tcp_visitors_outside_the_list_are_disconnected() {
    let server = server().await;
    let client = client(&server).await;
    let echo = echo_server().await;
    let mut closed = TcpExpose::at(echo);
    closed.cidr_allow = vec!["10.0.0.0/8".into()];
    let closed = client.expose_tcp_with(&closed).await.unwrap();
    let mut open = TcpExpose::at(echo);
    open.cidr_allow = vec!["127.0.0.1".into()];
    let open = client.expose_tcp_with(&open).await.unwrap();

    let at =
        |b: &underpass::client::Binding| SocketAddr::from(([127, 0, 0, 1], b.container_port()));
    let mut refused = TcpStream::connect(at(&closed)).await.unwrap();
    let _ = refused.write_all(b"hello").await;
    let mut got = Vec::new();
    let read = within(10, refused.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "nothing comes back: {read:?} {got:?}");
    assert_eq!(tcp_roundtrip(at(&open), b"hello").await, b"hello");
}

#[tokio::test]
async fn cluster_holders_must_agree_and_loopback_bindings_refuse_it() {
    let server = domain_server().await;
    let a = client(&server).await;
    let b = client(&server).await;
    let port = echo_app("app").await;
    let spec = |cidrs: &[&str]| HttpExpose {
        cidr_allow: cidrs.iter().map(|c| c.to_string()).collect(),
        ..cluster("shared")
    };
    let _first = a.expose_http(port, &spec(&["10.0.0.0/8"])).await.unwrap();
    let r = b.expose_http(port, &spec(&["192.168.0.0/16"])).await;
    assert_eq!(bind_error(r), BindErrorCode::ModeMismatch);
    let _same = b.expose_http(port, &spec(&["10.0.0.0/8"])).await.unwrap();

    let echo = echo_server().await;
    let pull = Bind {
        cidr_allow: Some(vec!["10.0.0.0/8".into()]),
        ..raw_bind(BindKind::Tcp, BindMode::Pull, 0)
    };
    let r = a.bind(pull, StreamHandler::Tcp(echo)).await;
    assert_eq!(bind_error(r), BindErrorCode::InvalidKind);
    // A foreign client that skips validation gets its own code for a malformed entry.
    let bad = Bind {
        cidr_allow: Some(vec!["10.0.0.0/33".into()]),
        ..raw_bind(BindKind::Tcp, BindMode::Expose, 0)
    };
    let r = a.bind(bad, StreamHandler::Tcp(echo)).await;
    assert_eq!(bind_error(r), BindErrorCode::InvalidPolicy);
}

#[tokio::test]
async fn a_deny_list_refuses_its_addresses_over_http_and_tcp() {
    let server = domain_server().await;
    let client = client(&server).await;
    let port = echo_app("app").await;
    let denied = HttpExpose {
        cidr_deny: vec!["127.0.0.0/8".into()],
        ..named("denied")
    };
    let _d = client.expose_http(port, &denied).await.unwrap();
    let others = HttpExpose {
        cidr_deny: vec!["198.51.100.0/24".into()],
        ..named("others")
    };
    let _o = client.expose_http(port, &others).await.unwrap();
    let r = get(server.local_addr(), "denied.example.test", "/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let r = get(server.local_addr(), "others.example.test", "/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let echo = echo_server().await;
    let mut spec = TcpExpose::at(echo);
    // Allowed by the first list, refused by the second: deny wins.
    spec.cidr_allow = vec!["loopback".into()];
    spec.cidr_deny = vec!["127.0.0.1".into()];
    let b = client.expose_tcp_with(&spec).await.unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", b.container_port()))
        .await
        .unwrap();
    let _ = tcp.write_all(b"hello").await;
    let mut got = Vec::new();
    let _ = within(10, tcp.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "{got:?}");
}
