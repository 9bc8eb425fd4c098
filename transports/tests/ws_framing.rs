//! The WebSocket carrier's own framing against another implementation (tungstenite) and against
//! raw bytes on a socket: fragmented messages, control frames between fragments, the close
//! handshake both ways, masking rules, size limits, and bytes that follow the `101` at once.

mod support;

use support::*;
use tokio_tungstenite::tungstenite::handshake::server::{
    Request as HsRequest, Response as HsResponse,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::WebSocketStream;

/// A plain tungstenite client of the test server (it masks, as a client must).
async fn tungstenite_client(addr: SocketAddr) -> WebSocketStream<TcpStream> {
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, tcp)
        .await
        .unwrap()
        .0
}

/// A tungstenite server for one connection that picks our subprotocol; returns its address and
/// the accepted stream.
async fn tungstenite_server() -> (
    SocketAddr,
    tokio::task::JoinHandle<WebSocketStream<TcpStream>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let pick = |_: &HsRequest, mut response: HsResponse| {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
            Ok(response)
        };
        tokio_tungstenite::accept_hdr_async(tcp, pick)
            .await
            .unwrap()
    });
    (addr, accepted)
}

fn fragment(payload: &'static [u8], first: bool, last: bool) -> Message {
    let opcode = if first {
        OpCode::Data(Data::Binary)
    } else {
        OpCode::Data(Data::Continue)
    };
    Message::Frame(Frame::message(Bytes::from_static(payload), opcode, last))
}

#[tokio::test]
async fn fragmented_message_with_a_ping_between_fragments_reaches_the_server_whole() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut raw = tungstenite_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        raw.send(fragment(b"frag", true, false)).await.unwrap();
        raw.send(Message::Ping(Bytes::from_static(b"between")))
            .await
            .unwrap();
        raw.send(fragment(b"mented ", false, false)).await.unwrap();
        raw.send(fragment(b"message", false, true)).await.unwrap();
        raw.send(Message::Binary(Bytes::from_static(b"next")))
            .await
            .unwrap();
        assert_eq!(recv_some(&mut carrier.rx).await, &b"fragmented message"[..]);
        assert_eq!(recv_some(&mut carrier.rx).await, &b"next"[..]);
        match raw.next().await {
            Some(Ok(Message::Pong(p))) => assert_eq!(p, &b"between"[..]),
            other => panic!("expected the pong, got {other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn our_client_talks_to_a_tungstenite_server() {
    guarded(async {
        let (addr, accepted) = tungstenite_server().await;
        let mut client = WsTransport::new()
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap();
        let mut raw = accepted.await.unwrap();
        // Masked correctly, or tungstenite (which refuses unmasked client frames) would fail.
        let big = pattern(1, 200_000);
        client
            .tx
            .send_parts(vec![
                big.slice(..7),
                big.slice(7..150_000),
                big.slice(150_000..),
            ])
            .await
            .unwrap();
        match raw.next().await {
            Some(Ok(Message::Binary(got))) => assert!(got == big, "content"),
            other => panic!("expected the message, got {other:?}"),
        }
        // Server to client: fragments with a ping between them, then a plain message.
        raw.send(fragment(b"one ", true, false)).await.unwrap();
        raw.send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        raw.send(fragment(b"two", false, true)).await.unwrap();
        raw.send(Message::Binary(big.clone())).await.unwrap();
        assert_eq!(recv_some(&mut client.rx).await, &b"one two"[..]);
        assert!(recv_some(&mut client.rx).await == big);
        match raw.next().await {
            Some(Ok(Message::Pong(p))) => assert_eq!(p, &b"p"[..]),
            other => panic!("expected the pong, got {other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn close_handshake_with_tungstenite_both_ways() {
    guarded(async {
        // We close: the peer sees close 1000 and answers; our rx then ends cleanly.
        let mut server = TestServer::start(None).await;
        let mut raw = tungstenite_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        carrier.tx.send(Bytes::from_static(b"last")).await.unwrap();
        carrier.tx.close().await.unwrap();
        assert_eq!(
            raw.next().await.unwrap().unwrap(),
            Message::Binary(Bytes::from_static(b"last"))
        );
        match raw.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal),
            other => panic!("expected close 1000, got {other:?}"),
        }
        // tungstenite queued its answer; flushing sends it.
        raw.flush().await.unwrap();
        assert!(carrier.rx.recv().await.unwrap().is_none());
        // The server ends the TCP connection once its carrier is dropped (RFC 6455 7.1.1).
        drop(carrier);
        assert!(raw.next().await.is_none());

        // The peer closes: our rx ends cleanly and the peer gets the answering close.
        let mut raw = tungstenite_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        raw.close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        assert!(carrier.rx.recv().await.unwrap().is_none());
        match raw.next().await {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected the answering close, got {other:?}"),
        }
        let err = carrier
            .tx
            .send(Bytes::from_static(b"late"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    })
    .await
}

#[tokio::test]
async fn a_message_over_the_limit_from_tungstenite_is_refused() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut raw = tungstenite_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        // In two fragments that are each under the limit.
        let half = MAX_MESSAGE_BYTES / 2 + 1;
        raw.send(Message::Frame(Frame::message(
            pattern(0, half),
            OpCode::Data(Data::Binary),
            false,
        )))
        .await
        .unwrap();
        let _ = raw
            .send(Message::Frame(Frame::message(
                pattern(1, half),
                OpCode::Data(Data::Continue),
                true,
            )))
            .await;
        let err = carrier.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("limit"), "{err}");
    })
    .await
}

/// Upgrades a raw TCP connection to the test server by hand and returns it after the `101`.
async fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

#[tokio::test]
async fn the_server_refuses_an_unmasked_client_frame() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut tcp = raw_upgrade(server.addr).await;
        let mut carrier = server.next().await.carrier;
        tcp.write_all(&[0x82, 0x02, b'h', b'i']).await.unwrap();
        let err = carrier.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("unmasked"), "{err}");
    })
    .await
}

/// A server that answers the upgrade with `101` and, in the same write, the frames `after`.
async fn server_sending_after_101(after: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            match tcp.read_u8().await {
                Ok(b) => head.push(b),
                Err(_) => return,
            }
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .unwrap();
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        )
        .into_bytes();
        answer.extend_from_slice(&after);
        tcp.write_all(&answer).await.unwrap();
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    addr
}

#[tokio::test]
async fn frames_sent_with_the_101_are_not_lost() {
    guarded(async {
        let mut frames = vec![0x82, 5];
        frames.extend_from_slice(b"early");
        frames.extend_from_slice(&[0x82, 4]);
        frames.extend_from_slice(b"more");
        let addr = server_sending_after_101(frames).await;
        let mut client = WsTransport::new()
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap();
        assert_eq!(recv_some(&mut client.rx).await, &b"early"[..]);
        assert_eq!(recv_some(&mut client.rx).await, &b"more"[..]);
    })
    .await
}

#[tokio::test]
async fn the_client_refuses_a_masked_server_frame() {
    guarded(async {
        let addr = server_sending_after_101(vec![0x82, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]).await;
        let mut client = WsTransport::new()
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap();
        let err = client.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("masked frame from the server"),
            "{err}"
        );
    })
    .await
}
