//! The edge in front of the apps: Basic Auth, forwarded-header trust, hop-by-hop hygiene,
//! health probes and reserved paths, and the 502/504 a visitor gets when the app fails.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::Value;
use underpass::client::{ClientOptions, HttpExpose};
use underpass::http::edge::trusted_proxy::TrustedProxies;

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_the_route_and_is_stripped_before_the_app() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let (port, hits) = counting_app("app").await;
        let any_user = HttpExpose {
            basic_auth_password: Some("s3cret".into()),
            ..named("demo")
        };
        let _a = client.expose_http(port, &any_user).await.unwrap();
        let alice_only = HttpExpose {
            basic_auth_username: Some("alice".into()),
            basic_auth_password: Some("s3cret".into()),
            ..named("alice")
        };
        let _b = client.expose_http(port, &alice_only).await.unwrap();

        let challenge = |r: &Reply| {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
            assert_eq!(
                r.headers[header::WWW_AUTHENTICATE],
                "Basic realm=\"underpass\""
            );
            assert!(r.text().contains("authentication required"), "{}", r.text());
        };
        challenge(&get(addr, DEMO_HOST, "/").await);
        let wrong = basic("bob", "nope");
        let r = get_with(addr, DEMO_HOST, "/", &[("authorization", &wrong)]).await;
        challenge(&r);
        let r = get_with(addr, DEMO_HOST, "/", &[("authorization", "Bearer s3cret")]).await;
        challenge(&r);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "refused requests reached the app"
        );

        // Any username with the right password; the app never sees the credentials.
        let right = basic("bob", "s3cret");
        let r = get_with(addr, DEMO_HOST, "/", &[("authorization", &right)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(seen(&r.json(), "authorization").is_empty());

        // With a username set, the wrong one is refused even with the right password.
        let host = "alice.example.test";
        let r = get_with(addr, host, "/", &[("authorization", &right)]).await;
        challenge(&r);
        let alice = basic("alice", "s3cret");
        let r = get_with(addr, host, "/", &[("authorization", &alice)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert!(seen(&r.json(), "authorization").is_empty());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_basic_auth_the_app_sees_the_visitors_authorization() {
    within(20, async {
        let demo = demo(echo_app("app").await).await;
        let r = get_with(
            demo.addr(),
            DEMO_HOST,
            "/",
            &[("authorization", "Bearer app-token")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            seen_one(&r.json(), "authorization").as_deref(),
            Some("Bearer app-token")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_service_down_is_502_naming_the_port() {
    within(20, async {
        let port = unused_addr().port();
        let demo = demo(port).await;
        let addr = demo.addr();
        let r = get(addr, DEMO_HOST, "/").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
        assert!(
            r.text().contains(&format!("port {port}")),
            "body names the port: {}",
            r.text()
        );
        // The tunnel still works for the next request (the stream was answered, not wedged).
        let r = get(addr, DEMO_HOST, "/again").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        // A WebSocket upgrade to the dead port gets the same 502. (Read with hyper, which reads
        // the whole body; a WebSocket client keeps only what arrived with the head.)
        let upgrade = [
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let r = request(addr, Method::GET, DEMO_HOST, "/ws", &upgrade, "").await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
        assert!(r.text().contains(&format!("port {port}")), "{}", r.text());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_that_never_answers_is_504() {
    within(20, async {
        let server = server_with(|cfg| {
            cfg.domain = Some(DOMAIN.into());
            cfg.limits.response_timeout = Duration::from_millis(300);
        })
        .await;
        let client = client(&server).await;
        let port = app(|_req| std::future::pending::<Response<AppBody>>()).await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let started = Instant::now();
        let r = get(server.local_addr(), DEMO_HOST, "/slow").await;
        assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(
            r.text().contains("did not respond within 300 ms"),
            "{}",
            r.text()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_headers_are_ignored_without_trusted_proxies() {
    within(20, async {
        let demo = demo(echo_app("app").await).await;
        let addr = demo.addr();
        let r = get_with(
            addr,
            DEMO_HOST,
            "/",
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-host", "evil.example.test"),
                ("x-forwarded-proto", "https"),
                ("x-real-ip", "1.2.3.4"),
                ("forwarded", "for=1.2.3.4"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let v = r.json();
        assert_eq!(seen(&v, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(seen(&v, "x-forwarded-host"), [DEMO_HOST]);
        assert_eq!(seen(&v, "x-forwarded-proto"), ["http"]);
        assert!(seen(&v, "forwarded").is_empty());
        assert!(seen(&v, "x-real-ip").iter().all(|ip| ip == "127.0.0.1"));

        // An untrusted X-Forwarded-Host is not used for routing either.
        let r = get_with(
            addr,
            &addr.to_string(),
            "/",
            &[("x-forwarded-host", DEMO_HOST)],
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_chain_is_honoured_and_its_host_routes() {
    within(20, async {
        let server = server_with(|cfg| {
            cfg.domain = Some(DOMAIN.into());
            cfg.trusted_proxies = TrustedProxies::parse(&["loopback"]).unwrap();
        })
        .await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let port = echo_app("app").await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let public_host = addr.to_string();
        let r = get_with(
            addr,
            &public_host,
            "/",
            &[
                ("x-forwarded-for", "198.51.100.7"),
                ("x-forwarded-host", DEMO_HOST),
                ("x-forwarded-proto", "https"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(seen(&v, "x-forwarded-for"), ["198.51.100.7, 127.0.0.1"]);
        assert_eq!(seen(&v, "x-forwarded-host"), [DEMO_HOST]);
        assert_eq!(seen(&v, "x-forwarded-proto"), ["https"]);
        // The Host header still reaches the app as the visitor sent it.
        assert_eq!(seen(&v, "host"), [public_host]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    within(20, async {
        let server = domain_server().await;
        let client =
            client_with(ClientOptions::new(server.control_url(), TOKEN).connections(1)).await;
        let port = app(|req| async move {
            let mut resp = json_response(describe("app", req).await);
            let h = resp.headers_mut();
            h.insert(header::CONNECTION, HeaderValue::from_static("x-app-secret"));
            h.insert("x-app-secret", HeaderValue::from_static("1"));
            h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
            h.insert("x-app-public", HeaderValue::from_static("yes"));
            resp
        })
        .await;
        let _binding = client.expose_http(port, &named("demo")).await.unwrap();
        let r = get_with(
            server.local_addr(),
            DEMO_HOST,
            "/",
            &[
                ("connection", "x-secret"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5, max=100"),
                ("proxy-connection", "keep-alive"),
                ("te", "trailers"),
                ("x-public", "yes"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        for name in ["x-secret", "keep-alive", "proxy-connection", "te"] {
            assert!(seen(&v, name).is_empty(), "the app saw {name}: {v}");
        }
        assert!(
            seen(&v, "connection")
                .iter()
                .all(|c| !c.to_ascii_lowercase().contains("x-secret")),
            "{v}"
        );
        assert_eq!(seen(&v, "x-public"), ["yes"]);

        for name in ["x-app-secret", "keep-alive", "proxy-connection"] {
            assert!(!r.headers.contains_key(name), "the visitor got {name}");
        }
        for c in r.headers.get_all(header::CONNECTION) {
            assert!(!c.to_str().unwrap().contains("x-app-secret"));
        }
        assert_eq!(r.headers["x-app-public"], "yes");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_and_reserved_paths_are_never_proxied() {
    within(20, async {
        let server = domain_server().await;
        let addr = server.local_addr();
        let client = client(&server).await;
        let (port, hits) = counting_app("root").await;
        let _root = client.expose_http(port, &named("@")).await.unwrap();
        let _demo = client.expose_http(port, &named("demo")).await.unwrap();

        for path in ["/__underpass__/health/live", "/__underpass__/health/ready"] {
            for host in [DOMAIN, DEMO_HOST, "unknown.host"] {
                let r = get(addr, host, path).await;
                assert_eq!(r.status, StatusCode::OK, "{path} {host}");
                assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(v["status"], "ok");
            }
            let r = request(addr, Method::HEAD, DOMAIN, path, &[], "").await;
            assert_eq!(r.status, StatusCode::OK, "HEAD {path}");
            assert!(r.body.is_empty());
            let r = request(addr, Method::POST, DOMAIN, path, &[], "x").await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "POST {path}");
            assert_eq!(r.headers[header::ALLOW], "GET, HEAD");
        }
        for path in [
            "/__underpass__/anything",
            "/__underpass__/health/other",
            "/__underpass__/",
        ] {
            for host in [DOMAIN, DEMO_HOST] {
                let r = get(addr, host, path).await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{path} {host}");
                assert!(r.text().starts_with("underpass:"), "{}", r.text());
            }
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "a reserved path reached the app"
        );
        // The routes do exist.
        assert_eq!(
            get(addr, DOMAIN, "/__underpass").await.status,
            StatusCode::OK
        );
        assert_eq!(get(addr, DEMO_HOST, "/x").await.status, StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    })
    .await;
}
