//! A raw quinn client for QUIC tests: a server with a QUIC listener, and connections to it that
//! send whatever a test writes, frame by frame or byte by byte.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use underpass::proto::{decode_message, encode_frame, Frame, Hello, HelloAuth};
use underpass::server::{Server, ServerConfig};
use underpass_transports::quic::{rustls, QuicServerCert};

use super::{server_with, within, TOKEN};

/// A server with a QUIC listener, and a quinn client endpoint that trusts its certificate.
pub struct RawQuic {
    pub server: Server,
    pub addr: SocketAddr,
    pub client: quinn::Endpoint,
}

impl RawQuic {
    /// A server configured by `f`, plus a QUIC listener on loopback.
    pub async fn start(f: impl FnOnce(&mut ServerConfig)) -> RawQuic {
        let cert = QuicServerCert::self_signed(&["localhost".into()]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.chain()[0].clone()).unwrap();
        let server = server_with(|c| {
            c.quic = Some(underpass::server::QuicListen {
                addr: "127.0.0.1:0".parse().unwrap(),
                cert,
            });
            f(c);
        })
        .await;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![underpass_transports::quic::ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let addr = server.quic_addr().unwrap();
        RawQuic {
            server,
            addr,
            client,
        }
    }

    /// A new QUIC connection to the server (its handshake done), or why not.
    pub async fn connect(&self) -> Result<quinn::Connection, quinn::ConnectionError> {
        within(20, self.client.connect(self.addr, "localhost").unwrap()).await
    }
}

/// `frame` encoded.
pub fn encoded(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(frame, &mut out).unwrap();
    out.to_vec()
}

/// A v2 HELLO with the test token, asking for one carrier.
pub fn hello_v2() -> Frame {
    Frame::Hello(Hello {
        version: "hoody-tunnel.v2".into(),
        capabilities: Vec::new(),
        auth: Some(HelloAuth {
            kind: "bearer".into(),
            token: TOKEN.into(),
        }),
        resume: None,
        max_connections: Some(1),
    })
}

/// Sends a HELLO on a new carrier of `conn` and reads up to HELLO_OK: a session over QUIC.
pub async fn quic_session(conn: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, mut recv) = within(20, conn.open_bi()).await.unwrap();
    send.write_all(&encoded(&hello_v2())).await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        let chunk = within(20, recv.read_chunk(usize::MAX, true))
            .await
            .unwrap()
            .expect("HELLO_OK before the stream ends");
        buf.extend_from_slice(&chunk.bytes);
        while buf.len() >= 9 {
            let len = 9 + u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) as usize;
            if buf.len() < len {
                break;
            }
            let frames = decode_message(&buf.split_to(len).freeze()).unwrap();
            if frames.iter().any(|f| matches!(f, Frame::HelloOk(_))) {
                return (send, recv);
            }
        }
    }
}
