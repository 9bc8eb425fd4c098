//! `underpass start` does what `http` and `tcp` do, from the same connection settings: it keeps
//! a server-assigned route name and the ports the server picked across reconnects, and honours
//! the transport and trust settings from flags and from its file.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{get, spawn, unused_addr, within, Proc, TOKEN};
use http::{Response, StatusCode};
use http_body_util::Full;

async fn app(name: &'static str) -> u16 {
    common::app(move |_req| async move { Response::new(Full::new(Bytes::from(name))) }).await
}

/// Polls until `host` answers 200 through the server at `addr`.
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

fn server_at(listen: SocketAddr, extra: &[&str]) -> Proc {
    let listen = listen.to_string();
    let mut args = vec![
        "server",
        "--listen",
        &listen,
        "--token",
        TOKEN,
        "--domain",
        "example.test",
    ];
    args.extend_from_slice(extra);
    spawn(&args, &[])
}

#[tokio::test]
async fn an_assigned_name_and_picked_ports_survive_a_server_restart() {
    // A fixed address so the restarted server is where the client looks for it.
    let listen = unused_addr();
    let mut s1 = server_at(listen, &[]);
    s1.expect_line("control: ").await;
    let port = app("start app").await;
    let echo = common::echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("underpass.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"ws://{listen}\"\ntoken = \"{TOKEN}\"\n\
             [[http]]\nport = {port}\n\
             [[tcp]]\nport = {}\n\
             [[pull]]\nport = {}\n",
            echo.port(),
            echo.port()
        ),
    )
    .unwrap();
    let mut client = spawn(&["start", "--config", config.to_str().unwrap()], &[]);
    let url = client
        .expect_line(&format!("http 127.0.0.1:{port} -> "))
        .await;
    let name = url
        .strip_prefix("http://")
        .and_then(|u| u.split('.').next())
        .unwrap()
        .to_string();
    assert!(name.starts_with("up-"), "{url}");
    let tcp: SocketAddr = client
        .expect_line(&format!("tcp 127.0.0.1:{} -> tcp://", echo.port()))
        .await
        .replace("example.test", "127.0.0.1")
        .parse()
        .unwrap_or_else(|_| panic!("tcp line"));
    let pull_port: u16 = client
        .expect_line("pull server 127.0.0.1:")
        .await
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host = format!("{name}.example.test");
    assert_eq!(wait_routed(listen, &host).await, "start app");

    // Gone before the next one binds the same port (a kill alone may not have landed yet).
    s1.child.kill().await.unwrap();
    let mut s2 = server_at(listen, &[]);
    s2.expect_line("control: ").await;
    // A new session (the server forgot the old one) asks for the same name and ports.
    assert_eq!(wait_routed(listen, &host).await, "start app");
    let through = |addr: SocketAddr| async move {
        within(30, async {
            loop {
                if let Ok(tcp) = tokio::net::TcpStream::connect(addr).await {
                    drop(tcp);
                    return common::tcp_roundtrip(addr, b"again").await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    };
    assert_eq!(through(tcp).await, b"again");
    let pull = SocketAddr::from(([127, 0, 0, 1], pull_port));
    assert_eq!(through(pull).await, b"again");
}

#[cfg(feature = "quic")]
#[tokio::test]
async fn start_honours_the_transport_and_pin_from_flags_and_from_its_file() {
    let listen = unused_addr();
    let mut server = server_at(listen, &["--quic-listen", "127.0.0.1:0"]);
    let quic = server.expect_line("quic: ").await;
    let pin = server.expect_line("quic-cert-sha256: ").await;
    let port = app("over quic").await;
    let dir = tempfile::tempdir().unwrap();

    // Flags.
    let flags = dir.path().join("flags.toml");
    std::fs::write(
        &flags,
        format!("token = \"{TOKEN}\"\n[[http]]\nport = {port}\nsubdomain = \"byflags\"\n"),
    )
    .unwrap();
    let mut a = spawn(
        &[
            "start",
            "--config",
            flags.to_str().unwrap(),
            "--transport",
            "quic",
            "--server",
            &quic,
            "--server-cert-sha256",
            &pin,
        ],
        &[],
    );
    a.expect_line("http ").await;
    assert_eq!(
        wait_routed(listen, "byflags.example.test").await,
        "over quic"
    );

    // The file's keys.
    let file = dir.path().join("file.toml");
    std::fs::write(
        &file,
        format!(
            "server = \"{quic}\"\ntoken = \"{TOKEN}\"\ntransport = \"quic\"\n\
             server_cert_sha256 = \"{pin}\"\n[[http]]\nport = {port}\nsubdomain = \"byfile\"\n"
        ),
    )
    .unwrap();
    let mut b = spawn(&["start", "--config", file.to_str().unwrap()], &[]);
    b.expect_line("http ").await;
    assert_eq!(
        wait_routed(listen, "byfile.example.test").await,
        "over quic"
    );

    // Without the pin it says what QUIC needs, as `http` does.
    let line = common::final_error(
        &[
            "start",
            "--config",
            file.to_str().unwrap(),
            "--server-cert-sha256",
            "zz",
        ],
        &[],
    )
    .await;
    assert!(line.contains("--server-cert-sha256"), "{line}");
}
