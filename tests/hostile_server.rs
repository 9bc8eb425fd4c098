//! A real client against a hostile server: a fake server on loopback (tungstenite plus the
//! crate's codec) answers HELLO with a HELLO_OK outside PROTOCOL.md's ranges, and JOIN with
//! JOIN_OK. The `underpass http` binary must end with exit code 1 and one clear line, without
//! allocating for a join-ticket index of 2^32-1, and without stalling on a window of 0. It runs
//! under an address-space limit, so a client that tries to allocate gigabytes fails the test
//! instead of the machine.

mod common;

use std::net::SocketAddr;

use bytes::BytesMut;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use underpass::proto::{decode_message, encode_frame, Frame, HelloOk, JoinOk, JoinTicket};

/// A fake server answering every HELLO with `hello_ok` and every JOIN with JOIN_OK.
async fn fake_server(hello_ok: HelloOk) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let hello_ok = hello_ok.clone();
            tokio::spawn(async move {
                // tungstenite's callback type: its error response is large, and unused here.
                #[allow(clippy::result_large_err)]
                let pick = |req: &Request, mut resp: Response| {
                    if let Some(p) = req.headers().get("sec-websocket-protocol") {
                        let first = p.to_str().unwrap_or("").split(',').next().unwrap_or("");
                        resp.headers_mut()
                            .insert("sec-websocket-protocol", first.trim().parse().unwrap());
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, pick).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Binary(data) = msg else { continue };
                    let answer = match decode_message(&data).ok().and_then(|mut f| f.pop()) {
                        Some(Frame::Hello(_)) => Frame::HelloOk(hello_ok.clone()),
                        Some(Frame::Join(join)) => Frame::JoinOk(JoinOk {
                            session_id: join.session_id,
                            index: join.index,
                        }),
                        _ => continue,
                    };
                    let mut out = BytesMut::new();
                    encode_frame(&answer, &mut out).unwrap();
                    if ws.send(Message::binary(out.freeze())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn hello_ok(granted: u32, tickets: Vec<JoinTicket>) -> HelloOk {
    HelloOk {
        session_id: "s_fake".into(),
        resumed: false,
        resumed_binds: Vec::new(),
        connections_granted: Some(granted),
        join_tickets: Some(tickets),
        stream_window: 1 << 20,
        session_window: 16 << 20,
        server_version: None,
        domain: None,
        max_streams: None,
    }
}

fn ticket(index: u32) -> JoinTicket {
    JoinTicket {
        index,
        nonce: "nonce".into(),
        expires_ms: 30_000,
    }
}

/// Runs `underpass http` against the fake server with at most 1 GiB of address space; returns
/// its exit code and stderr.
async fn run_client(server: SocketAddr) -> (Option<i32>, String) {
    let url = format!("ws://{server}");
    let mut cmd = tokio::process::Command::new("prlimit");
    cmd.args([
        "--as=1073741824",
        "--",
        BIN,
        "http",
        "3000",
        "--server",
        &url,
    ])
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("RUST_LOG", "off")
    .env("UNDERPASS_TOKEN", "t")
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let out = within(30, cmd.output()).await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn expect_refused(hello_ok: HelloOk, what: &str) {
    let server = fake_server(hello_ok).await;
    let (code, stderr) = run_client(server).await;
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(code, Some(1), "{what}: exit {code:?}, stderr:\n{stderr}");
    assert_eq!(lines.len(), 1, "{what}: one line, got:\n{stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("HELLO_OK") && lines[0].contains(what),
        "{what}: {}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_ticket_index_of_2_pow_32_minus_1_is_refused_without_allocating() {
    expect_refused(hello_ok(2, vec![ticket(u32::MAX)]), "index 4294967295").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_tickets_or_carriers_are_refused() {
    let many: Vec<JoinTicket> = (1..=500).map(ticket).collect();
    expect_refused(hello_ok(4, many), "500 join tickets").await;
    expect_refused(hello_ok(64, vec![ticket(20)]), "connectionsGranted 64").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_zero_is_refused_instead_of_stalling() {
    let mut zero = hello_ok(1, Vec::new());
    zero.stream_window = 0;
    expect_refused(zero, "window of 0").await;
    let mut zero = hello_ok(1, Vec::new());
    zero.session_window = 0;
    expect_refused(zero, "window of 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_limit_of_zero_is_refused_instead_of_refusing_every_stream() {
    let mut zero = hello_ok(1, Vec::new());
    zero.max_streams = Some(0);
    expect_refused(zero, "maxStreams 0").await;
}
