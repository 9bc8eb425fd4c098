//! Issue 2 end to end on real loopback sockets: a server and a client with striped WebSocket
//! carriers carry many concurrent echo streams byte-exact, spread over every carrier; a stalled
//! reader does not slow the others; v1 still works; a wrong token is refused.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use underpass::client::{connect_session, ClientError, ClientOptions, ClientSession};
use underpass::mux::{Session, SessionEvent};
use underpass::proto::StreamOpen;

/// Echoes every stream the peer opens on `session`, chunk by chunk, without copying.
fn spawn_echo(session: Session) {
    tokio::spawn(async move {
        while let Some(ev) = session.next_event().await {
            if let SessionEvent::Incoming(stream, _) = ev {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    while let Ok(Some(chunk)) = r.recv_chunk().await {
                        if w.send(chunk).await.is_err() {
                            return;
                        }
                    }
                    let _ = w.finish();
                });
            }
        }
    });
}

async fn connected(connections: u32) -> (underpass::server::Server, Session, Session) {
    let server = server().await;
    let opts = ClientOptions::new(server.control_url(), TOKEN).connections(connections);
    let (client, hello) = within(10, connect_session(&opts)).await.unwrap();
    assert_eq!(hello.connections_granted.unwrap_or(1), connections.min(8));
    let server_side = within(5, async {
        loop {
            if let Some((_, s)) = server.sessions().into_iter().next() {
                return s;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    (server, client, server_side)
}

async fn echo_once(session: &Session, data: Bytes) -> Vec<u8> {
    echo_on(session.open(&StreamOpen::tcp(1)).unwrap(), data).await
}

/// Sends `data` on an opened stream, half-closes, and collects the echo.
async fn echo_on(stream: underpass::mux::MuxStream, data: Bytes) -> Vec<u8> {
    let (mut r, mut w) = stream.split();
    let writer = tokio::spawn(async move {
        w.send(data).await.unwrap();
        w.finish().unwrap();
        w
    });
    let mut out = Vec::new();
    while let Some(chunk) = r.recv_chunk().await.unwrap() {
        out.extend_from_slice(&chunk);
    }
    drop(writer.await.unwrap());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_echo_streams_over_four_striped_carriers() {
    let (server, client, server_side) = connected(4).await;
    spawn_echo(client.clone());
    // Wait until every carrier has joined on the server side.
    within(5, async {
        while server_side.inspect(|st| {
            (0..st.carrier_count())
                .filter(|i| st.carrier_alive(*i))
                .count()
        }) < 4
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let mut tasks = Vec::new();
    let mut total = 0usize;
    let mut spread = [0usize; 4];
    for i in 0..1000u64 {
        // Sizes from 0 to 1 MiB, skewed small like real traffic, a few at the maximum.
        let len = match i % 10 {
            0 => 1 << 20,
            1..=3 => (pattern(4, i)[0] as usize) << 12,
            _ => (pattern(4, i)[1] as usize) * 37,
        };
        total += len;
        let data = Bytes::from(pattern(len, i));
        // The carrier is read at open time: each stream is pinned where its STREAM_OPEN went.
        let stream = server_side.open(&StreamOpen::tcp(1)).unwrap();
        let carrier = server_side
            .inspect(|st| st.stream_carrier(stream.id()))
            .unwrap();
        spread[carrier] += 1;
        tasks.push(tokio::spawn(async move {
            let out = echo_on(stream, data.clone()).await;
            assert!(
                out == data[..],
                "stream {i}: {} bytes back of {}",
                out.len(),
                data.len()
            );
        }));
    }
    for t in tasks {
        within(120, t).await.unwrap();
    }
    // The opener picks the least-loaded carrier, so every carrier carried a share.
    assert!(
        spread.iter().all(|n| *n > 0),
        "streams per carrier: {spread:?}"
    );
    let stats = server_side.inspect(|st| st.stats().clone());
    assert!(stats.data_bytes_sent as usize >= total);
    assert_eq!(stats.streams_opened, 1000);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_slow_the_others() {
    let (_server, client, server_side) = connected(4).await;
    // The client side reads nothing from the first stream it is offered.
    let stalled_session = client.clone();
    let (stalled_tx, stalled_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut stalled_tx = Some(stalled_tx);
        let mut parked = Vec::new();
        while let Some(ev) = stalled_session.next_event().await {
            if let SessionEvent::Incoming(stream, _) = ev {
                if let Some(tx) = stalled_tx.take() {
                    let _ = tx.send(stream.id());
                    parked.push(stream);
                    continue;
                }
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    while let Ok(Some(c)) = r.recv_chunk().await {
                        if w.send(c).await.is_err() {
                            return;
                        }
                    }
                    let _ = w.finish();
                });
            }
        }
    });
    let window = client.inspect(|st| st.config().stream_window) as usize;
    let stalled = server_side.open(&StreamOpen::tcp(1)).unwrap();
    let stalled_id = within(5, stalled_rx).await.unwrap();
    let (_stalled_r, mut stalled_w) = stalled.split();
    let stuck_writer = tokio::spawn(async move {
        // 4 windows: only one can be delivered while nobody reads.
        let _ = stalled_w.send(Bytes::from(vec![1u8; 4 * window])).await;
    });
    let mut others = Vec::new();
    for i in 0..20u64 {
        let session = server_side.clone();
        others.push(tokio::spawn(async move {
            let data = Bytes::from(pattern(2 * window, i));
            assert_eq!(echo_once(&session, data.clone()).await, data[..]);
        }));
    }
    for t in others {
        within(60, t).await.unwrap();
    }
    let buffered = client.inspect(|st| st.stream_buffered(stalled_id)).unwrap();
    assert!(
        buffered <= window,
        "stalled stream buffered {buffered} > window {window}"
    );
    assert!(buffered > 0);
    assert!(
        !stuck_writer.is_finished(),
        "the stalled writer must still be waiting for credit"
    );
    stuck_writer.abort();
}

#[tokio::test]
async fn a_v1_client_works_against_the_same_server() {
    let (_server, client, server_side) = connected(1).await;
    assert_eq!(client.inspect(|st| st.carrier_count()), 1);
    spawn_echo(client);
    let data = Bytes::from(pattern(300_000, 9));
    assert_eq!(
        within(20, echo_once(&server_side, data.clone())).await,
        data[..]
    );
}

#[tokio::test]
async fn a_wrong_token_is_refused_clearly() {
    let server = server().await;
    let opts = ClientOptions::new(server.control_url(), "not-the-token");
    let err = within(10, ClientSession::connect(&opts)).await.unwrap_err();
    assert!(matches!(err, ClientError::Auth(_)), "{err}");
    assert!(err.to_string().contains("token"), "{err}");
    assert!(server.sessions().is_empty());
    let refusals = server.state().counters.snapshot().refusals_by_code;
    assert_eq!(refusals.get(&11), Some(&1), "one AUTH refusal counted");
}

#[tokio::test]
async fn a_silent_carrier_is_closed_after_the_hello_timeout() {
    let server = server_with(|c| c.limits.hello_timeout = Duration::from_millis(200)).await;
    let transport = underpass_transports::ws::WsTransport::new();
    use underpass_transports::Transport;
    let mut carrier = transport
        .connect(&underpass_transports::Endpoint {
            url: server.control_url(),
            subprotocol: "hoody-tunnel.v1".into(),
            bearer: None,
        })
        .await
        .unwrap();
    // No HELLO: the server must hang up by itself.
    let end = within(5, carrier.rx.recv()).await;
    assert!(
        !matches!(end, Ok(Some(_))),
        "server should close, got {end:?}"
    );
}

/// Sends a HELLO on a raw carrier and returns the GOAWAY code and the close code that follow.
async fn refused_hello(url: String, token: &str) -> (u16, u16) {
    use underpass::proto::{decode_message, encode_frame, Frame, Hello, HelloAuth};
    use underpass_transports::Transport;
    let mut carrier = underpass_transports::ws::WsTransport::new()
        .connect(&underpass_transports::Endpoint {
            url,
            subprotocol: "hoody-tunnel.v1".into(),
            bearer: None,
        })
        .await
        .unwrap();
    let hello = Frame::Hello(Hello {
        version: "hoody-tunnel.v1".into(),
        capabilities: vec![],
        auth: Some(HelloAuth {
            kind: "bearer".into(),
            token: token.into(),
        }),
        resume: None,
        max_connections: None,
    });
    let mut out = bytes::BytesMut::new();
    encode_frame(&hello, &mut out).unwrap();
    carrier.tx.send(out.freeze()).await.unwrap();
    let first = within(5, carrier.rx.recv()).await.unwrap().unwrap();
    let goaway = match decode_message(&first).unwrap().remove(0) {
        Frame::GoAway(g) => g.code.0,
        other => panic!("expected GOAWAY, got {other:?}"),
    };
    let end = within(5, carrier.rx.recv()).await.unwrap_err();
    let close = underpass_transports::close_reason(&end)
        .map(|r| r.code)
        .unwrap_or_else(|| panic!("expected a close code, got {end}"));
    (goaway, close)
}

#[tokio::test]
async fn refusals_carry_the_protocol_codes() {
    let server = server_with(|c| c.limits.max_sessions = 1).await;
    // Bad auth: GOAWAY AUTH (11), then WebSocket close 1002.
    assert_eq!(
        refused_hello(server.control_url(), "wrong").await,
        (11, 1002)
    );
    // Session limit: GOAWAY RESOURCE_EXHAUSTED (14), then close 1013.
    let _first = ClientSession::connect(&ClientOptions::new(server.control_url(), TOKEN))
        .await
        .unwrap();
    assert_eq!(refused_hello(server.control_url(), TOKEN).await, (14, 1013));
    let err = ClientSession::connect(&ClientOptions::new(server.control_url(), TOKEN))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("session limit"), "{err}");
}
