//! The request inspector as a user meets it: a real `underpass server` and `underpass http`
//! with its inspector on 127.0.0.1:0, visitors through the public listener, and the inspector's
//! API asked over HTTP with the Host a browser would send.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::process::{server_process, spawn, Proc};
use super::{request, within, Reply};

/// The public domain of the inspected tunnels; the route is `hook`.
pub const INSPECT_DOMAIN: &str = "example.test";
/// The host visitors use.
pub const HOOK_HOST: &str = "hook.example.test";

/// A server process and an `underpass http` client whose route `hook` leads to a local app.
pub struct Inspected {
    pub client: Proc,
    pub server: Proc,
    /// The server's public listener.
    pub addr: SocketAddr,
    /// The `public:` line.
    pub public: String,
    /// The inspector's listener, from the `inspect:` line.
    pub inspect: SocketAddr,
}

/// Starts a server and `underpass http APP_PORT --subdomain hook --inspect 127.0.0.1:0 EXTRA...`.
pub async fn inspected(app_port: u16, extra: &[&str]) -> Inspected {
    let (server, addr) = server_process(&["--token", "tok", "--domain", INSPECT_DOMAIN], &[]).await;
    let url = format!("ws://{addr}");
    let port = app_port.to_string();
    let mut args = vec![
        "http",
        &port,
        "--server",
        &url,
        "--token",
        "tok",
        "--subdomain",
        "hook",
        "--inspect",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut client = spawn(&args, &[]);
    let public = client.expect_line("public: ").await;
    let inspect = inspect_addr(&mut client).await;
    Inspected {
        client,
        server,
        addr,
        public,
        inspect,
    }
}

/// The address of the `inspect: http://ADDR` line.
pub async fn inspect_addr(p: &mut Proc) -> SocketAddr {
    let url = p.expect_line("inspect: ").await;
    url.strip_prefix("http://")
        .unwrap_or_else(|| panic!("inspect line is not a URL: {url}"))
        .parse()
        .unwrap_or_else(|_| panic!("inspect line has no address: {url}"))
}

impl Inspected {
    /// A visitor's request to the route.
    pub async fn visit(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        request(
            self.addr,
            method,
            HOOK_HOST,
            target,
            headers,
            Bytes::from(body.to_string()),
        )
        .await
    }
}

/// A request to the inspector with its own Host (as the page sends them) plus `headers`.
pub async fn api(
    inspect: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let host = inspect.to_string();
    request(
        inspect,
        method,
        &host,
        path,
        headers,
        Bytes::from(body.to_string()),
    )
    .await
}

/// `GET path` on the inspector, as JSON.
pub async fn api_get(inspect: SocketAddr, path: &str) -> Value {
    let r = api(inspect, Method::GET, path, &[], "").await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

/// `POST /api/requests/http` with `body`.
pub async fn api_replay(inspect: SocketAddr, body: &Value) -> Reply {
    api(
        inspect,
        Method::POST,
        "/api/requests/http",
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await
}

/// Polls the captured list until one request satisfies `pred` (bounded: 20 s).
pub async fn wait_request(inspect: SocketAddr, pred: impl Fn(&Value) -> bool) -> Value {
    within(20, async {
        loop {
            let list = api_get(inspect, "/api/requests/http").await;
            if let Some(found) = list["requests"]
                .as_array()
                .and_then(|r| r.iter().find(|v| pred(v)))
            {
                return found.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Decodes a `raw` field.
pub fn raw_of(part: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(part["raw"].as_str().expect("raw is a string"))
        .expect("raw is base64")
}

/// The body part of a `raw` field (after the first blank line).
pub fn raw_body(part: &Value) -> Vec<u8> {
    let raw = raw_of(part);
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("raw has a blank line");
    raw[at + 4..].to_vec()
}

/// Sends SIGINT (Ctrl-C) and returns every stdout line and the stderr it printed until it
/// exited.
pub async fn interrupt(mut p: Proc) -> (Vec<String>, String) {
    let pid = p.child.id().expect("process running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut stderr = p.child.stderr.take().expect("stderr piped");
    within(20, async {
        let mut lines = Vec::new();
        while let Some(line) = p.lines.next_line().await.unwrap() {
            lines.push(line);
        }
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err).await;
        let _ = p.child.wait().await;
        (lines, err)
    })
    .await
}
