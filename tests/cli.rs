//! The command line as a user runs it: real `underpass` processes, real sockets on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{
    command, get, get_live, next_chunk, run_failing, server_process, spawn, unused_addr, within,
    ws_handshake, TOKEN,
};
use futures_util::{SinkExt, StreamExt};
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A local HTTP app answering "app <name> <path>".
async fn app(name: &'static str) -> u16 {
    common::app(move |req| async move {
        Response::new(Full::new(Bytes::from(format!(
            "app {name} {}",
            req.uri().path()
        ))))
    })
    .await
}

/// The arguments of `underpass http PORT` for route `subdomain` on server `url`, token "tok".
fn http_args<'a>(port: &'a str, url: &'a str, subdomain: &'a str) -> [&'a str; 8] {
    [
        "http",
        port,
        "--server",
        url,
        "--token",
        "tok",
        "--subdomain",
        subdomain,
    ]
}

/// Polls until `host` answers 200 (the client may still be connecting).
async fn wait_routed(addr: SocketAddr, host: &str) -> String {
    within(20, async {
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

#[tokio::test]
async fn server_generates_and_prints_a_token() {
    let mut p = spawn(&["server", "--listen", "127.0.0.1:0"], &[]);
    let token = p.expect_line("token: ").await;
    assert!(token.len() >= 40, "token too short: {token}");
    let public = p.expect_line("public: ").await;
    assert!(public.starts_with("http://127.0.0.1:"), "{public}");
    let control = p.expect_line("control: ").await;
    assert!(control.ends_with("/__underpass__/control"), "{control}");
}

#[tokio::test]
async fn a_given_token_is_not_printed_and_env_works() {
    let mut p = spawn(
        &["server", "--listen", "127.0.0.1:0"],
        &[
            ("UNDERPASS_TOKEN", "from-env-token"),
            ("UNDERPASS_DOMAIN", "env.test"),
        ],
    );
    let first = within(20, p.lines.next_line()).await.unwrap().unwrap();
    assert!(first.starts_with("public: http://env.test:"), "{first}");
}

#[tokio::test]
async fn client_without_token_fails_clearly() {
    let err = run_failing(&["http", "3000", "--server", "ws://127.0.0.1:9"], &[]).await;
    assert!(err.contains("token is required"), "{err}");
}

#[tokio::test]
async fn client_with_wrong_token_exits_instead_of_retrying() {
    let (_s, addr) = server_process(&["--token", "right"], &[]).await;
    let url = format!("ws://{addr}");
    let err = run_failing(&["http", "3000", "--server", &url, "--token", "wrong"], &[]).await;
    assert!(err.contains("refused the token"), "{err}");
}

#[tokio::test]
async fn bad_route_names_and_servers_are_refused_before_connecting() {
    let err = run_failing(
        &["http", "3000", "--token", "t", "--subdomain", "bad_name"],
        &[],
    )
    .await;
    assert!(err.contains("invalid route name"), "{err}");
    let err = run_failing(
        &["http", "3000", "--token", "t", "--server", "ftp://x"],
        &[],
    )
    .await;
    assert!(err.contains("--server"), "{err}");
    let err = run_failing(&["http", "70000", "--token", "t"], &[]).await;
    assert!(err.contains("not a port"), "{err}");
}

#[tokio::test]
async fn http_end_to_end_with_named_route_and_duplicate_refused() {
    let (_s, addr) = server_process(&["--token", "tok", "--domain", "example.test"], &[]).await;
    let port = app("one").await.to_string();
    let url = format!("ws://{addr}");
    let mut client = spawn(&http_args(&port, &url, "Demo"), &[]);
    assert_eq!(client.expect_line("subdomain: ").await, "demo");
    assert_eq!(
        client.expect_line("public: ").await,
        format!("http://demo.example.test:{}", addr.port())
    );
    assert_eq!(wait_routed(addr, "demo.example.test").await, "app one /");
    // A second client for the same route in single mode exits non-zero; the first keeps serving.
    let err = run_failing(&http_args(&port, &url, "demo"), &[]).await;
    assert!(err.contains("ROUTE_TAKEN"), "{err}");
    let r = get(addr, "demo.example.test", "/x").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "app one /x")
    );
}

#[tokio::test]
async fn flags_beat_env_and_empty_env_is_ignored() {
    let (_s, addr) = server_process(&["--token", "tok", "--domain", "example.test"], &[]).await;
    let port = app("env").await.to_string();
    let url = format!("ws://{addr}");
    let env = [
        ("UNDERPASS_SUBDOMAIN", "fromenv"),
        ("UNDERPASS_TOKEN", "tok"),
        ("UNDERPASS_SERVER", url.as_str()),
    ];
    let mut by_env = spawn(&["http", &port], &env);
    assert_eq!(by_env.expect_line("subdomain: ").await, "fromenv");
    let mut by_flag = spawn(&["http", &port, "--subdomain", "fromflag"], &env);
    assert_eq!(by_flag.expect_line("subdomain: ").await, "fromflag");
    let empty = [
        ("UNDERPASS_SUBDOMAIN", ""),
        ("UNDERPASS_TOKEN", "tok"),
        ("UNDERPASS_SERVER", url.as_str()),
    ];
    let mut random = spawn(&["http", &port], &empty);
    let name = random.expect_line("subdomain: ").await;
    assert!(name.starts_with("up-") && name.len() == 13, "{name}");
}

#[tokio::test]
async fn an_assigned_name_survives_a_server_restart() {
    // A fixed port so the restarted server is at the same address.
    let listen = unused_addr();
    let listen_s = listen.to_string();
    let args = [
        "server",
        "--listen",
        listen_s.as_str(),
        "--token",
        "tok",
        "--domain",
        "example.test",
    ];
    let mut s1 = spawn(&args, &[]);
    s1.expect_line("control: ").await;
    let port = app("restart").await.to_string();
    let url = format!("ws://{listen}");
    let mut client = spawn(&["http", &port, "--server", &url, "--token", "tok"], &[]);
    let name = client.expect_line("subdomain: ").await;
    assert!(name.starts_with("up-"), "{name}");
    let host = format!("{name}.example.test");
    assert_eq!(wait_routed(listen, &host).await, "app restart /");
    // Gone before the next one binds the same port (a kill alone may not have landed yet).
    s1.child.kill().await.unwrap();
    let mut s2 = spawn(&args, &[]);
    s2.expect_line("control: ").await;
    // The client reconnects with backoff and asks for the same name again.
    assert_eq!(wait_routed(listen, &host).await, "app restart /");
}

#[tokio::test]
async fn tcp_and_pull_print_where_they_listen() {
    let (_s, addr) = server_process(&["--token", "tok"], &[]).await;
    let echo = common::echo_server().await.port().to_string();
    let url = format!("ws://{addr}");
    let mut tcp = spawn(&["tcp", &echo, "--server", &url, "--token", "tok"], &[]);
    let public = tcp.expect_line("public: tcp://").await;
    let public: SocketAddr = public.parse().unwrap();
    assert_eq!(
        common::tcp_roundtrip(public, b"through tcp").await,
        b"through tcp"
    );
    let mut pull = spawn(&["pull", &echo, "--server", &url, "--token", "tok"], &[]);
    let server_side: SocketAddr = pull.expect_line("server: ").await.parse().unwrap();
    assert_eq!(
        pull.expect_line("leads to: ").await,
        format!("127.0.0.1:{echo}")
    );
    assert_eq!(
        common::tcp_roundtrip(server_side, b"through pull").await,
        b"through pull"
    );
}

#[tokio::test]
async fn start_with_a_config_file() {
    let (_s, addr) = server_process(&["--token", "tok", "--domain", "example.test"], &[]).await;
    let app_port = app("cfg").await;
    let echo = common::echo_server().await.port();
    let dir = std::env::temp_dir().join(format!("underpass-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ok.toml");
    std::fs::write(
        &path,
        format!(
            "server = \"ws://{addr}\"\n\n[[http]]\nport = {app_port}\nsubdomain = \"cfg\"\n\n[[tcp]]\nport = {echo}\n\n[[pull]]\nport = {echo}\n"
        ),
    )
    .unwrap();
    let mut p = spawn(
        &["start", "--config", path.to_str().unwrap()],
        &[("UNDERPASS_TOKEN", "tok")],
    );
    let http_line = p.expect_line("http 127.0.0.1:").await;
    assert_eq!(
        http_line,
        format!("{app_port} -> http://cfg.example.test:{}", addr.port())
    );
    let tcp_line = p.expect_line("tcp 127.0.0.1:").await;
    let public: SocketAddr = tcp_line.rsplit("tcp://").next().unwrap().parse().unwrap();
    let pull_line = p.expect_line("pull server 127.0.0.1:").await;
    let pull_port: u16 = pull_line.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(wait_routed(addr, "cfg.example.test").await, "app cfg /");
    assert_eq!(common::tcp_roundtrip(public, b"cfg tcp").await, b"cfg tcp");
    let pulled = SocketAddr::from(([127, 0, 0, 1], pull_port));
    assert_eq!(
        common::tcp_roundtrip(pulled, b"cfg pull").await,
        b"cfg pull"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "server = \"ws://127.0.0.1:9\"\n[[http]]\nport = 1\nsubdomian = \"x\"\n",
    )
    .unwrap();
    let err = run_failing(
        &["start", "--config", bad.to_str().unwrap(), "--token", "t"],
        &[],
    )
    .await;
    assert!(err.contains("line 4") && err.contains("subdomian"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn demo_serves_its_page_events_and_websocket() {
    let listen = unused_addr();
    let listen_s = listen.to_string();
    let mut demo = spawn(&["demo", "--listen", &listen_s], &[]);
    let open = demo.expect_line("open: ").await;
    assert_eq!(open, format!("http://demo.localhost:{}/", listen.port()));
    let page = wait_routed(listen, "demo.localhost").await;
    assert!(page.contains("underpass demo"), "{page}");

    // SSE: the first event arrives while the stream is still open.
    let mut body = get_live(listen, "demo.localhost", "/events")
        .await
        .into_body();
    let first = next_chunk(&mut body).await;
    assert!(String::from_utf8_lossy(&first).contains("data: tick 0"));

    // WebSocket echo through the tunnel.
    let (mut ws, _) = ws_handshake(listen, "demo.localhost", "/ws").await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .unwrap();
    let echo = within(10, ws.next()).await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "hello");
}

#[cfg(feature = "quic")]
#[tokio::test]
async fn quic_cert_cache_keeps_the_fingerprint_and_clients_pin_it() {
    let dir = std::env::temp_dir().join(format!("underpass-quic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("cert.pem");
    let cache_s = cache.to_str().unwrap().to_string();
    let args = [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--token",
        "tok",
        "--domain",
        "example.test",
        "--quic-listen",
        "127.0.0.1:0",
        "--tls-cert-cache",
        cache_s.as_str(),
    ];
    let mut first = spawn(&args, &[]);
    let fp1 = first.expect_line("quic-cert-sha256: ").await;
    drop(first);
    let mut second = spawn(&args, &[]);
    let addr = second.expect_control().await;
    let quic = second.expect_line("quic: ").await;
    let fp2 = second.expect_line("quic-cert-sha256: ").await;
    assert_eq!(fp1, fp2, "a cached certificate keeps its fingerprint");
    assert_eq!(fp1.len(), 64);

    // Without a pin or CA the client explains how to get one.
    let err = run_failing(&["http", "3000", "--server", &quic, "--token", "tok"], &[]).await;
    assert!(err.contains("quic-cert-sha256"), "{err}");
    // With the pin it serves over QUIC.
    let port = app("quic").await.to_string();
    let mut client = spawn(
        &http_args(&port, &quic, "q"),
        &[("UNDERPASS_SERVER_CERT_SHA256", fp2.as_str())],
    );
    assert_eq!(client.expect_line("subdomain: ").await, "q");
    assert_eq!(wait_routed(addr, "q.example.test").await, "app quic /");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_client_resumes_its_session_after_a_network_blip() {
    let (_s, addr) = server_process(
        &[
            "--token",
            "tok",
            "--domain",
            "example.test",
            "--resume-grace",
            "30",
        ],
        &[],
    )
    .await;
    let relay = common::Relay::start(addr).await;
    let port = app("blip").await.to_string();
    let url = format!("ws://{}", relay.addr);
    let mut client = spawn(&http_args(&port, &url, "blip"), &[]);
    client.expect_line("subdomain: ").await;
    assert_eq!(wait_routed(addr, "blip.example.test").await, "app blip /");
    relay.cut();
    // A fresh bind would be refused (ROUTE_TAKEN by the parked session) and the client would
    // exit; the route coming back proves the client resumed its session.
    assert_eq!(wait_routed(addr, "blip.example.test").await, "app blip /");
    assert!(
        client.child.try_wait().unwrap().is_none(),
        "client still running"
    );
}

#[tokio::test]
async fn skill_install_writes_the_reference_and_refuses_to_overwrite() {
    let dir = std::env::temp_dir().join(format!("underpass-skill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let dry = within(
        20,
        command(&["skill", "install", d, "--dry-run"], &[]).output(),
    )
    .await
    .unwrap();
    assert!(dry.status.success());
    assert!(!dir.join("underpass.md").exists(), "dry run writes nothing");
    let ok = within(20, command(&["skill", "install", d], &[]).output())
        .await
        .unwrap();
    assert!(ok.status.success());
    let text = std::fs::read_to_string(dir.join("underpass.md")).unwrap();
    assert!(text.contains("underpass http 3000"));
    let err = run_failing(&["skill", "install", d], &[]).await;
    assert!(err.contains("--force"), "{err}");
    let forced = within(
        20,
        command(&["skill", "install", d, "--force"], &[]).output(),
    )
    .await
    .unwrap();
    assert!(forced.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bench_measures_a_running_server() {
    let (_server, addr) = server_process(&["--token", TOKEN], &[]).await;
    let url = format!("ws://{addr}");
    let bench = [
        "bench",
        "--server",
        &url,
        "--transport",
        "ws",
        "--bytes",
        "1MiB",
        "--requests",
        "50",
        "--json",
    ];
    let out = within(60, command(&bench, &[("UNDERPASS_TOKEN", TOKEN)]).output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["server"], url.as_str());
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        1,
        "only ws, and no in-process direct row: {report}"
    );
    let ws = &rows[0];
    assert_eq!(ws["path"], "ws");
    assert_eq!(ws["carriers"], 1);
    assert_eq!(ws["http_errors"], 0, "{ws}");
    for figure in [
        "single_stream_mib_s",
        "multi_stream_mib_s",
        "requests_per_sec",
    ] {
        assert!(ws[figure].as_f64().unwrap() > 0.0, "{figure}: {ws}");
    }

    // A WebSocket server cannot be measured over QUIC, and the token is required.
    let err = run_failing(
        &[
            "bench",
            "--server",
            &url,
            "--transport",
            "quic",
            "--token",
            TOKEN,
        ],
        &[],
    )
    .await;
    assert!(err.contains("quic needs --server quic://"), "{err}");
    let err = run_failing(&["bench", "--server", &url], &[]).await;
    assert!(err.contains("a token is required"), "{err}");

    // Without --server an exported token is simply unused: the bench runs its own server.
    let local = [
        "bench",
        "--transport",
        "ws",
        "--bytes",
        "1MiB",
        "--requests",
        "20",
        "--json",
    ];
    let out = within(60, command(&local, &[("UNDERPASS_TOKEN", TOKEN)]).output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["server"], serde_json::Value::Null);
    assert_eq!(report["rows"][0]["path"], "direct");
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let mut p = spawn(
        &["server", "--listen", "127.0.0.1:0", "--token", TOKEN],
        &[("RUST_LOG", "info")],
    );
    let addr = p.expect_control().await;
    // A proxied request logs a line of its own (a 404 here).
    let _ = get_live(addr, "nobody.test", "/").await;
    p.child.start_kill().unwrap();
    let mut stderr = String::new();
    let mut pipe = p.child.stderr.take().unwrap();
    within(10, pipe.read_to_string(&mut stderr)).await.unwrap();
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in {stderr:?}");
}

#[tokio::test]
async fn tcp_with_a_proxy_protocol_header() {
    let err = run_failing(
        &["tcp", "22", "--proxy-protocol", "v3", "--token", "tok"],
        &[],
    )
    .await;
    assert!(err.contains("v3") && err.contains("v1 or v2"), "{err}");

    let (_s, addr) = server_process(&["--token", "tok"], &[]).await;
    // The service answers each connection with the first line it received: the header.
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = service.local_addr().unwrap().port().to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = service.accept().await {
            tokio::spawn(async move {
                let mut reader = BufReader::new(tcp);
                let mut line = String::new();
                if reader.read_line(&mut line).await.is_ok() {
                    let _ = reader.get_mut().write_all(line.as_bytes()).await;
                }
            });
        }
    });
    let url = format!("ws://{addr}");
    let args = [
        "tcp",
        &port,
        "--proxy-protocol",
        "v1",
        "--server",
        &url,
        "--token",
        "tok",
    ];
    let mut tcp = spawn(&args, &[]);
    let public: SocketAddr = tcp.expect_line("public: tcp://").await.parse().unwrap();
    let visitor = tokio::net::TcpStream::connect(public).await.unwrap();
    let me = visitor.local_addr().unwrap();
    let mut line = String::new();
    within(10, BufReader::new(visitor).read_line(&mut line))
        .await
        .unwrap();
    assert_eq!(
        line,
        format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            me.port(),
            public.port()
        )
    );
}

#[tokio::test]
async fn http_and_tcp_take_a_host_port_target() {
    let err = run_failing(&["http", "nas.lan", "--token", "tok"], &[]).await;
    assert!(err.contains("is not a port or HOST:PORT"), "{err}");

    // A service reachable only at 127.0.0.2 (another "machine" on the client's network).
    let service = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let target = service.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = service.accept().await {
            tokio::spawn(async move {
                let mut reader = BufReader::new(tcp);
                let mut line = String::new();
                while reader.read_line(&mut line).await.is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = reader
                    .get_mut()
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nnas",
                    )
                    .await;
            });
        }
    });
    let (_s, addr) = server_process(&["--token", "tok", "--domain", "example.test"], &[]).await;
    let url = format!("ws://{addr}");
    let _http = spawn(&http_args(&target, &url, "nas"), &[]);
    assert_eq!(wait_routed(addr, "nas.example.test").await, "nas");

    let mut tcp = spawn(&["tcp", &target, "--server", &url, "--token", "tok"], &[]);
    let public: SocketAddr = tcp.expect_line("public: tcp://").await.parse().unwrap();
    assert_eq!(tcp.expect_line("local: ").await, target);
    let mut visitor = tokio::net::TcpStream::connect(public).await.unwrap();
    visitor.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    within(10, visitor.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(answer.ends_with("nas"), "{answer}");
}

#[tokio::test]
async fn a_malformed_address_list_is_refused_before_connecting() {
    for cmd in ["http", "tcp"] {
        let err = run_failing(&[cmd, "3000", "--cidr-deny", "nope", "--token", "tok"], &[]).await;
        assert!(err.contains("nope") && err.contains("--cidr-deny"), "{err}");
        let err = run_failing(
            &[
                cmd,
                "3000",
                "--cidr-allow",
                "10.0.0.0/8,10.0.0.0/33",
                "--token",
                "tok",
            ],
            &[],
        )
        .await;
        assert!(
            err.contains("10.0.0.0/33") && err.contains("--cidr-allow"),
            "{err}"
        );
    }
}
