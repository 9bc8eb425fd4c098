//! `RecvHalf::recv_chunks` over a real session (in-memory carrier): everything already received
//! comes out of one call, as received, within the limits given; EOF comes after the data.

use bytes::Bytes;
use underpass_transports::mem::MemTransport;
use underpass_transports::{Endpoint, Transport};

use crate::mux::{MuxConfig, Role, Session, SessionEvent};
use crate::proto::StreamOpen;

/// A server session and a client session joined by one in-memory carrier.
async fn sessions() -> (Session, Session) {
    let (transport, mut acceptor) = MemTransport::new();
    let endpoint = Endpoint {
        url: "mem://chunks".into(),
        subprotocol: "test".into(),
        bearer: None,
    };
    let dialed = transport.connect(&endpoint).await.unwrap();
    let accepted = acceptor.accept().await.unwrap();
    (
        Session::start(MuxConfig::new(Role::Server), accepted),
        Session::start(MuxConfig::new(Role::Client), dialed),
    )
}

#[tokio::test]
async fn everything_received_comes_out_of_one_call() {
    let (server, client) = sessions().await;
    let mut sent = server.open(&StreamOpen::tcp(1)).unwrap();
    let payloads: Vec<Bytes> = (1..=5u8)
        .map(|i| Bytes::from(vec![i; 1000 * i as usize]))
        .collect();
    for p in &payloads {
        sent.send(p.clone()).await.unwrap();
    }
    sent.finish().unwrap();
    let Some(SessionEvent::Incoming(stream, _)) = client.next_event().await else {
        panic!("no stream");
    };
    let id = stream.id();
    let (mut recv, _send) = stream.split();
    // Let every chunk arrive before the first call (bounded; the carrier runs on this runtime).
    let total: usize = payloads.iter().map(Bytes::len).sum();
    for _ in 0..100_000 {
        if client.inspect(|st| st.stream_buffered(id)) == Some(total) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(client.inspect(|st| st.stream_buffered(id)), Some(total));

    let mut out = Vec::new();
    assert!(recv.recv_chunks(&mut out, 3, usize::MAX).await.unwrap());
    assert_eq!(out, payloads[..3], "three chunks, the limit, in order");
    out.clear();
    assert!(recv.recv_chunks(&mut out, 64, 1).await.unwrap());
    assert_eq!(
        out,
        payloads[3..4],
        "the byte limit stops after the chunk that reaches it"
    );
    out.clear();
    assert!(recv.recv_chunks(&mut out, 64, usize::MAX).await.unwrap());
    assert_eq!(out, payloads[4..]);
    out.clear();
    assert!(
        !recv.recv_chunks(&mut out, 64, usize::MAX).await.unwrap(),
        "EOF"
    );
    assert!(out.is_empty());
}
