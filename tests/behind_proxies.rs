//! The first real deployment, end to end: an underpass server behind a real nginx and a real
//! Caddy (Debian packages, configured with the README's blocks) that terminate TLS, a client
//! binary over `wss://` trusting the proxy's CA with `--ca`, and visitors over https: GET, a
//! POST body, a 30 MB download, SSE delivered event by event, a WebSocket echo,
//! `X-Forwarded-Proto: https` at the app, the `public:` line with `https://`, and a session that
//! resumes after the proxy restarts. Caddy runs twice: with the test's CA, and with its own
//! (`tls internal`, the client trusting Caddy's root from its data directory).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, Method, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use common::{
    build, command, describe, empty_body, full_body, json_response, next_chunk, pattern, seen_one,
    server_process, sse_response, unused_addr, within, ws_upgrade_response, AppBody, Caddy,
    CaddyTls, Daemon, HttpsVisitor, Nginx, Proc, TestCa, EVENT_ONE, EVENT_TWO, TOKEN,
};

/// The size of the download.
const BIG: usize = 30 << 20;
/// The size of the upload: over nginx's default 1 MB body limit.
const UPLOAD: usize = 3 << 20;

/// The app behind the tunnel: `/sse` (event two waits for the notifier), `/big` (30 MB),
/// `/upload` (answers the length and a checksum of the body), WebSocket upgrades (echo), and a
/// description of anything else.
async fn app() -> (u16, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let big = Bytes::from(pattern(BIG, 9));
    let r = release.clone();
    let port = common::app(move |req| {
        let release = r.clone();
        let big = big.clone();
        async move {
            if req.headers().contains_key(header::UPGRADE) {
                return ws_upgrade_response(req);
            }
            match req.uri().path() {
                "/sse" => sse_response(release),
                "/big" => {
                    let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..BIG)
                        .step_by(64 << 10)
                        .map(|at| Ok(Frame::data(big.slice(at..(at + (64 << 10)).min(BIG)))))
                        .collect();
                    let body: AppBody =
                        BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)));
                    Response::new(body)
                }
                "/upload" => {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    json_response(serde_json::json!({
                        "len": body.len(),
                        "sum": body.iter().map(|b| u64::from(*b)).sum::<u64>(),
                    }))
                }
                _ => json_response(describe("deployed", req).await),
            }
        }
    })
    .await;
    (port, release)
}

/// The underpass server as the README deploys it behind a proxy.
async fn underpass_server() -> (Proc, SocketAddr) {
    server_process(
        &[
            "--domain",
            "example.test",
            "--trusted-proxy",
            "loopback",
            "--token",
            TOKEN,
        ],
        &[],
    )
    .await
}

/// `underpass http APP --server wss://127.0.0.1:FRONT --ca CA`, logging at info; returns once
/// it printed its public URL, which must be https on the proxy's port.
async fn client(app: u16, front: SocketAddr, ca: &Path) -> Daemon {
    let app = app.to_string();
    let url = format!("wss://{front}");
    let cmd = command(
        &[
            "http",
            &app,
            "--server",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--token",
            TOKEN,
            "--subdomain",
            "demo",
        ],
        &[("RUST_LOG", "info")],
    );
    let mut client = Daemon::start("underpass http", cmd);
    client
        .wait_output(&format!(
            "public: https://demo.example.test:{}",
            front.port()
        ))
        .await;
    client
}

/// Polls until the route answers 200 through the proxy (the client may still be connecting or
/// resuming: the server answers 503 meanwhile).
async fn wait_serving(v: &HttpsVisitor, host: &str) {
    within(60, async {
        loop {
            let r = v
                .send(build(Method::GET, host, "/ready", &[], empty_body()))
                .await;
            if r.status == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// Everything a visitor does through the proxy at `front`.
async fn visit(v: &HttpsVisitor, front: SocketAddr, release: &Notify) {
    let host = format!("demo.example.test:{}", front.port());
    wait_serving(v, &host).await;

    let r = v
        .send(build(Method::GET, &host, "/page?q=1", &[], empty_body()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = r.json();
    assert_eq!(seen["target"], "/page?q=1");
    assert_eq!(
        seen_one(&seen, "x-forwarded-proto").as_deref(),
        Some("https")
    );
    // The visitor (as the proxy saw it), then the proxy itself.
    assert_eq!(
        seen_one(&seen, "x-forwarded-for").as_deref(),
        Some("127.0.0.1, 127.0.0.1")
    );

    let upload = pattern(UPLOAD, 3);
    let sum: u64 = upload.iter().map(|b| u64::from(*b)).sum();
    let r = v
        .send(build(
            Method::POST,
            &host,
            "/upload",
            &[],
            full_body(upload),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["len"], UPLOAD);
    assert_eq!(r.json()["sum"], sum);

    let r = v
        .send(build(Method::GET, &host, "/big", &[], empty_body()))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), BIG);
    assert!(r.body == pattern(BIG, 9), "the download arrived changed");

    // SSE: the app sends event two only once the visitor has event one, so a proxy that
    // buffers the stream never delivers anything and the step times out.
    let answer = v
        .open(build(Method::GET, &host, "/sse", &[], empty_body()))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let mut body = answer.into_body();
    let mut got = Vec::new();
    while !contains(&got, EVENT_ONE) {
        got.extend_from_slice(&next_chunk(&mut body).await);
    }
    assert!(!contains(&got, EVENT_TWO));
    release.notify_one();
    while !contains(&got, EVENT_TWO) {
        got.extend_from_slice(&next_chunk(&mut body).await);
    }

    let mut ws = v.websocket(&host, "/ws").await;
    for text in ["through the proxy", "and back"] {
        ws.send(Message::text(text)).await.unwrap();
        let echo = within(20, ws.next()).await.unwrap().unwrap();
        assert_eq!(echo, Message::text(text));
    }
    ws.close(None).await.unwrap();
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The proxy restarts; the client resumes its session (same bindings, no new session) and
/// visitors get through again.
async fn resumes(client: &mut Daemon, v: &HttpsVisitor, front: SocketAddr) {
    client
        .wait_output("session resumed; every binding kept")
        .await;
    let host = format!("demo.example.test:{}", front.port());
    wait_serving(v, &host).await;
    let r = v
        .send(build(Method::GET, &host, "/after", &[], empty_body()))
        .await;
    assert_eq!(r.json()["target"], "/after");
    assert!(
        !client.output().contains("connecting a new session"),
        "the session was not resumed:\n{}",
        client.output()
    );
}

/// A CA and a server certificate for the proxy: the domain, its subdomains and the loopback
/// address the client dials.
fn certificates(
    dir: &Path,
) -> (
    String,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let ca = TestCa::new("underpass deployment test CA");
    let ca_file = ca.write(dir, "ca.pem");
    let leaf = ca.leaf(&["example.test", "*.example.test", "127.0.0.1"]);
    let (cert, key) = leaf.write(dir, "proxy");
    (ca.pem(), ca_file, cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, ca_file, cert, key) = certificates(dir.path());
    let (_server, upstream) = underpass_server().await;
    let mut nginx = Nginx::start(dir.path(), unused_addr(), upstream, &cert, &key).await;
    let front = nginx.addr;
    let (port, release) = app().await;
    let mut client = client(port, front, &ca_file).await;
    let v = HttpsVisitor::new(front, &ca_pem);
    visit(&v, front, &release).await;
    nginx.restart().await;
    resumes(&mut client, &v, front).await;
    assert!(
        !nginx.error_log().contains("[emerg]"),
        "{}",
        nginx.error_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, ca_file, cert, key) = certificates(dir.path());
    let (_server, upstream) = underpass_server().await;
    let tls = CaddyTls::Files {
        cert: &cert,
        key: &key,
    };
    let mut caddy = Caddy::start(dir.path(), unused_addr(), upstream, tls).await;
    let front = caddy.addr;
    let (port, release) = app().await;
    let mut client = client(port, front, &ca_file).await;
    let v = HttpsVisitor::new(front, &ca_pem);
    visit(&v, front, &release).await;
    caddy.restart().await;
    resumes(&mut client, &v, front).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy_with_its_own_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, upstream) = underpass_server().await;
    let mut caddy = Caddy::start(dir.path(), unused_addr(), upstream, CaddyTls::Internal).await;
    let front = caddy.addr;
    let root = caddy.internal_root();
    within(30, async {
        while !root.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let root_pem = std::fs::read_to_string(&root).unwrap();
    let (port, release) = app().await;
    let mut client = client(port, front, &root).await;
    let v = HttpsVisitor::new(front, &root_pem);
    visit(&v, front, &release).await;
    caddy.restart().await;
    resumes(&mut client, &v, front).await;
    let _ = caddy.log();
}
