//! The admin API and metrics on real loopback sockets: a server with an admin token, real tunnel
//! clients holding an http route and a pull binding, and plain hyper requests. Covers bearer
//! auth (401, 404 when disabled), the JSON field names of PROTOCOL.md ("Listeners") with the
//! right counts and ports, the Prometheus text, killing a session, and `underpass admin` as a
//! real process against a real `underpass server` process.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use http::{header, HeaderMap, Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use underpass::client::{Binding, ClientOptions, ClientSession};
use underpass::server::Server;

const ADMIN: &str = "admin-token-9876543210";
const BIN: &str = env!("CARGO_BIN_EXE_underpass");

/// An admin-enabled server.
async fn admin_server() -> Server {
    server_with(|cfg| cfg.admin_token = Some(ADMIN.into())).await
}

/// One request to the server's main listener (Host: ADDR); status, headers and body text.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    bearer: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let auth = bearer.map(|token| format!("Bearer {token}"));
    let headers: Vec<_> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let r = request(addr, method, &addr.to_string(), path, &headers, "").await;
    let text = r.text();
    (r.status, r.headers, text)
}

/// An authorized GET that must answer 200 JSON.
async fn get_json(server: &Server, path: &str) -> Value {
    let (status, headers, body) = call(server.local_addr(), Method::GET, path, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// A connected client with an http route `demo` and a pull binding to an echo server.
struct Tunnel {
    client: ClientSession,
    web: Binding,
    pull: Binding,
}

async fn tunnel(server: &Server, route: &str, connections: u32) -> Tunnel {
    let opts = ClientOptions::new(server.control_url(), TOKEN).connections(connections);
    let client = client_with(opts).await;
    // Nothing listens on the http side: the listings only need the binding.
    let web = within(10, client.expose_http(9, &named(route)))
        .await
        .unwrap();
    let pull = within(10, client.pull(echo_server().await, 0))
        .await
        .unwrap();
    Tunnel { client, web, pull }
}

/// Polls `path` until `done` accepts its JSON.
async fn wait_json(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    within(10, async {
        loop {
            let v = get_json(server, path).await;
            if done(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn bearer_token_is_required() {
    let server = admin_server().await;
    let addr = server.local_addr();
    for path in ["/__underpass__/api/v1/health", "/__underpass__/metrics"] {
        for bearer in [None, Some("wrong-token"), Some(TOKEN)] {
            let (status, headers, body) = call(addr, Method::GET, path, bearer).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{path} {bearer:?}: {body}"
            );
            let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            assert!(body.contains("admin token"), "{body}");
        }
    }
    // Unknown endpoints do not reveal themselves before authentication either.
    let (status, _, _) = call(addr, Method::GET, "/__underpass__/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let health = get_json(&server, "/__underpass__/api/v1/health").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let (status, _, body) =
        call(addr, Method::GET, "/__underpass__/api/v1/nope", Some(ADMIN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The probes stay open to everyone.
    let (status, _, _) = call(addr, Method::GET, "/__underpass__/health/ready", None).await;
    assert_eq!(status, StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn admin_api_is_off_without_an_admin_token() {
    let server = server().await;
    let addr = server.local_addr();
    for path in [
        "/__underpass__/api/v1/health",
        "/__underpass__/api/v1/tunnels",
        "/__underpass__/metrics",
    ] {
        for bearer in [None, Some(ADMIN)] {
            let (status, _, body) = call(addr, Method::GET, path, bearer).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(
                body.contains("admin API disabled (start the server with --admin-token)"),
                "{body}"
            );
        }
    }
    let (status, _, _) = call(addr, Method::GET, "/__underpass__/health/live", None).await;
    assert_eq!(status, StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn listings_use_the_protocol_field_names() {
    let server = admin_server().await;
    let v2 = tunnel(&server, "demo", 4).await;
    let v1 = tunnel(&server, "other", 1).await;
    // One open connection through the v2 session's pull port: one active stream.
    let mut tcp = TcpStream::connect(("127.0.0.1", v2.pull.container_port()))
        .await
        .unwrap();
    tcp.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    within(10, tcp.read_exact(&mut buf)).await.unwrap();

    let tunnels = wait_json(&server, "/__underpass__/api/v1/tunnels", |v| {
        v["totalStreams"] == 1
    })
    .await;
    assert_eq!(tunnels["orphanedSessions"], 0);
    assert_eq!(tunnels["totalBindings"], 4);
    if cfg!(target_os = "linux") {
        assert!(
            tunnels["fdPermitsAvailable"].as_u64().unwrap() > 0,
            "{tunnels}"
        );
    }
    let sessions = tunnels["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    for (t, v2_session) in [(&v2, true), (&v1, false)] {
        let s = sessions
            .iter()
            .find(|s| s["sessionId"] == t.client.session_id())
            .unwrap_or_else(|| panic!("{} missing: {tunnels}", t.client.session_id()));
        assert_eq!(s["protocol"], if v2_session { "v2" } else { "v1" });
        assert_eq!(
            s["connectionsGranted"],
            t.client.hello().connections_granted.unwrap_or(1)
        );
        assert_eq!(s["activeStreams"], if v2_session { 1 } else { 0 });
        assert!(s["peerAddr"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert_eq!(s["exposeBindings"][0]["bindId"], t.web.bind_id());
        assert_eq!(s["exposeBindings"][0]["containerPort"], 0);
        assert_eq!(s["pullBindings"][0]["bindId"], t.pull.bind_id());
        assert_eq!(
            s["pullBindings"][0]["containerPort"],
            t.pull.container_port()
        );
        assert_eq!(s["exposeBindings"].as_array().unwrap().len(), 1);
        assert_eq!(s["pullBindings"].as_array().unwrap().len(), 1);
    }

    let listing = get_json(&server, "/__underpass__/api/v1/sessions").await;
    assert_eq!(listing["total"], 2);
    let s = listing["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sessionId"] == v2.client.session_id())
        .unwrap();
    assert_eq!(s["isV2"], true);
    assert_eq!(s["activeStreams"], 1);
    assert_eq!(s["maxStreams"], 1024);
    assert!(s["peerAddr"].is_string());
    assert!(s["connectionsGranted"].as_u64().unwrap() >= 1);
    let bindings = s["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 2);
    let pull = bindings
        .iter()
        .find(|b| b["bindId"] == v2.pull.bind_id())
        .unwrap();
    assert_eq!(pull["containerPort"], v2.pull.container_port());
    assert_eq!(pull["kind"], "tcp");
    assert_eq!(pull["mode"], "pull");
    let web = bindings
        .iter()
        .find(|b| b["bindId"] == v2.web.bind_id())
        .unwrap();
    assert_eq!(web["kind"], "http");
    assert_eq!(web["mode"], "expose");
    assert_eq!(web["route"], "demo");

    let all = get_json(&server, "/__underpass__/api/v1/bindings").await;
    assert_eq!(all["total"], 4);
    let list = all["bindings"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    for t in [&v2, &v1] {
        let b = list
            .iter()
            .find(|b| b["bindId"] == t.pull.bind_id())
            .unwrap();
        assert_eq!(b["kind"], "tcp");
        assert_eq!(b["mode"], "pull");
        assert_eq!(b["port"], t.pull.container_port());
        assert_eq!(b["sessionId"], t.client.session_id());
        let b = list
            .iter()
            .find(|b| b["bindId"] == t.web.bind_id())
            .unwrap();
        assert_eq!(b["kind"], "http");
        assert_eq!(b["port"], 0);
        assert_eq!(b["sessionId"], t.client.session_id());
    }

    // Read endpoints take GET and HEAD only.
    let (status, headers, _) = call(
        server.local_addr(),
        Method::POST,
        "/__underpass__/api/v1/sessions",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET, HEAD");
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn traffic_is_reported_per_binding() {
    let server = admin_server().await;
    let t = tunnel(&server, "demo", 2).await;
    let sent = pattern(100_000, 3);
    let echoed = tcp_roundtrip(
        SocketAddr::from(([127, 0, 0, 1], t.pull.container_port())),
        &sent,
    )
    .await;
    assert_eq!(echoed, sent);
    let pull_id = t.pull.bind_id();
    let all = wait_json(&server, "/__underpass__/api/v1/bindings", |v| {
        v["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["bindId"] == pull_id && b["bytesReceived"] == 100_000)
    })
    .await;
    let list = all["bindings"].as_array().unwrap();
    let pull = list.iter().find(|b| b["bindId"] == pull_id).unwrap();
    assert_eq!(pull["bytesSent"], 100_000, "{pull}");
    assert_eq!(pull["streamsOpened"], 1, "{pull}");
    let web = list
        .iter()
        .find(|b| b["bindId"] == t.web.bind_id())
        .unwrap();
    assert_eq!(
        (
            &web["bytesSent"],
            &web["bytesReceived"],
            &web["streamsOpened"]
        ),
        (&Value::from(0), &Value::from(0), &Value::from(0)),
        "{web}"
    );
    let (_, _, metrics) = call(
        server.local_addr(),
        Method::GET,
        "/__underpass__/metrics",
        Some(ADMIN),
    )
    .await;
    let series = format!(
        "underpass_binding_bytes_received_total{{session=\"{}\",bind_id=\"{pull_id}\",\
         kind=\"tcp\",mode=\"pull\",route=\"\",port=\"{}\"}} 100000\n",
        t.client.session_id(),
        t.pull.container_port()
    );
    assert!(metrics.contains(&series), "missing {series} in\n{metrics}");
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let server = admin_server().await;
    let t = tunnel(&server, "demo", 2).await;
    // Traffic, so the byte counters move.
    let mut tcp = TcpStream::connect(("127.0.0.1", t.pull.container_port()))
        .await
        .unwrap();
    tcp.write_all(&[7u8; 1000]).await.unwrap();
    let mut buf = vec![0u8; 1000];
    within(10, tcp.read_exact(&mut buf)).await.unwrap();
    // An answered PING gives carrier 0 an RTT.
    let (_, mux) = server.sessions().pop().unwrap();
    mux.ping(0);
    within(10, async {
        while mux.inspect(|st| st.rtt(0)).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let (status, headers, text) = call(
        server.local_addr(),
        Method::GET,
        "/__underpass__/metrics",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let id = t.client.session_id();
    for line in [
        "hoody_tunnel_sessions_active 1\n".to_string(),
        "hoody_tunnel_bindings_active{kind=\"http\",mode=\"expose\"} 1\n".into(),
        "hoody_tunnel_bindings_active{kind=\"tcp\",mode=\"pull\"} 1\n".into(),
        "hoody_tunnel_bindings_active{kind=\"tcp\",mode=\"forward\"} 0\n".into(),
        "hoody_tunnel_fd_permits_available ".into(),
        "underpass_sessions_active 1\n".into(),
        "underpass_carriers_active ".into(),
        "underpass_streams_active ".into(),
        format!("underpass_bytes_sent_total{{session=\"{id}\"}} "),
        format!("underpass_bytes_received_total{{session=\"{id}\"}} "),
        format!("underpass_flow_control_stalls_total{{session=\"{id}\"}} "),
        format!("underpass_carrier_rtt_seconds{{session=\"{id}\",carrier=\"0\"}} "),
        format!(
            "underpass_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ),
        "# EOF\n".into(),
    ] {
        if line.starts_with("hoody_tunnel_fd") && !cfg!(target_os = "linux") {
            continue;
        }
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    let value = |prefix: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // Both directions carried the 1000 echoed bytes.
    assert!(value("underpass_bytes_sent_total") >= 1000.0, "{text}");
    assert!(value("underpass_bytes_received_total") >= 1000.0, "{text}");
    assert!(value("underpass_carriers_active") >= 1.0, "{text}");
    let rtt = value("underpass_carrier_rtt_seconds");
    assert!(rtt > 0.0 && rtt < 5.0, "{rtt}");
    drop(tcp);
    server.shutdown().await;
}

#[tokio::test]
async fn kill_closes_the_session() {
    let server = admin_server().await;
    let addr = server.local_addr();
    let t = tunnel(&server, "demo", 2).await;
    let id = t.client.session_id().to_string();
    let path = format!("/__underpass__/api/v1/sessions/{id}");

    // Refusals first: the session must survive them.
    for (query, expected) in [
        ("?grace_ms=9999", StatusCode::BAD_REQUEST),
        ("?grace_ms=abc", StatusCode::BAD_REQUEST),
        ("?grace_ms=-1", StatusCode::BAD_REQUEST),
    ] {
        let (status, _, body) =
            call(addr, Method::DELETE, &format!("{path}{query}"), Some(ADMIN)).await;
        assert_eq!(status, expected, "{query}: {body}");
        assert!(body.contains("grace_ms"), "{body}");
    }
    let (status, _, _) = call(
        addr,
        Method::DELETE,
        "/__underpass__/api/v1/sessions/s_nosuchsession?grace_ms=0",
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = call(addr, Method::GET, &path, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "DELETE");
    let (status, _, _) = call(addr, Method::DELETE, &format!("{path}?grace_ms=0"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!t.client.mux().is_closed());

    let (status, _, body) = call(
        addr,
        Method::DELETE,
        &format!("{path}?grace_ms=0"),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["sessionId"], id.as_str());
    assert_eq!(answer["status"], "closing");

    // The client's mux reports its own carrier loss as the reason, not the GOAWAY text.
    within(10, t.client.closed()).await;
    let listing = wait_json(&server, "/__underpass__/api/v1/sessions", |v| {
        v["total"] == 0
    })
    .await;
    assert_eq!(listing["sessions"].as_array().unwrap().len(), 0);
    let bindings = get_json(&server, "/__underpass__/api/v1/bindings").await;
    assert_eq!(bindings["total"], 0);
    // Its pull port is released with it.
    within(10, async {
        while TcpStream::connect(("127.0.0.1", t.pull.container_port()))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn grace_period_delays_the_close() {
    let server = admin_server().await;
    let addr = server.local_addr();
    let a = tunnel(&server, "a", 1).await;
    let b = tunnel(&server, "b", 1).await;

    // Default grace (50 ms): closes soon.
    let path = format!("/__underpass__/api/v1/sessions/{}", a.client.session_id());
    let (status, _, _) = call(addr, Method::DELETE, &path, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    within(10, a.client.closed()).await;

    // A 1 s grace: still serving right after the answer, closed after about a second.
    let started = std::time::Instant::now();
    let path = format!(
        "/__underpass__/api/v1/sessions/{}?grace_ms=1000",
        b.client.session_id()
    );
    let (status, _, _) = call(addr, Method::DELETE, &path, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(!b.client.mux().is_closed());
    let listing = get_json(&server, "/__underpass__/api/v1/sessions").await;
    assert!(
        listing["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["sessionId"] == b.client.session_id()),
        "{listing}"
    );
    within(10, b.client.closed()).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

/// Runs `underpass admin ARGS` with the admin token in the environment.
async fn admin_cli(args: &[&str], token: &str) -> std::process::Output {
    let out = tokio::process::Command::new(BIN)
        .arg("admin")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("UNDERPASS_ADMIN_TOKEN", token)
        .stdin(Stdio::null())
        .output();
    within(30, out).await.unwrap()
}

#[tokio::test]
async fn cli_lists_tunnels_of_a_server_process() {
    let mut server = tokio::process::Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--token", TOKEN])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("UNDERPASS_ADMIN_TOKEN", ADMIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("underpass binary runs");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let control = within(20, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("server printed its address");
            if let Some(rest) = line.strip_prefix("control: ws://") {
                return rest.trim_end_matches("/__underpass__/control").to_string();
            }
        }
    })
    .await;
    let url = format!("http://{control}");

    let out = admin_cli(&["--server", &url, "list"], ADMIN).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tunnels: Value = serde_json::from_str(&stdout).unwrap();
    assert!(tunnels["sessions"].is_array(), "{stdout}");
    assert_eq!(tunnels["orphanedSessions"], 0);
    // Pretty-printed for people.
    assert!(stdout.contains("\n  \"sessions\""), "{stdout}");

    let out = admin_cli(&["metrics", "--server", &url], ADMIN).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("hoody_tunnel_sessions_active 0"));

    // A wrong token is one error line and exit status 1.
    let out = admin_cli(&["--server", &url, "sessions", "list"], "wrong").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    let out = admin_cli(
        &["--server", &url, "sessions", "kill", "s_nosuchsession"],
        ADMIN,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));

    let out = admin_cli(&["--server", "https://example.com", "health"], ADMIN).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("https is not supported"));

    let _ = server.kill().await;
}
