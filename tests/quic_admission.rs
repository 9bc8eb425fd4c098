//! What an unauthenticated QUIC peer can take from the server, tried with a raw quinn client:
//! each connection is admitted like a TCP one (`--max-connections-per-ip`, then a permit of
//! `--fd-budget`, shared with TCP); until one of its carriers is authenticated it gets a small
//! receive window and few carriers, and it is closed when it authenticates none in time.
#![cfg(feature = "quic")]

mod common;

use std::time::Duration;

use common::*;
use futures_util::FutureExt;
use quinn::{ConnectionError, TransportErrorCode};

/// What a peer may send ahead of the server's reading before any HELLO (QuicTuning's default).
const UNAUTHENTICATED_WINDOW: usize = 128 << 10;

fn refused(result: Result<quinn::Connection, ConnectionError>) -> bool {
    matches!(result, Err(ConnectionError::ConnectionClosed(close))
        if close.error_code == TransportErrorCode::CONNECTION_REFUSED)
}

/// Connects until the server admits a connection again (it frees a place once it has seen a
/// closed connection go).
async fn admitted_again(quic: &RawQuic) -> quinn::Connection {
    for _ in 0..100 {
        if let Ok(conn) = quic.connect().await {
            return conn;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no connection admitted after one closed");
}

/// Bytes the connection lets us send on `send` right now, without waiting: the credit the
/// server granted so far (capped at `cap`). Nothing else runs meanwhile.
fn credit_now(send: &mut quinn::SendStream, cap: usize) -> usize {
    let chunk = vec![0u8; 16 << 10];
    let mut total = 0;
    while total < cap {
        match send.write(&chunk).now_or_never() {
            Some(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
    total
}

#[tokio::test]
async fn quic_connections_take_permits_of_the_connection_budget() {
    let quic = RawQuic::start(|c| c.limits.fd_budget = Some(2)).await;
    let first = quic.connect().await.unwrap();
    let _second = quic.connect().await.unwrap();
    assert!(
        refused(quic.connect().await),
        "a third connection is refused"
    );
    // The budget is the one TCP connections draw from: a visitor now gets the 503 too.
    let reply = raw_http(
        quic.server.local_addr(),
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 503, "{reply:?}");
    first.close(0u32.into(), b"bye");
    admitted_again(&quic).await;
}

#[tokio::test]
async fn one_address_holds_at_most_its_cap_of_quic_connections() {
    let quic = RawQuic::start(|c| c.limits.max_connections_per_ip = 2).await;
    let first = quic.connect().await.unwrap();
    let _second = quic.connect().await.unwrap();
    assert!(
        refused(quic.connect().await),
        "a third connection is refused"
    );
    first.close(0u32.into(), b"bye");
    admitted_again(&quic).await;
}

#[tokio::test]
async fn before_a_hello_a_connection_gets_a_small_window_and_four_carriers() {
    let quic = RawQuic::start(|_| {}).await;
    let conn = quic.connect().await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..4 {
        let stream = conn.open_bi().now_or_never().expect("one of four carriers");
        streams.push(stream.unwrap());
    }
    assert!(
        conn.open_bi().now_or_never().is_none(),
        "a fifth carrier waits for authentication"
    );
    let sent = credit_now(&mut streams[0].0, 4 << 20);
    assert!(
        sent <= UNAUTHENTICATED_WINDOW,
        "{sent} bytes accepted from an unauthenticated peer"
    );
}

#[tokio::test]
async fn a_hello_with_a_valid_token_opens_the_connection_up() {
    let quic = RawQuic::start(|_| {}).await;
    let conn = quic.connect().await.unwrap();
    let _session = quic_session(&conn).await;
    let mut more = Vec::new();
    for _ in 0..8 {
        more.push(within(20, conn.open_bi()).await.unwrap());
    }
    let sent = credit_now(&mut more[0].0, 4 << 20);
    assert!(
        sent >= 1 << 20,
        "only {sent} bytes of window once authenticated"
    );
}

#[tokio::test]
async fn a_connection_that_authenticates_nothing_is_closed() {
    let quic = RawQuic::start(|c| c.limits.hello_timeout = Duration::from_millis(500)).await;
    let conn = quic.connect().await.unwrap();
    match within(30, conn.closed()).await {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, 1002u32.into(), "{close:?}")
        }
        other => panic!("closed by {other:?}"),
    }
}
