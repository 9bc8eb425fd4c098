//! Carrier conformance suite, written once and run for every transport.
//!
//! Each case in [`cases`] is a generic async function taking a *factory*: something that, called
//! with no argument, yields a connected `(client, server)` carrier pair, and the [`Unit`] the
//! carrier keeps intact. [`conformance_suite!`] instantiates every case as a `#[tokio::test]` for
//! one factory. A new transport adds a factory function and one `conformance_suite!` line.
//!
//! Transport-specific tests (WebSocket upgrade details, in-memory delay and cut) follow below.
//! Only loopback is used; waits are bounded by [`GUARD`] and never used to order events.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use underpass_transports::mem::{self, MemOptions, MemTransport};
use underpass_transports::ws::{self, WsTransport};
use underpass_transports::{
    close_reason, Carrier, CarrierRx, CarrierTx, Endpoint, Transport, MAX_MESSAGE_BYTES,
};

/// Upper bound for any single test; only reached if something hangs.
const GUARD: Duration = Duration::from_secs(30);

async fn guarded(test: impl Future<Output = ()>) {
    tokio::time::timeout(GUARD, test)
        .await
        .expect("test did not finish in time");
}

/// Bytes `i % 251` (a prime, so slices at different offsets differ), long enough to slice any
/// message from it without copying.
fn base() -> &'static Bytes {
    static BASE: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        (0..MAX_MESSAGE_BYTES + 512)
            .map(|i| (i % 251) as u8)
            .collect()
    })
}

/// A message of `len` bytes whose content depends on `seed`.
fn pattern(seed: usize, len: usize) -> Bytes {
    let offset = seed % 251;
    base().slice(offset..offset + len)
}

/// What a carrier keeps intact, so what the cases may send through it.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// Any byte string up to `MAX_MESSAGE_BYTES` comes out of one `recv` as it went into one
    /// `send` (WebSocket, in-memory).
    Message,
    /// Only protocol frames (9-byte header, payload up to 65,536 bytes) are carried, and `recv`
    /// yields them one at a time (QUIC, whose streams are byte streams). The cases then wrap
    /// each of their messages into one DATA frame.
    #[cfg_attr(not(feature = "quic"), allow(dead_code))]
    Frame,
}

/// Frame header length and largest frame payload (PROTOCOL.md "Frames").
const FRAME_HEADER: usize = 9;
const MAX_FRAME_PAYLOAD: usize = 65_536;

impl Unit {
    /// Largest content a case may put in one message.
    fn max_content(self) -> usize {
        match self {
            Unit::Message => MAX_MESSAGE_BYTES,
            Unit::Frame => MAX_FRAME_PAYLOAD,
        }
    }

    /// `content` as one message: as is, or as the payload of a DATA frame on stream 1 (whose
    /// header declares the content's length even past the limit, to test the refusal).
    fn wrap(self, content: Bytes) -> Bytes {
        match self {
            Unit::Message => content,
            Unit::Frame => {
                let mut v = Vec::with_capacity(FRAME_HEADER + content.len());
                v.push(0x12);
                v.extend_from_slice(&1u32.to_be_bytes());
                v.extend_from_slice(&u32::try_from(content.len()).unwrap().to_be_bytes());
                v.extend_from_slice(&content);
                v.into()
            }
        }
    }

    /// The content of a received message, after checking the frame header around it.
    fn unwrap(self, got: &[u8], content_len: usize) -> &[u8] {
        match self {
            Unit::Message => got,
            Unit::Frame => {
                assert!(got.len() >= FRAME_HEADER, "frame shorter than its header");
                assert_eq!(got[..5], [0x12, 0, 0, 0, 1], "frame header");
                assert_eq!(
                    got[5..9],
                    u32::try_from(content_len).unwrap().to_be_bytes(),
                    "frame length"
                );
                &got[FRAME_HEADER..]
            }
        }
    }

    fn pattern(self, seed: usize, len: usize) -> Bytes {
        self.wrap(pattern(seed, len))
    }

    fn numbered(self, i: u32, len: usize) -> Bytes {
        self.wrap(numbered(i, len))
    }

    fn check_numbered(self, got: &[u8], i: u32, len: usize) {
        check_numbered(self.unwrap(got, len), i, len)
    }
}

/// A message carrying its sequence number in the first 4 bytes, `len >= 4` bytes in all.
fn numbered(i: u32, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&i.to_be_bytes());
    v.extend_from_slice(&pattern(i as usize, len - 4));
    v.into()
}

fn check_numbered(got: &[u8], i: u32, len: usize) {
    assert_eq!(got.len(), len, "length of message {i}");
    assert_eq!(got[..4], i.to_be_bytes(), "message {i} out of order");
    assert!(
        got[4..] == pattern(i as usize, len - 4)[..],
        "content of message {i}"
    );
}

async fn recv_some(rx: &mut Box<dyn CarrierRx>) -> Bytes {
    rx.recv()
        .await
        .expect("recv failed")
        .expect("carrier ended early")
}

/// Sends all messages from a task, so a sender blocked by back-pressure cannot deadlock a test
/// that receives on the same task. Gives the sending half back to keep the carrier open.
fn spawn_sender(
    mut tx: Box<dyn CarrierTx>,
    messages: Vec<Bytes>,
) -> tokio::task::JoinHandle<Box<dyn CarrierTx>> {
    tokio::spawn(async move {
        for (i, m) in messages.into_iter().enumerate() {
            tx.send(m).await.expect("send failed");
            if i % 16 == 0 {
                // Let the receiver interleave, so cancellation meets partial messages.
                tokio::task::yield_now().await;
            }
        }
        tx
    })
}

/// The cases. Each takes a factory yielding a connected `(client, server)` pair.
mod cases {
    use super::*;

    /// Message boundaries hold for sizes around the WebSocket length-encoding steps, both ways.
    pub async fn message_boundaries<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        const SIZES: &[usize] = &[
            0,
            1,
            2,
            125,
            126,
            127,
            128,
            1000,
            65_535,
            65_536,
            65_537,
            100_000,
            MAX_MESSAGE_BYTES,
        ];
        let (client, server) = make().await;
        for (tx, mut rx) in [(client.tx, server.rx), (server.tx, client.rx)] {
            let messages: Vec<Bytes> = SIZES
                .iter()
                .enumerate()
                .filter(|&(_, &len)| len <= unit.max_content())
                .map(|(i, &len)| unit.pattern(i, len))
                .collect();
            let sender = spawn_sender(tx, messages.clone());
            for expected in &messages {
                let got = recv_some(&mut rx).await;
                assert_eq!(got.len(), expected.len());
                assert!(
                    got == expected,
                    "content of a {}-byte message",
                    expected.len()
                );
            }
            sender.await.unwrap();
        }
    }

    /// A message of exactly the unit's maximum passes; one byte more is refused by the receiver
    /// with `InvalidData` (whatever the sender saw), in both directions.
    pub async fn size_limit<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        for direction in 0..2 {
            let (client, server) = make().await;
            let (mut tx, mut rx, _keep) = if direction == 0 {
                (client.tx, server.rx, (server.tx, client.rx))
            } else {
                (server.tx, client.rx, (client.tx, server.rx))
            };
            let max = unit.pattern(3, unit.max_content());
            tx.send(max.clone()).await.unwrap();
            assert!(recv_some(&mut rx).await == max);

            // The receiver may stop reading half-way, so the send can block or fail.
            let sender = tokio::spawn(async move {
                let _ = tx.send(unit.pattern(4, unit.max_content() + 1)).await;
                tx
            });
            let err = rx.recv().await.expect_err("oversized message accepted");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
            // An error is final: never mistaken later for a clean close or a message.
            assert!(
                rx.recv().await.is_err(),
                "recv after the size error did not fail"
            );
            sender.abort();
        }
    }

    /// 1,000 messages of varying sizes arrive in order.
    pub async fn thousand_in_order<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        let (client, mut server) = make().await;
        let len = |i: u32| 4 + (i as usize * 37) % 3000;
        let sender = spawn_sender(
            client.tx,
            (0..1000).map(|i| unit.numbered(i, len(i))).collect(),
        );
        for i in 0..1000 {
            unit.check_numbered(&recv_some(&mut server.rx).await, i, len(i));
        }
        sender.await.unwrap();
    }

    /// A clean close is seen by the peer as `Ok(None)` after the messages sent before it, and
    /// again on every later `recv`; the closed side can no longer send; close is idempotent.
    pub async fn clean_close<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        for direction in 0..2 {
            let (client, server) = make().await;
            let (mut closer, mut peer) = if direction == 0 {
                (client, server)
            } else {
                (server, client)
            };
            for i in 0..3 {
                closer.tx.send(unit.numbered(i, 100)).await.unwrap();
            }
            closer.tx.close().await.unwrap();
            for i in 0..3 {
                unit.check_numbered(&recv_some(&mut peer.rx).await, i, 100);
            }
            assert!(
                peer.rx.recv().await.unwrap().is_none(),
                "clean close not seen as Ok(None)"
            );
            assert!(
                peer.rx.recv().await.unwrap().is_none(),
                "Ok(None) not repeated"
            );
            assert!(closer.tx.send(Bytes::from_static(b"late")).await.is_err());
            closer.tx.close().await.unwrap();
        }
    }

    /// Dropping a carrier without closing it is not a clean close: the peer's `recv` errors.
    pub async fn drop_is_not_clean<F, Fut>(make: F, _unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        for direction in 0..2 {
            let (client, server) = make().await;
            let (gone, mut peer) = if direction == 0 {
                (client, server)
            } else {
                (server, client)
            };
            drop(gone);
            assert!(
                peer.rx.recv().await.is_err(),
                "a dropped peer looked like a clean close"
            );
        }
    }

    /// `recv` futures cancelled by a timeout that fires first (or after a couple of polls) lose
    /// no message and corrupt none. The sender sends each message only once the previous one
    /// arrived, so the receiver is usually waiting on a message still in flight when it is
    /// cancelled.
    pub async fn cancelled_recv_loses_nothing<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        const N: u32 = 200;
        let len = move |i: u32| 4 + (i as usize * 7919) % 150_000.min(unit.max_content() - 4);
        let (client, mut server) = make().await;
        let _client_rx = client.rx;

        // Nothing is sent yet, so this one is surely cancelled.
        let first = tokio::time::timeout(Duration::from_millis(20), server.rx.recv()).await;
        assert!(first.is_err(), "recv returned with nothing sent");
        let mut cancelled = 1u32;

        let (ack, mut acks) = mpsc::unbounded_channel::<()>();
        let mut tx = client.tx;
        let sender = tokio::spawn(async move {
            for i in 0..N {
                tx.send(unit.numbered(i, len(i)))
                    .await
                    .expect("send failed");
                if acks.recv().await.is_none() {
                    break;
                }
            }
            tx
        });
        let mut round = 0u32;
        for next in 0..N {
            let message = loop {
                round += 1;
                let got = if round.is_multiple_of(2) {
                    tokio::select! {
                        r = server.rx.recv() => Some(r),
                        () = tokio::time::sleep(Duration::from_micros(50)) => None,
                    }
                } else {
                    // Two polls of recv, then cancelled.
                    tokio::select! {
                        biased;
                        r = server.rx.recv() => Some(r),
                        () = tokio::task::yield_now() => None,
                    }
                };
                match got {
                    Some(r) => break r.expect("recv failed").expect("carrier ended early"),
                    None => cancelled += 1,
                }
            };
            unit.check_numbered(&message, next, len(next));
            let _ = ack.send(());
        }
        sender.await.unwrap();
        assert!(cancelled >= 1);
    }

    /// Both directions at once, each half driven by its own task.
    pub async fn both_directions<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        const N: u32 = 500;
        let len = |i: u32| 4 + (i as usize * 131) % 20_000;
        let (client, server) = make().await;
        let messages = || (0..N).map(|i| unit.numbered(i, len(i))).collect::<Vec<_>>();
        let up = spawn_sender(client.tx, messages());
        let down = spawn_sender(server.tx, messages());
        let receiver = |mut rx: Box<dyn CarrierRx>| {
            tokio::spawn(async move {
                for i in 0..N {
                    unit.check_numbered(&recv_some(&mut rx).await, i, len(i));
                }
                rx
            })
        };
        let at_server = receiver(server.rx);
        let at_client = receiver(client.rx);
        let (a, b, c, d) = tokio::join!(up, down, at_server, at_client);
        a.unwrap();
        b.unwrap();
        c.unwrap();
        d.unwrap();
    }
}

/// Instantiates every case of [`cases`] as a test for one factory; the unit defaults to
/// [`Unit::Message`].
macro_rules! conformance_suite {
    ($name:ident, $factory:ident) => {
        conformance_suite!($name, $factory, Unit::Message);
    };
    ($name:ident, $factory:ident, $unit:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn message_boundaries() {
                guarded(cases::message_boundaries($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn size_limit() {
                guarded(cases::size_limit($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn thousand_in_order() {
                guarded(cases::thousand_in_order($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn clean_close() {
                guarded(cases::clean_close($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn drop_is_not_clean() {
                guarded(cases::drop_is_not_clean($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cancelled_recv_loses_nothing() {
                guarded(cases::cancelled_recv_loses_nothing($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn both_directions() {
                guarded(cases::both_directions($factory, $unit)).await
            }
        }
    };
}

conformance_suite!(mem_suite, mem_pair);
conformance_suite!(ws_suite, ws_pair);
conformance_suite!(wss_suite, wss_pair);
#[cfg(feature = "quic")]
conformance_suite!(quic_suite, quic_pair, Unit::Frame);

// ---------------------------------------------------------------------------------------------
// Factories

const SUBPROTOCOL: &str = "hoody-tunnel.v2";
const SUPPORTED: &[&str] = &["hoody-tunnel.v1", "hoody-tunnel.v2"];

fn endpoint(url: String) -> Endpoint {
    Endpoint {
        url,
        subprotocol: SUBPROTOCOL.to_owned(),
        bearer: None,
    }
}

async fn mem_pair() -> (Carrier, Carrier) {
    let (transport, mut acceptor) = MemTransport::new();
    let client = transport
        .connect(&endpoint("mem://test".to_owned()))
        .await
        .unwrap();
    let server = acceptor.accept().await.unwrap();
    (client, server)
}

async fn ws_pair() -> (Carrier, Carrier) {
    let mut server = TestServer::start(None).await;
    let client = WsTransport::new()
        .connect(&endpoint(format!("ws://{}", server.addr)))
        .await
        .unwrap();
    (client, server.next().await.carrier)
}

async fn wss_pair() -> (Carrier, Carrier) {
    let (acceptor, client_config) = test_tls();
    let mut server = TestServer::start(Some(acceptor)).await;
    let client = WsTransport::with_tls_config(client_config)
        .connect(&endpoint(format!("wss://{}", server.addr)))
        .await
        .unwrap();
    (client, server.next().await.carrier)
}

/// A QUIC carrier pair on loopback, the server pinned by fingerprint. Acceptor and transport are
/// dropped on return: the connection lives on through the carriers.
#[cfg(feature = "quic")]
async fn quic_pair() -> (Carrier, Carrier) {
    use underpass_transports::quic::{QuicAcceptor, QuicServerCert, QuicTransport, QuicTrust};
    let cert = QuicServerCert::self_signed(&["127.0.0.1".to_owned()]).unwrap();
    let trust = QuicTrust::PinnedSha256(cert.fingerprint_sha256());
    let mut acceptor = QuicAcceptor::bind(([127, 0, 0, 1], 0).into(), cert).unwrap();
    let mut client = QuicTransport::new(trust)
        .unwrap()
        .connect(&endpoint(format!("quic://{}", acceptor.local_addr())))
        .await
        .unwrap();
    // A QUIC stream reaches the server with its first bytes, as HELLO would: send one frame
    // and take it off again so that the pair starts empty.
    let hello = Unit::Frame.pattern(0, 2);
    client.tx.send(hello.clone()).await.unwrap();
    let mut server = acceptor.accept().await.unwrap();
    assert_eq!(recv_some(&mut server.rx).await, hello);
    (client, server)
}

/// What the test server saw of one accepted upgrade.
struct Accepted {
    carrier: Carrier,
    uri: Uri,
}

/// A hyper 1.x HTTP/1.1 server on loopback that upgrades every request with `accept_upgrade`.
/// It lives until the test's runtime ends.
struct TestServer {
    addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<Accepted>,
}

impl TestServer {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sink, accepted) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = listener.accept().await {
                tcp.set_nodelay(true).unwrap();
                let sink = sink.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |mut req: Request<Incoming>| {
                        let sink = sink.clone();
                        async move {
                            let uri = req.uri().clone();
                            Ok::<_, Infallible>(
                                match ws::accept_upgrade(&mut req, SUPPORTED, Some(peer)) {
                                    Ok((response, pending)) => {
                                        tokio::spawn(async move {
                                            if let Ok(carrier) = pending.upgrade().await {
                                                let _ = sink.send(Accepted { carrier, uri });
                                            }
                                        });
                                        response
                                    }
                                    Err(rejection) => rejection.into_response(),
                                },
                            )
                        }
                    });
                    let http = http1::Builder::new();
                    let _ = match tls {
                        Some(tls) => match tls.accept(tcp).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service)
                                    .with_upgrades()
                                    .await
                            }
                            Err(_) => return,
                        },
                        None => {
                            http.serve_connection(TokioIo::new(tcp), service)
                                .with_upgrades()
                                .await
                        }
                    };
                });
            }
        });
        TestServer { addr, accepted }
    }

    async fn next(&mut self) -> Accepted {
        self.accepted.recv().await.expect("test server stopped")
    }
}

/// A TLS acceptor with a fresh self-signed certificate for 127.0.0.1 and a client config that
/// trusts exactly that certificate.
fn test_tls() -> (tokio_rustls::TlsAcceptor, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        Arc::new(client),
    )
}

// ---------------------------------------------------------------------------------------------
// WebSocket-specific

#[tokio::test]
async fn ws_unsupported_subprotocol_gets_400() {
    guarded(async {
        let server = TestServer::start(None).await;
        let mut ep = endpoint(format!("ws://{}", server.addr));
        ep.subprotocol = "bogus.v9".to_owned();
        let err = WsTransport::new()
            .connect(&ep)
            .await
            .expect_err("upgrade accepted");
        let message = err.to_string();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(message.contains("upgrade refused"), "{message}");
        assert!(message.contains("400"), "{message}");
        assert!(
            message.contains("unsupported WebSocket subprotocol"),
            "{message}"
        );
    })
    .await
}

#[tokio::test]
async fn ws_info_and_bearer_reach_the_server() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut ep = endpoint(format!("http://{}/", server.addr));
        ep.bearer = Some("s3cret-token".to_owned());
        let client = WsTransport::new().connect(&ep).await.unwrap();
        let accepted = server.next().await;
        let info = &accepted.carrier.info;
        assert_eq!(info.transport, "ws");
        assert_eq!(info.subprotocol.as_deref(), Some(SUBPROTOCOL));
        assert_eq!(info.bearer.as_deref(), Some("s3cret-token"));
        assert_eq!(info.peer.map(|p| p.ip()), Some([127, 0, 0, 1].into()));
        assert_eq!(accepted.uri.path(), "/__underpass__/control");
        assert_eq!(client.info.transport, "ws");
        assert_eq!(client.info.subprotocol.as_deref(), Some(SUBPROTOCOL));
        assert_eq!(client.info.peer, Some(server.addr));
        assert_eq!(client.info.bearer, None);

        // Without a token the server sees none.
        let _client = WsTransport::new()
            .connect(&endpoint(format!("ws://{}", server.addr)))
            .await
            .unwrap();
        assert_eq!(server.next().await.carrier.info.bearer, None);
    })
    .await
}

#[tokio::test]
async fn ws_explicit_path_is_kept() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let url = format!("ws://{}/api/v1/tunnel/connect?region=eu", server.addr);
        let _client = WsTransport::new().connect(&endpoint(url)).await.unwrap();
        let uri = server.next().await.uri;
        assert_eq!(uri.path(), "/api/v1/tunnel/connect");
        assert_eq!(uri.query(), Some("region=eu"));
    })
    .await
}

/// A one-connection server that reads the request head and answers with `respond(key)`.
async fn canned_server(respond: fn(&str) -> String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if tcp.read_exact(&mut byte).await.is_err() {
                return;
            }
            head.push(byte[0]);
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
        tcp.write_all(respond(&key).as_bytes()).await.unwrap();
        // Hold the connection until the client gives up.
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    addr
}

#[tokio::test]
async fn ws_client_refuses_101_without_subprotocol() {
    guarded(async {
        let addr = canned_server(|key| {
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            )
        })
        .await;
        let err = WsTransport::new()
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("subprotocol"), "{err}");
    })
    .await
}

#[tokio::test]
async fn ws_401_is_permission_denied() {
    guarded(async {
        let addr = canned_server(|_| {
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 9\r\nConnection: close\r\n\r\nbad token"
                .to_owned()
        })
        .await;
        let err = WsTransport::new()
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        let message = err.to_string();
        assert!(
            message.contains("upgrade refused") && message.contains("401"),
            "{message}"
        );
    })
    .await
}

#[tokio::test]
async fn ws_handshake_timeout() {
    guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let _hold = tokio::spawn(async move {
            let (_tcp, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await
        });
        let err = WsTransport::new()
            .handshake_timeout(Duration::from_millis(200))
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    })
    .await
}

#[tokio::test]
async fn ws_bad_url_is_invalid_input() {
    let err = WsTransport::new()
        .connect(&endpoint("ftp://127.0.0.1".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// A plain tungstenite client, to send what a carrier never sends.
async fn raw_client(addr: SocketAddr) -> tokio_tungstenite::WebSocketStream<TcpStream> {
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

#[tokio::test]
async fn ws_text_message_is_invalid_data() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut raw = raw_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        raw.send(Message::text("hello")).await.unwrap();
        let err = carrier.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    })
    .await
}

#[tokio::test]
async fn ws_pings_are_skipped_and_answered() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut raw = raw_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        raw.send(Message::Ping(Bytes::from_static(b"p1")))
            .await
            .unwrap();
        raw.send(Message::Pong(Bytes::from_static(b"unsolicited")))
            .await
            .unwrap();
        raw.send(Message::Binary(Bytes::from_static(b"data")))
            .await
            .unwrap();
        assert_eq!(
            recv_some(&mut carrier.rx).await,
            Bytes::from_static(b"data")
        );
        // The pong went out while recv read on.
        match raw.next().await {
            Some(Ok(Message::Pong(payload))) => assert_eq!(payload, Bytes::from_static(b"p1")),
            other => panic!("expected a pong, got {other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn ws_abnormal_close_code_is_reported() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut raw = raw_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        raw.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Policy,
            reason: "resume grace expired".into(),
        })))
        .await
        .unwrap();
        let err = carrier.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
        let reason = close_reason(&err).expect("no close reason");
        assert_eq!(
            (reason.code, reason.reason.as_str()),
            (1008, "resume grace expired")
        );
        // Not a clean close, then or later.
        let again = carrier.rx.recv().await.unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::ConnectionAborted);
    })
    .await
}

#[tokio::test]
async fn ws_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = WsTransport::new()
        .connect(&endpoint(format!("ws://{addr}")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn wss_with_untrusted_certificate_fails() {
    guarded(async {
        let (acceptor, _trusting_client) = test_tls();
        let server = TestServer::start(Some(acceptor)).await;
        // Mozilla roots do not include the test certificate.
        let result = WsTransport::new()
            .connect(&endpoint(format!("wss://{}", server.addr)))
            .await;
        assert!(result.is_err());
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// In-memory-specific

// Paused clock: the delays are exact and a busy machine cannot reorder the timers.
#[tokio::test(start_paused = true)]
async fn mem_delay_keeps_order_and_delays() {
    guarded(async {
        let delay = Duration::from_millis(30);
        let (mut a, mut b, _link) = mem::pair_with(MemOptions { delay: Some(delay) });
        let start = tokio::time::Instant::now();
        for i in 0..50 {
            a.tx.send(numbered(i, 10 + i as usize)).await.unwrap();
        }
        a.tx.close().await.unwrap();
        for i in 0..50 {
            check_numbered(&recv_some(&mut b.rx).await, i, 10 + i as usize);
            if i == 0 {
                assert!(
                    start.elapsed() >= delay,
                    "first message arrived before the delay"
                );
            }
        }
        assert!(b.rx.recv().await.unwrap().is_none());
    })
    .await
}

// Paused clock: the delays are exact and a busy machine cannot reorder the timers.
#[tokio::test(start_paused = true)]
async fn mem_delayed_recv_is_cancel_safe() {
    guarded(async {
        let (mut a, mut b, _link) = mem::pair_with(MemOptions {
            delay: Some(Duration::from_millis(20)),
        });
        a.tx.send(Bytes::from_static(b"x")).await.unwrap();
        // Cancelled while the message waits out its delay: it must stay queued.
        assert!(tokio::time::timeout(Duration::from_millis(5), b.rx.recv())
            .await
            .is_err());
        assert_eq!(recv_some(&mut b.rx).await, Bytes::from_static(b"x"));
    })
    .await
}

#[tokio::test]
async fn mem_cut_breaks_both_sides() {
    guarded(async {
        let (mut a, mut b, link) = mem::pair_with(MemOptions::default());
        a.tx.send(Bytes::from_static(b"queued")).await.unwrap();
        // A recv already waiting must wake up with the error.
        let mut a_rx = a.rx;
        let waiting = tokio::spawn(async move { a_rx.recv().await });
        assert!(!link.is_cut());
        link.cut();
        assert!(link.is_cut());
        let err = waiting.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        let err = b.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(a.tx.send(Bytes::from_static(b"x")).await.is_err());
        assert!(b.tx.send(Bytes::from_static(b"x")).await.is_err());
        assert!(b.tx.close().await.is_err());
    })
    .await
}

#[tokio::test]
async fn mem_cut_wakes_a_blocked_sender() {
    guarded(async {
        let (mut a, _b, link) = mem::pair_with(MemOptions::default());
        // Fill the channel; nobody reads.
        let mut sent = 0;
        while a.tx.send(Bytes::new()).now_or_never().is_some() {
            sent += 1;
            assert!(sent <= 1000, "no back-pressure");
        }
        let blocked = tokio::spawn(async move { a.tx.send(Bytes::new()).await });
        link.cut();
        assert!(blocked.await.unwrap().is_err());
    })
    .await
}

#[tokio::test]
async fn mem_back_pressure() {
    guarded(async {
        let (mut a, mut b) = mem::pair();
        let mut sent = 0usize;
        while let Some(result) = a.tx.send(Bytes::from(vec![sent as u8])).now_or_never() {
            result.unwrap();
            sent += 1;
            assert!(sent <= 1000, "no back-pressure");
        }
        assert!(sent >= 1, "nothing could be sent");
        // One message out makes room for one more.
        assert_eq!(recv_some(&mut b.rx).await[0], 0);
        a.tx.send(Bytes::from_static(b"more")).await.unwrap();
    })
    .await
}

#[tokio::test]
async fn mem_transport_passes_endpoint_facts() {
    guarded(async {
        let (transport, mut acceptor) = MemTransport::new();
        assert_eq!(transport.name(), "mem");
        let ep = Endpoint {
            url: "mem://server".to_owned(),
            subprotocol: "hoody-tunnel.v1".to_owned(),
            bearer: Some("tok".to_owned()),
        };
        let mut client = transport.connect(&ep).await.unwrap();
        let (mut server, link) = acceptor.accept_with_link().await.unwrap();
        assert_eq!(client.info.transport, "mem");
        assert_eq!(client.info.subprotocol.as_deref(), Some("hoody-tunnel.v1"));
        assert_eq!(client.info.bearer, None);
        assert_eq!(server.info.subprotocol.as_deref(), Some("hoody-tunnel.v1"));
        assert_eq!(server.info.bearer.as_deref(), Some("tok"));
        client.tx.send(Bytes::from_static(b"hi")).await.unwrap();
        assert_eq!(recv_some(&mut server.rx).await, Bytes::from_static(b"hi"));
        link.cut();
        assert!(client.rx.recv().await.is_err());

        drop(acceptor);
        let err = transport.connect(&ep).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    })
    .await
}

#[test]
fn transport_names() {
    assert_eq!(WsTransport::new().name(), "ws");
}
