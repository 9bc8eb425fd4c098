//! Shared by the carrier tests: connected carrier pairs for every transport (the factories),
//! a test WebSocket server, message patterns and guards. Only loopback is used; waits are bounded
//! by [`GUARD`] and never used to order events.
#![allow(dead_code, unused_imports)]

pub use std::convert::Infallible;
pub use std::future::Future;
pub use std::net::SocketAddr;
pub use std::sync::Arc;
pub use std::time::Duration;

pub use bytes::Bytes;
pub use futures_util::{FutureExt, SinkExt, StreamExt};
pub use http::{Request, Uri};
pub use hyper::body::Incoming;
pub use hyper::server::conn::http1;
pub use hyper::service::service_fn;
pub use hyper_util::rt::TokioIo;
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::{TcpListener, TcpStream};
pub use tokio::sync::mpsc;
pub use tokio_rustls::rustls;
pub use tokio_tungstenite::tungstenite::client::IntoClientRequest;
pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
pub use tokio_tungstenite::tungstenite::protocol::CloseFrame;
pub use tokio_tungstenite::tungstenite::Message;
pub use underpass_transports::mem::{self, MemOptions, MemTransport};
pub use underpass_transports::ws::{self, WsTransport};
pub use underpass_transports::{
    close_reason, Carrier, CarrierRx, CarrierTx, Endpoint, Transport, MAX_MESSAGE_BYTES,
};

/// Upper bound for any single test; only reached if something hangs.
pub const GUARD: Duration = Duration::from_secs(30);

pub async fn guarded(test: impl Future<Output = ()>) {
    tokio::time::timeout(GUARD, test)
        .await
        .expect("test did not finish in time");
}

/// Bytes `i % 251` (a prime, so slices at different offsets differ), long enough to slice any
/// message from it without copying.
pub fn base() -> &'static Bytes {
    static BASE: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        (0..MAX_MESSAGE_BYTES + 512)
            .map(|i| (i % 251) as u8)
            .collect()
    })
}

/// A message of `len` bytes whose content depends on `seed`.
pub fn pattern(seed: usize, len: usize) -> Bytes {
    let offset = seed % 251;
    base().slice(offset..offset + len)
}

/// What a carrier keeps intact, so what the cases may send through it.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
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
pub const FRAME_HEADER: usize = 9;
pub const MAX_FRAME_PAYLOAD: usize = 65_536;

impl Unit {
    /// Largest content a case may put in one message.
    pub fn max_content(self) -> usize {
        match self {
            Unit::Message => MAX_MESSAGE_BYTES,
            Unit::Frame => MAX_FRAME_PAYLOAD,
        }
    }

    /// `content` as one message: as is, or as the payload of a DATA frame on stream 1 (whose
    /// header declares the content's length even past the limit, to test the refusal).
    pub fn wrap(self, content: Bytes) -> Bytes {
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
    pub fn unwrap(self, got: &[u8], content_len: usize) -> &[u8] {
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

    pub fn pattern(self, seed: usize, len: usize) -> Bytes {
        self.wrap(pattern(seed, len))
    }

    pub fn numbered(self, i: u32, len: usize) -> Bytes {
        self.wrap(numbered(i, len))
    }

    pub fn check_numbered(self, got: &[u8], i: u32, len: usize) {
        check_numbered(self.unwrap(got, len), i, len)
    }
}

/// A message carrying its sequence number in the first 4 bytes, `len >= 4` bytes in all.
pub fn numbered(i: u32, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&i.to_be_bytes());
    v.extend_from_slice(&pattern(i as usize, len - 4));
    v.into()
}

pub fn check_numbered(got: &[u8], i: u32, len: usize) {
    assert_eq!(got.len(), len, "length of message {i}");
    assert_eq!(got[..4], i.to_be_bytes(), "message {i} out of order");
    assert!(
        got[4..] == pattern(i as usize, len - 4)[..],
        "content of message {i}"
    );
}

pub async fn recv_some(rx: &mut Box<dyn CarrierRx>) -> Bytes {
    rx.recv()
        .await
        .expect("recv failed")
        .expect("carrier ended early")
}

/// Sends all messages from a task, so a sender blocked by back-pressure cannot deadlock a test
/// that receives on the same task. Gives the sending half back to keep the carrier open.
pub fn spawn_sender(
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

// Factories: each yields a connected `(client, server)` carrier pair.

pub const SUBPROTOCOL: &str = "hoody-tunnel.v2";
pub const SUPPORTED: &[&str] = &["hoody-tunnel.v1", "hoody-tunnel.v2"];

pub fn endpoint(url: String) -> Endpoint {
    Endpoint {
        url,
        subprotocol: SUBPROTOCOL.to_owned(),
        bearer: None,
    }
}

pub async fn mem_pair() -> (Carrier, Carrier) {
    let (transport, mut acceptor) = MemTransport::new();
    let client = transport
        .connect(&endpoint("mem://test".to_owned()))
        .await
        .unwrap();
    let server = acceptor.accept().await.unwrap();
    (client, server)
}

pub async fn ws_pair() -> (Carrier, Carrier) {
    let mut server = TestServer::start(None).await;
    let client = WsTransport::new()
        .connect(&endpoint(format!("ws://{}", server.addr)))
        .await
        .unwrap();
    (client, server.next().await.carrier)
}

pub async fn wss_pair() -> (Carrier, Carrier) {
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
pub async fn quic_pair() -> (Carrier, Carrier) {
    use underpass_transports::quic::{QuicAcceptor, QuicServerCert, QuicTransport};
    use underpass_transports::tls::ServerTrust;
    let cert = QuicServerCert::self_signed(&["127.0.0.1".to_owned()]).unwrap();
    let trust = ServerTrust::PinnedSha256(cert.fingerprint_sha256());
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
pub struct Accepted {
    pub carrier: Carrier,
    pub uri: Uri,
}

/// A hyper 1.x HTTP/1.1 server on loopback that upgrades every request with `accept_upgrade`.
/// It lives until the test's runtime ends.
pub struct TestServer {
    pub addr: SocketAddr,
    pub accepted: mpsc::UnboundedReceiver<Accepted>,
}

impl TestServer {
    pub async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> TestServer {
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

    pub async fn next(&mut self) -> Accepted {
        self.accepted.recv().await.expect("test server stopped")
    }
}

/// A TLS acceptor with a fresh self-signed certificate for 127.0.0.1 and a client config that
/// trusts exactly that certificate.
pub fn test_tls() -> (tokio_rustls::TlsAcceptor, Arc<rustls::ClientConfig>) {
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
