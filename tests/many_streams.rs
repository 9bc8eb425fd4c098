//! Thousands of streams in one session. The server announces its `--max-streams-per-session`
//! in HELLO_OK and the client follows it, so raising the flag on the server is all it takes:
//! the client no longer refuses stream 1025 on its own.
//!
//! The test process holds about 4,100 descriptors (each connection and the echo server's end of
//! it); `.ci/run` raises `ulimit -n` to the hard limit.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const STREAMS: usize = 2_000;
/// Connections opened at once, so no listen backlog overflows.
const BATCH: usize = 100;

async fn echo_round(tcp: &mut TcpStream, byte: u8, which: usize) {
    tcp.write_all(&[byte]).await.unwrap();
    let mut back = [0u8; 1];
    let read = within(30, tcp.read_exact(&mut back)).await;
    assert!(
        read.is_ok(),
        "connection {which} was refused or cut: {read:?}"
    );
    assert_eq!(back[0], byte);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_connections_share_one_session_when_the_server_allows_it() {
    let limit = (STREAMS + 48).to_string();
    let (_server, addr) = server_process(
        &["--token", "tok", "--max-streams-per-session", &limit],
        &[],
    )
    .await;
    let echo = echo_server().await.port().to_string();
    let url = format!("ws://{addr}");
    let mut pull = spawn(&["pull", &echo, "--server", &url, "--token", "tok"], &[]);
    let port: SocketAddr = pull.expect_line("server: ").await.parse().unwrap();

    let mut open = Vec::with_capacity(STREAMS);
    for batch in 0..STREAMS / BATCH {
        let conns = futures_util::future::join_all((0..BATCH).map(|i| async move {
            let which = batch * BATCH + i;
            let mut tcp = within(30, TcpStream::connect(port)).await.unwrap();
            echo_round(&mut tcp, (which % 251) as u8, which).await;
            tcp
        }))
        .await;
        open.extend(conns);
    }
    // Every one of them is still a live stream once all are open.
    for (which, tcp) in open.iter_mut().enumerate() {
        echo_round(tcp, (which % 241) as u8, which).await;
    }
}
