//! The idle stream timeout: a tunneled connection that moves nothing either way is closed at
//! both ends, while one that keeps talking stays open past the timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const IDLE: Duration = Duration::from_secs(1);

async fn echo_round(tcp: &mut TcpStream, byte: u8) {
    tcp.write_all(&[byte]).await.unwrap();
    let mut back = [0u8; 1];
    within(10, tcp.read_exact(&mut back)).await.unwrap();
    assert_eq!(back[0], byte);
}

#[tokio::test]
async fn a_quiet_connection_is_closed_and_a_talking_one_is_not() {
    let server = server_with(|cfg| cfg.limits.idle_stream_timeout = IDLE).await;
    let client = client(&server).await;
    let pulled = within(10, client.pull(echo_server().await, 0))
        .await
        .unwrap();
    let port = pulled.container_port();
    let mut quiet = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut talking = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    echo_round(&mut quiet, 1).await;
    echo_round(&mut talking, 2).await;

    // `talking` echoes a byte every IDLE/4 for 3 IDLE periods; `quiet` says nothing.
    let started = Instant::now();
    for i in 0..12u8 {
        tokio::time::sleep(IDLE / 4).await;
        echo_round(&mut talking, i).await;
    }
    assert!(started.elapsed() >= IDLE * 3);

    let mut rest = Vec::new();
    let n = within(10, quiet.read_to_end(&mut rest)).await;
    assert!(
        matches!(n, Ok(0)) || n.is_err(),
        "the quiet connection was closed: {n:?}"
    );
    echo_round(&mut talking, 99).await;
}
