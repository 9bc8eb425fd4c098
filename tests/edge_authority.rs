//! One authority per request (RFC 9112 section 3.2): raw HTTP/1.1 bytes with two Host headers,
//! an absolute-form target that disagrees with Host, and malformed hosts. Routing, Basic Auth,
//! the address policy, `X-Forwarded-Host` and the Host the app sees all follow the same
//! authority: the target's when it is absolute, else the single Host header.

mod common;

use std::sync::atomic::Ordering;

use base64::Engine;
use common::*;
use underpass::client::HttpExpose;

/// `a` (open), `locked` (Basic Auth) and `walled` (refuses loopback visitors) under
/// [`DOMAIN`], each leading to an echo app labelled with its name.
struct Hosts {
    demo: Demo,
    _bindings: Vec<underpass::client::Binding>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn hosts() -> Hosts {
    let (port, hits) = counting_app("app").await;
    let demo = demo(port).await;
    let locked = HttpExpose {
        basic_auth_password: Some("pw-for-locked".into()),
        ..named("locked")
    };
    let walled = HttpExpose {
        cidr_deny: vec!["loopback".into()],
        ..named("walled")
    };
    let mut bindings = Vec::new();
    for expose in [named("a"), locked, walled] {
        bindings.push(demo.client.expose_http(port, &expose).await.unwrap());
    }
    Hosts {
        demo,
        _bindings: bindings,
        hits,
    }
}

fn basic(user: &str, pass: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {encoded}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_400_and_never_reach_the_app() {
    let h = hosts().await;
    let addr = h.demo.addr();
    for request in [
        "GET / HTTP/1.1\r\nHost: a.example.test\r\nHost: demo.example.test\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example.test\r\nHost: a.example.test\r\nConnection: close\r\n\r\n",
        // Absolute form does not excuse a second Host line either.
        "GET http://a.example.test/ HTTP/1.1\r\nHost: a.example.test\r\nHost: b.example.test\r\nConnection: close\r\n\r\n",
    ] {
        let r = raw_http(addr, request).await;
        assert_eq!(r.status, 400, "{request:?}: {}", r.body);
        assert!(r.body.contains("Host"), "{}", r.body);
    }
    assert_eq!(
        h.hits.load(Ordering::SeqCst),
        0,
        "a refused request reached the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_missing_hosts_are_400() {
    let h = hosts().await;
    let addr = h.demo.addr();
    for request in [
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example.test, demo.example.test\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example.test/x\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@a.example.test\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example.test:99999\r\nConnection: close\r\n\r\n",
        "GET http://user:pw@a.example.test/ HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n",
    ] {
        let r = raw_http(addr, request).await;
        assert_eq!(r.status, 400, "{request:?}: {}", r.body);
    }
    assert_eq!(h.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_target_is_the_authority_the_app_sees() {
    let h = hosts().await;
    let addr = h.demo.addr();
    let r = raw_http(
        addr,
        "GET http://A.Example.Test/x?q=1 HTTP/1.1\r\nHost: demo.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(seen["target"], "/x?q=1");
    assert_eq!(seen_one(&seen, "host").as_deref(), Some("A.Example.Test"));
    assert_eq!(
        seen_one(&seen, "x-forwarded-host").as_deref(),
        Some("A.Example.Test")
    );

    // A port in the target stays in the Host the app sees.
    let r = raw_http(
        addr,
        "GET http://a.example.test:8080/ HTTP/1.1\r\nHost: demo.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        seen_one(&r.json(), "host").as_deref(),
        Some("a.example.test:8080")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_address_policy_follow_the_absolute_target() {
    let h = hosts().await;
    let addr = h.demo.addr();
    // The target names the locked route, Host an open one: the lock applies.
    let r = raw_http(
        addr,
        "GET http://locked.example.test/ HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let right = basic("any", "pw-for-locked");
    let r = raw_http(
        addr,
        &format!(
            "GET http://locked.example.test/ HTTP/1.1\r\nHost: a.example.test\r\nAuthorization: {right}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        seen_one(&r.json(), "host").as_deref(),
        Some("locked.example.test")
    );

    // The target names the walled route: its policy refuses us whatever Host says.
    let r = raw_http(
        addr,
        "GET http://walled.example.test/ HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // The other way round: the target is open, Host names the locked route; the app gets
    // the open route's authority and no Basic Auth is asked.
    let r = raw_http(
        addr,
        "GET http://a.example.test/ HTTP/1.1\r\nHost: locked.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        seen_one(&r.json(), "host").as_deref(),
        Some("a.example.test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_host_reaches_the_app_as_sent() {
    let h = hosts().await;
    let r = raw_http(
        h.demo.addr(),
        "GET / HTTP/1.1\r\nHost: a.example.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(
        seen_one(&seen, "host").as_deref(),
        Some("a.example.test:8080")
    );
    assert_eq!(
        seen_one(&seen, "x-forwarded-host").as_deref(),
        Some("a.example.test:8080")
    );
}
