//! Queues a token holder can fill, filled from outside with hand-built frames over a real
//! WebSocket carrier: response heads on one stream, answers to BINDs it never reads, a BIND
//! whose `clientBindRef` is as large as a frame, and `forward` STREAM_OPENs past the connection
//! budget. Each is bounded and answered with a clear code; the server stays up.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use underpass::proto::{
    Bind, BindErrorCode, BindKind, BindMode, ErrorCode, Frame, ResponseHead, RouteMode, RouteSpec,
    StreamOpen,
};
use underpass::server::Server;

fn route_bind(name: &str) -> Bind {
    Bind {
        client_bind_ref: Value::String(name.into()),
        container_port: None,
        route: Some(RouteSpec {
            subdomain: Some(name.into()),
            mode: RouteMode::Single,
        }),
        ..raw_bind(BindKind::Http, BindMode::Expose, 0)
    }
}

fn head(status: u16, is_final: bool) -> Frame {
    Frame::ResponseHead {
        stream_id: 2,
        head: ResponseHead {
            status,
            headers: vec![("x-pad".into(), "p".repeat(1000))],
            is_final,
        },
    }
}

/// A raw session holding route `name` and the stream id of a visitor's request to it (the
/// visitor waits in the background).
async fn request_on_raw_route(server: &Server, name: &str) -> (RawPeer, u32) {
    let (mut peer, _) = RawPeer::session(server).await;
    peer.send(&[Frame::Bind(route_bind(name))]).await;
    peer.expect("BIND_OK", |f| matches!(f, Frame::BindOk(_)))
        .await;
    let addr = server.local_addr();
    let host = format!("{name}.{DOMAIN}");
    tokio::spawn(async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        // Never reads the answer.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let open = peer
        .expect("STREAM_OPEN", |f| matches!(f, Frame::StreamOpen { .. }))
        .await;
    let Frame::StreamOpen { stream_id, .. } = open else {
        unreachable!()
    };
    (peer, stream_id)
}

async fn expect_reset(peer: &mut RawPeer, stream: u32) -> (ErrorCode, String) {
    match peer
        .expect(
            "RESET",
            |f| matches!(f, Frame::Reset { stream_id, .. } if *stream_id == stream),
        )
        .await
    {
        Frame::Reset { code, reason, .. } => (code, reason),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_heads_after_the_final_one_reset_the_stream() {
    let server = domain_server().await;
    let (mut peer, stream) = request_on_raw_route(&server, "heads").await;
    assert_eq!(stream, 2);
    let heads: Vec<Frame> = (0..40).map(|_| head(200, true)).collect();
    peer.send(&heads).await;
    let (code, reason) = expect_reset(&mut peer, stream).await;
    assert_eq!(code, ErrorCode::PROTOCOL, "{reason}");
    assert!(reason.contains("final"), "{reason}");
    // The session goes on: another request on the same route is served.
    assert!(!server.state().sessions.all().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_run_of_interim_heads_is_cut() {
    let server = domain_server().await;
    let (mut peer, stream) = request_on_raw_route(&server, "interim").await;
    for _ in 0..4 {
        let heads: Vec<Frame> = (0..40).map(|_| head(103, false)).collect();
        peer.send(&heads).await;
    }
    let (code, reason) = expect_reset(&mut peer, stream).await;
    assert_eq!(code, ErrorCode::ENHANCE_YOUR_CALM, "{reason}");
    assert!(reason.contains("64"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_client_bind_ref_is_not_echoed() {
    let server = server().await;
    let (mut peer, _) = RawPeer::session(&server).await;
    let bind = Bind {
        client_bind_ref: Value::String("r".repeat(60_000)),
        ..raw_bind(BindKind::Tcp, BindMode::Pull, 0)
    };
    peer.send(&[Frame::Bind(bind)]).await;
    let answer = peer
        .expect("BIND_ERR", |f| {
            matches!(f, Frame::BindErr(_) | Frame::BindOk(_))
        })
        .await;
    let Frame::BindErr(err) = answer else {
        panic!("a 60 KB reference was accepted: {answer:?}")
    };
    assert_eq!(err.code, BindErrorCode::InvalidRef, "{}", err.message);
    assert_eq!(err.client_bind_ref, Value::Null);
    assert!(err.message.contains("256"), "{}", err.message);
    // A reasonable reference still works on the same session.
    let bind = Bind {
        client_bind_ref: Value::String("ok".into()),
        ..raw_bind(BindKind::Tcp, BindMode::Pull, 0)
    };
    peer.send(&[Frame::Bind(bind)]).await;
    let ok = peer
        .expect("BIND_OK", |f| matches!(f, Frame::BindOk(_)))
        .await;
    let Frame::BindOk(ok) = ok else {
        unreachable!()
    };
    assert_eq!(ok.client_bind_ref, Value::String("ok".into()));
}

/// A BIND the server refuses at once (INVALID_KIND), with a 200-byte reference made of `n`:
/// each answer is about 330 bytes, so the socket buffers (a few MiB on loopback) fill up.
fn refused_bind(n: usize) -> Frame {
    Frame::Bind(Bind {
        client_bind_ref: Value::from(format!("{n:0>200}")),
        ..raw_bind(BindKind::Unknown, BindMode::Expose, 0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_peer_never_reads_are_bounded() {
    let server = server().await;
    let (mut peer, hello) = RawPeer::session(&server).await;
    let entry = server.state().sessions.get(&hello.session_id).unwrap();
    let refused = || {
        entry
            .client
            .usage
            .refused_binds()
            .get("INVALID_KIND")
            .copied()
            .unwrap_or(0)
    };
    // 64 BINDs per message, each batch handled before the next is sent (so the server's queue
    // of frames waiting to be handled never fills), and never a read: the answers pile up.
    let mut sent = 0;
    while sent < 40_000 && !entry.session().is_closed() {
        let batch: Vec<Frame> = (sent..sent + 64).map(refused_bind).collect();
        peer.send(&batch).await;
        sent += 64;
        within(10, async {
            while refused() < sent as u64 && !entry.session().is_closed() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    }
    assert!(
        entry.session().is_closed(),
        "{sent} unread answers did not end the session"
    );
    // Reading now: the answers queued before the limit, then GOAWAY ENHANCE_YOUR_CALM.
    let mut answers = 0;
    let goaway = loop {
        match peer.next().await {
            Some(Frame::BindErr(_)) => answers += 1,
            Some(Frame::GoAway(g)) => break g,
            Some(_) => {}
            None => panic!("closed without GOAWAY after {answers} answers"),
        }
    };
    assert_eq!(
        goaway.code,
        ErrorCode::ENHANCE_YOUR_CALM,
        "{}",
        goaway.message
    );
    assert!(
        goaway.message.contains("waiting for the peer to read"),
        "{}",
        goaway.message
    );
    assert!(answers < sent, "{answers} of {sent}");
}

/// A TCP server that accepts and holds connections, counting them.
async fn holding_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_streams_past_the_connection_budget_are_refused() {
    let (target, accepted) = holding_server().await;
    let server = server_with(|c| {
        c.limits.fd_budget = Some(3);
        c.allow_forward = vec![target.port()..=target.port()];
    })
    .await;
    // The raw carrier takes one permit: two are left for forward connections.
    let (mut peer, _) = RawPeer::session(&server).await;
    peer.send(&[Frame::Bind(raw_bind(
        BindKind::Tcp,
        BindMode::Forward,
        target.port(),
    ))])
    .await;
    let ok = peer
        .expect("BIND_OK", |f| matches!(f, Frame::BindOk(_)))
        .await;
    let Frame::BindOk(ok) = ok else {
        unreachable!()
    };
    let opens: Vec<Frame> = (0..10u32)
        .map(|i| Frame::StreamOpen {
            stream_id: 1 + 2 * i,
            open: StreamOpen::tcp(ok.bind_id),
        })
        .collect();
    peer.send(&opens).await;
    let mut refused = 0;
    while refused < 8 {
        let reset = peer
            .expect("RESET", |f| matches!(f, Frame::Reset { .. }))
            .await;
        let Frame::Reset { code, .. } = reset else {
            unreachable!()
        };
        assert_eq!(code, ErrorCode::REFUSED_STREAM);
        refused += 1;
    }
    // Give any stray connect time to land, then count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "connections made to the target"
    );
    // The server still answers.
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    tcp.write_all(
        b"GET /__underpass__/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = String::new();
    within(10, tcp.read_to_string(&mut out)).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 503"),
        "budget still spent by the held forwards: {out}"
    );
}
