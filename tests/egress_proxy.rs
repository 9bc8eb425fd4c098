//! Clients behind an egress proxy, through the binary and a real tinyproxy: `--proxy` and the
//! `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` variables, CONNECT for ws and wss, Basic
//! credentials, a 407 that ends the client at once, and QUIC saying it does not use the proxy.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{
    final_error, get, retrying, server_process, spawn, tls_front, unused_addr, within, Proc,
    TestCa, Tinyproxy, TOKEN,
};
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncBufReadExt, BufReader};

const USER: &str = "alice";
const PASSWORD: &str = "pr0xy-s3cret";

async fn app() -> u16 {
    common::app(|_req| async { Response::new(Full::new(Bytes::from("behind the proxy"))) }).await
}

fn http<'a>(port: &'a str, url: &'a str, route: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "http",
        port,
        "--server",
        url,
        "--token",
        TOKEN,
        "--subdomain",
        route,
    ];
    args.extend_from_slice(extra);
    args
}

async fn wait_routed(addr: SocketAddr, host: &str) -> String {
    within(30, async {
        loop {
            let r = get(addr, host, "/").await;
            if r.status == StatusCode::OK {
                return r.text();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

async fn domain_server() -> (Proc, SocketAddr) {
    server_process(&["--token", TOKEN, "--domain", "example.test"], &[]).await
}

#[tokio::test]
async fn ws_and_wss_carriers_go_through_the_proxy_with_connect() {
    let proxy = Tinyproxy::start(None).await;
    let (_server, addr) = domain_server().await;
    let port = app().await.to_string();
    let url = format!("ws://{addr}");

    // --proxy, 4 carriers: each is one CONNECT.
    let mut a = spawn(
        &http(&port, &url, "flag", &["--proxy", &proxy.url(None)]),
        &[],
    );
    a.expect_line("public: ").await;
    assert_eq!(
        wait_routed(addr, "flag.example.test").await,
        "behind the proxy"
    );
    assert!(proxy.connects_to(addr) >= 4, "{}", proxy.daemon.output());

    // HTTP_PROXY for ws://, lowercase too.
    for var in ["HTTP_PROXY", "http_proxy"] {
        let before = proxy.connects_to(addr);
        let route = if var == "HTTP_PROXY" {
            "upper"
        } else {
            "lower"
        };
        let mut p = spawn(&http(&port, &url, route, &[]), &[(var, &proxy.url(None))]);
        p.expect_line("public: ").await;
        assert!(
            proxy.connects_to(addr) > before,
            "{var}: {}",
            proxy.daemon.output()
        );
    }

    // HTTPS_PROXY for wss://: CONNECT, then TLS to the server through the tunnel.
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("proxy test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let front = tls_front(&ca.leaf(&["127.0.0.1"]), addr).await;
    let wss = format!("wss://{front}");
    let mut p = spawn(
        &http(&port, &wss, "tls", &["--ca", ca_file.to_str().unwrap()]),
        &[("HTTPS_PROXY", &proxy.url(None))],
    );
    p.expect_line("public: https://").await;
    assert_eq!(
        wait_routed(addr, "tls.example.test").await,
        "behind the proxy"
    );
    assert!(proxy.connects_to(front) >= 1, "{}", proxy.daemon.output());

    // NO_PROXY names the server, and --proxy none ignores the variables: straight there.
    let before = proxy.connects_to(addr);
    let mut p = spawn(
        &http(&port, &url, "noproxy", &[]),
        &[
            ("HTTP_PROXY", &proxy.url(None)),
            ("NO_PROXY", "localhost,127.0.0.0/8"),
        ],
    );
    p.expect_line("public: ").await;
    let mut q = spawn(
        &http(&port, &url, "none", &["--proxy", "none"]),
        &[("HTTP_PROXY", &proxy.url(None))],
    );
    q.expect_line("public: ").await;
    assert_eq!(
        wait_routed(addr, "none.example.test").await,
        "behind the proxy"
    );
    assert_eq!(proxy.connects_to(addr), before, "{}", proxy.daemon.output());
}

#[tokio::test]
async fn proxy_credentials_work_and_a_407_is_final_without_leaking_them() {
    let proxy = Tinyproxy::start(Some((USER, PASSWORD))).await;
    let (_server, addr) = domain_server().await;
    let port = app().await.to_string();
    let url = format!("ws://{addr}");

    let with = proxy.url(Some((USER, PASSWORD)));
    let mut p = spawn(
        &http(&port, &url, "auth", &["--proxy", &with]),
        &[("RUST_LOG", "debug")],
    );
    p.expect_line("public: ").await;
    assert_eq!(
        wait_routed(addr, "auth.example.test").await,
        "behind the proxy"
    );
    // Everything it logged at debug level so far, without the password.
    let mut stderr = BufReader::new(p.child.stderr.take().unwrap()).lines();
    p.child.start_kill().unwrap();
    let mut logged = String::new();
    while let Ok(Some(line)) = within(20, stderr.next_line()).await {
        logged.push_str(&line);
        logged.push('\n');
    }
    assert!(logged.contains("dialing through the proxy"), "{logged}");
    assert!(
        !logged.contains(PASSWORD),
        "the proxy password was logged:\n{logged}"
    );

    let line = final_error(
        &http(&port, &url, "noauth", &["--proxy", &proxy.url(None)]),
        &[],
    )
    .await;
    assert!(line.contains("407 Proxy Authentication Required"), "{line}");
    assert!(
        line.contains("--proxy http://USER:PASS@HOST:PORT"),
        "{line}"
    );

    let wrong = proxy.url(Some((USER, "not-the-password")));
    let line = final_error(
        &http(&port, &url, "wrong", &[]),
        &[("HTTP_PROXY", &wrong), ("RUST_LOG", "debug")],
    )
    .await;
    assert!(line.contains("refused the user and password"), "{line}");
    assert!(!line.contains("not-the-password"), "{line}");
}

#[tokio::test]
async fn a_proxy_that_cannot_reach_the_server_is_retried() {
    let proxy = Tinyproxy::start(None).await;
    let url = format!("ws://{}", unused_addr());
    let (_p, seen) = retrying(
        &[
            "http",
            "3000",
            "--server",
            &url,
            "--token",
            TOKEN,
            "--proxy",
            &proxy.url(None),
        ],
        &[],
        1,
    )
    .await;
    assert!(seen[0].contains("answered CONNECT"), "{seen:?}");
}

#[cfg(feature = "quic")]
#[tokio::test]
async fn quic_ignores_the_proxy_and_says_so_once() {
    let (mut server, addr) = server_process(
        &[
            "--token",
            TOKEN,
            "--domain",
            "example.test",
            "--quic-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    let quic = server.expect_line("quic: ").await;
    let pin = server.expect_line("quic-cert-sha256: ").await;
    let port = app().await.to_string();
    let mut p = spawn(
        &http(
            &port,
            &quic,
            "quic",
            &[
                "--server-cert-sha256",
                &pin,
                "--proxy",
                "http://127.0.0.1:9",
            ],
        ),
        &[],
    );
    p.expect_line("public: ").await;
    assert_eq!(
        wait_routed(addr, "quic.example.test").await,
        "behind the proxy"
    );
    p.child.start_kill().unwrap();
    let out = within(20, p.child.wait_with_output()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("the proxy is not used").count(),
        1,
        "{stderr}"
    );
}
