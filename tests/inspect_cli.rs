//! How the inspector is turned on, moved and off on the command line: `http`, `start` and
//! `demo` print `inspect: URL`; the default port moves when taken, an explicit one fails;
//! `--inspect off`, `UNDERPASS_INSPECT`, the start file's `inspect` key; nothing captured
//! reaches the logs.

mod common;

use std::net::SocketAddr;

use common::*;
use http::Method;

async fn app_port() -> u16 {
    echo_app("cli").await
}

fn http_args<'a>(port: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "http",
        port,
        "--server",
        url,
        "--token",
        "tok",
        "--subdomain",
        "hook",
    ]
}

#[tokio::test]
async fn on_by_default_on_4040_or_the_next_free_port() {
    let (_s, addr) = server_process(&["--token", "tok", "--domain", INSPECT_DOMAIN], &[]).await;
    // Whoever holds 4040 (this test, or another process), the client must move on.
    let _hold = std::net::TcpListener::bind("127.0.0.1:4040");
    let port = app_port().await.to_string();
    let url = format!("ws://{addr}");
    let mut client = spawn(&http_args(&port, &url), &[]);
    client.expect_line("public: ").await;
    let inspect = inspect_addr(&mut client).await;
    assert!(inspect.ip().is_loopback(), "{inspect}");
    assert_ne!(inspect.port(), 4040);
    let tunnels = api_get(inspect, "/api/tunnels").await;
    assert_eq!(tunnels["tunnels"][0]["name"], "hook");
}

#[tokio::test]
async fn an_explicit_address_in_use_is_an_error_before_connecting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let err = run_failing(
        &[
            "http",
            "3000",
            "--token",
            "tok",
            "--server",
            "ws://127.0.0.1:9",
            "--inspect",
            &at,
        ],
        &[],
    )
    .await;
    assert!(
        err.contains("cannot listen on") && err.contains("--inspect"),
        "{err}"
    );
    let err = run_failing(
        &["http", "3000", "--token", "tok", "--inspect", "somewhere"],
        &[],
    )
    .await;
    assert!(err.contains("not an address"), "{err}");
    let err = run_failing(
        &[
            "http",
            "3000",
            "--token",
            "tok",
            "--inspect-max-requests",
            "0",
        ],
        &[],
    )
    .await;
    assert!(err.contains("at least 1"), "{err}");
}

#[tokio::test]
async fn off_prints_nothing_and_the_env_var_sets_the_address() {
    let (_s, addr) = server_process(&["--token", "tok", "--domain", INSPECT_DOMAIN], &[]).await;
    let port = app_port().await.to_string();
    let url = format!("ws://{addr}");

    let mut off = spawn(&http_args(&port, &url), &[("UNDERPASS_INSPECT", "off")]);
    off.expect_line("public: ").await;
    let (rest, _) = interrupt(off).await;
    assert!(!rest.iter().any(|l| l.starts_with("inspect:")), "{rest:?}");

    // The flag wins over the variable.
    let mut flag = spawn(
        &[&http_args(&port, &url)[..], &["--inspect", "off"]].concat(),
        &[("UNDERPASS_INSPECT", "127.0.0.1:0")],
    );
    flag.expect_line("public: ").await;
    let (rest, _) = interrupt(flag).await;
    assert!(!rest.iter().any(|l| l.starts_with("inspect:")), "{rest:?}");

    let free = unused_addr();
    let mut by_env = spawn(
        &http_args(&port, &url),
        &[
            ("UNDERPASS_INSPECT", &free.to_string()),
            ("UNDERPASS_INSPECT_BODY_CAP", "4"),
        ],
    );
    assert_eq!(inspect_addr(&mut by_env).await, free);
    request(addr, Method::POST, HOOK_HOST, "/x", &[], "0123456789").await;
    let got = wait_request(free, |r| r["state"] == "complete").await;
    assert_eq!(got["request"]["body"]["captured"], 4);
}

#[tokio::test]
async fn start_reads_the_inspect_key_and_flags_override_it() {
    let (_s, addr) = server_process(&["--token", "tok", "--domain", INSPECT_DOMAIN], &[]).await;
    let port = app_port().await;
    let dir = std::env::temp_dir().join(format!("underpass-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("start.toml");
    let in_file = unused_addr();
    std::fs::write(
        &file,
        format!(
            "server = \"ws://{addr}\"\ntoken = \"tok\"\n[[http]]\nport = {port}\nsubdomain = \"hook\"\ntakeover = true\n\
             [[tcp]]\nport = {port}\n[inspect]\naddr = \"{in_file}\"\nmax_requests = 2\n"
        ),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let mut client = spawn(&["start", "--config", path], &[]);
    client.expect_line("http ").await;
    assert_eq!(inspect_addr(&mut client).await, in_file);
    for n in 0..3 {
        request(addr, Method::GET, HOOK_HOST, &format!("/{n}"), &[], "").await;
    }
    wait_request(in_file, |r| {
        r["request"]["uri"] == "/2" && r["state"] == "complete"
    })
    .await;
    let list = api_get(in_file, "/api/requests/http").await;
    assert_eq!(
        list["requests"].as_array().unwrap().len(),
        2,
        "max_requests from the file"
    );
    let tunnels = api_get(in_file, "/api/tunnels").await;
    assert_eq!(
        tunnels["tunnels"].as_array().unwrap().len(),
        1,
        "tcp is not inspected"
    );
    drop(client);

    let mut off = spawn(&["start", "--config", path, "--inspect", "off"], &[]);
    off.expect_line("tcp ").await;
    let (rest, _) = interrupt(off).await;
    assert!(!rest.iter().any(|l| l.starts_with("inspect:")), "{rest:?}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[http]]\nport = 1\n[inspect]\nadr = \"x\"\n").unwrap();
    let err = run_failing(&["start", "--config", bad.to_str().unwrap()], &[]).await;
    assert!(err.contains("line 4") || err.contains("adr"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn demo_prints_the_inspector_and_it_shows_the_demo_app() {
    let listen: SocketAddr = unused_addr();
    let listen_s = listen.to_string();
    let mut demo = spawn(
        &["demo", "--listen", &listen_s, "--inspect", "127.0.0.1:0"],
        &[],
    );
    demo.expect_line("open: ").await;
    let inspect = inspect_addr(&mut demo).await;
    let page = get(listen, "demo.localhost", "/").await;
    assert!(page.text().contains("underpass demo"));
    let got = wait_request(inspect, |r| {
        r["request"]["uri"] == "/" && r["state"] == "complete"
    })
    .await;
    assert_eq!(got["tunnel_name"], "demo");
    assert_eq!(got["response"]["status_code"], 200);
    let tunnels = api_get(inspect, "/api/tunnels").await;
    assert_eq!(
        tunnels["tunnels"][0]["public_url"],
        format!("http://demo.localhost:{}", listen.port())
    );
}

#[tokio::test]
async fn captured_secrets_never_reach_the_logs() {
    let (_s, addr) = server_process(&["--token", "tok", "--domain", INSPECT_DOMAIN], &[]).await;
    let port = app_port().await.to_string();
    let url = format!("ws://{addr}");
    let mut client = spawn(
        &[&http_args(&port, &url)[..], &["--inspect", "127.0.0.1:0"]].concat(),
        &[("RUST_LOG", "trace")],
    );
    let inspect = inspect_addr(&mut client).await;
    request(
        addr,
        Method::POST,
        HOOK_HOST,
        "/login",
        &[
            ("authorization", "Bearer sekrit-token-123"),
            ("cookie", "sid=cookie-456"),
        ],
        "password=body-secret-789",
    )
    .await;
    let got = wait_request(inspect, |r| r["state"] == "complete").await;
    api_replay(inspect, &serde_json::json!({"id": got["id"]})).await;
    wait_request(inspect, |r| {
        r["replay_of"] == got["id"] && r["state"] == "complete"
    })
    .await;
    let (_, stderr) = interrupt(client).await;
    assert!(stderr.contains("request"), "logs were written: {stderr}");
    for secret in ["sekrit-token-123", "cookie-456", "body-secret-789"] {
        assert!(!stderr.contains(secret), "{secret} leaked into the logs");
    }
}

#[tokio::test]
async fn bound_beyond_loopback_it_warns_on_stderr() {
    let (_s, addr) = server_process(&["--token", "tok", "--domain", INSPECT_DOMAIN], &[]).await;
    let port = app_port().await.to_string();
    let url = format!("ws://{addr}");
    let mut client = spawn(
        &[&http_args(&port, &url)[..], &["--inspect", "0.0.0.0:0"]].concat(),
        &[],
    );
    let inspect = inspect_addr(&mut client).await;
    // The printed URL is one a browser on this machine can open.
    assert!(inspect.ip().is_loopback(), "{inspect}");
    let tunnels = api_get(inspect, "/api/tunnels").await;
    assert_eq!(tunnels["tunnels"][0]["name"], "hook");
    let (_, stderr) = interrupt(client).await;
    assert!(
        stderr.contains("listens beyond loopback") && stderr.contains("replay"),
        "{stderr}"
    );
}
