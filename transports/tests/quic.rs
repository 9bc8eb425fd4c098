//! QUIC-specific tests: trust (pin, CA file), certificate cache, connection sharing, framing
//! on a byte stream, close codes. The generic carrier cases run in `conformance.rs`.
//! Only loopback is used; waits are bounded by [`GUARD`] and never used to order events.
#![cfg(feature = "quic")]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use underpass_transports::quic::{
    rustls, QuicAcceptor, QuicServerCert, QuicTransport, QuicTuning, ALPN_STR, MAX_FRAME_PAYLOAD,
};
use underpass_transports::tls::{parse_fingerprint, ServerTrust};
use underpass_transports::{close_reason, Carrier, CarrierRx, Endpoint, Transport};

/// Upper bound for any single test; only reached if something hangs.
const GUARD: Duration = Duration::from_secs(30);

async fn guarded(test: impl Future<Output = ()>) {
    tokio::time::timeout(GUARD, test)
        .await
        .expect("test did not finish in time");
}

fn endpoint(url: String) -> Endpoint {
    Endpoint {
        url,
        subprotocol: "hoody-tunnel.v2".to_owned(),
        bearer: None,
    }
}

fn url(acceptor: &QuicAcceptor) -> String {
    format!("quic://{}", acceptor.local_addr())
}

/// One frame: `type`, stream 1, and `payload_len` bytes depending on `seed`.
fn frame(kind: u8, seed: u8, payload_len: usize) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&u32::try_from(payload_len).unwrap().to_be_bytes());
    v.extend((0..payload_len).map(|i| (i % 251) as u8 ^ seed));
    v
}

async fn recv_some(rx: &mut Box<dyn CarrierRx>) -> Bytes {
    rx.recv()
        .await
        .expect("recv failed")
        .expect("carrier ended early")
}

fn loopback() -> std::net::SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// A server with a fresh self-signed certificate, and a client pinned to it.
fn pinned_pair() -> (QuicAcceptor, QuicTransport) {
    let cert = QuicServerCert::self_signed(&["127.0.0.1".to_owned()]).unwrap();
    let trust = ServerTrust::PinnedSha256(cert.fingerprint_sha256());
    (
        QuicAcceptor::bind(loopback(), cert).unwrap(),
        QuicTransport::new(trust).unwrap(),
    )
}

/// Dials a carrier and announces it with one small frame, which the server side consumes: a
/// QUIC stream reaches the server only with its first bytes (HELLO or JOIN in real use).
async fn dial(transport: &QuicTransport, acceptor: &mut QuicAcceptor) -> (Carrier, Carrier) {
    let mut client = transport.connect(&endpoint(url(acceptor))).await.unwrap();
    let hello = Bytes::from(frame(0x01, 0, 2));
    client.tx.send(hello.clone()).await.unwrap();
    let mut server = acceptor.accept().await.unwrap();
    assert_eq!(recv_some(&mut server.rx).await, hello);
    (client, server)
}

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "underpass-quic-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `names`, as a server certificate and as CA PEM text.
fn cert_with_pem(names: &[&str]) -> (QuicServerCert, String) {
    let certified =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let cert = QuicServerCert::new(vec![certified.cert.der().clone()], key).unwrap();
    (cert, certified.cert.pem())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn wrong_pin_is_refused_with_a_clear_error() {
    guarded(async {
        let cert = QuicServerCert::self_signed(&["127.0.0.1".to_owned()]).unwrap();
        let actual = cert.fingerprint_sha256_hex();
        let acceptor = QuicAcceptor::bind(loopback(), cert).unwrap();
        let wrong = [0x5au8; 32];
        let transport = QuicTransport::new(ServerTrust::PinnedSha256(wrong)).unwrap();
        let err = transport
            .connect(&endpoint(url(&acceptor)))
            .await
            .expect_err("wrong pin accepted");
        let message = err.to_string();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{message}");
        assert!(message.contains("fingerprint did not match"), "{message}");
        assert!(message.contains(&"5a".repeat(32)), "{message}");
        assert!(message.contains(&actual), "{message}");
        assert_eq!(acceptor.connections_accepted(), 0);
    })
    .await
}

#[tokio::test]
async fn ca_file_trust_verifies_chain_and_name() {
    guarded(async {
        let dir = TempDir::new("ca");
        let (cert, pem) = cert_with_pem(&["127.0.0.1", "localhost"]);
        let ca = dir.path("ca.pem");
        write(&ca, &pem);
        let mut acceptor = QuicAcceptor::bind(loopback(), cert).unwrap();
        let transport = QuicTransport::new(ServerTrust::CaFile(ca)).unwrap();
        let (mut client, mut server) = dial(&transport, &mut acceptor).await;
        let reply = Bytes::from(frame(0x02, 9, 100));
        server.tx.send(reply.clone()).await.unwrap();
        assert_eq!(recv_some(&mut client.rx).await, reply);

        // Same CA, but the certificate does not name the address dialled.
        let (cert, pem) = cert_with_pem(&["localhost"]);
        let ca = dir.path("localhost-only.pem");
        write(&ca, &pem);
        let acceptor = QuicAcceptor::bind(loopback(), cert).unwrap();
        let err = QuicTransport::new(ServerTrust::CaFile(ca))
            .unwrap()
            .connect(&endpoint(url(&acceptor)))
            .await
            .expect_err("certificate for another name accepted");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");

        // A CA that did not issue the server's certificate.
        let (_, other_pem) = cert_with_pem(&["127.0.0.1"]);
        let ca = dir.path("other.pem");
        write(&ca, &other_pem);
        let (cert, _) = cert_with_pem(&["127.0.0.1"]);
        let acceptor = QuicAcceptor::bind(loopback(), cert).unwrap();
        let err = QuicTransport::new(ServerTrust::CaFile(ca))
            .unwrap()
            .connect(&endpoint(url(&acceptor)))
            .await
            .expect_err("unknown issuer accepted");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    })
    .await
}

#[test]
fn unusable_ca_files_are_errors() {
    let dir = TempDir::new("bad-ca");
    let missing = QuicTransport::new(ServerTrust::CaFile(dir.path("missing.pem"))).unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");
    let empty = dir.path("empty.pem");
    write(&empty, "no certificate here\n");
    let err = QuicTransport::new(ServerTrust::CaFile(empty)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("no certificate"), "{err}");
}

#[test]
fn load_or_create_keeps_the_fingerprint() {
    let dir = TempDir::new("cache");
    let path = dir.path("sub/quic-cert.pem");
    let names = ["127.0.0.1".to_owned(), "localhost".to_owned()];
    let first = QuicServerCert::load_or_create(&path, &names).unwrap();
    let second = QuicServerCert::load_or_create(&path, &names).unwrap();
    assert_eq!(first.fingerprint_sha256(), second.fingerprint_sha256());
    assert_eq!(first.fingerprint_sha256_hex().len(), 64);
    assert_eq!(
        parse_fingerprint(&first.fingerprint_sha256_hex()).unwrap(),
        first.fingerprint_sha256()
    );
    // The cache is an ordinary PEM pair, usable as --tls-cert/--tls-key.
    let as_files = QuicServerCert::from_pem_files(&path, &path).unwrap();
    assert_eq!(as_files.fingerprint_sha256(), first.fingerprint_sha256());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }
    // A fresh certificate differs.
    let other = QuicServerCert::self_signed(&names).unwrap();
    assert_ne!(other.fingerprint_sha256(), first.fingerprint_sha256());

    // A damaged cache is an error, not silently replaced.
    write(&path, "garbage");
    assert!(QuicServerCert::load_or_create(&path, &names).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage");
}

#[tokio::test]
async fn server_uses_a_certificate_from_pem_files() {
    guarded(async {
        let dir = TempDir::new("pem-files");
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let (cert_path, key_path) = (dir.path("cert.pem"), dir.path("key.pem"));
        write(&cert_path, &certified.cert.pem());
        write(&key_path, &certified.signing_key.serialize_pem());
        let cert = QuicServerCert::from_pem_files(&cert_path, &key_path).unwrap();
        let trust = ServerTrust::CaFile(cert_path.clone());
        let mut acceptor = QuicAcceptor::bind(loopback(), cert).unwrap();
        let transport = QuicTransport::new(trust).unwrap();
        dial(&transport, &mut acceptor).await;

        assert!(QuicServerCert::from_pem_files(&key_path, &key_path).is_err());
        assert!(QuicServerCert::from_pem_files(&cert_path, &cert_path).is_err());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_one_url_share_one_connection() {
    guarded(async {
        let (mut acceptor, transport) = pinned_pair();
        let mut pairs = Vec::new();
        for _ in 0..4 {
            pairs.push(dial(&transport, &mut acceptor).await);
        }
        assert_eq!(acceptor.connections_accepted(), 1);
        let peer = pairs[0].1.info.peer;
        assert!(peer.is_some());
        for (client, server) in &pairs {
            assert_eq!(
                server.info.peer, peer,
                "carriers from different connections"
            );
            assert_eq!(client.info.peer, Some(acceptor.local_addr()));
        }
        // Each carrier is its own stream: data goes to the matching server carrier.
        for (i, (client, _)) in pairs.iter_mut().enumerate() {
            client
                .tx
                .send(frame(0x12, i as u8, 10 + i).into())
                .await
                .unwrap();
        }
        for (i, (_, server)) in pairs.iter_mut().enumerate() {
            assert_eq!(
                recv_some(&mut server.rx).await,
                frame(0x12, i as u8, 10 + i)
            );
        }

        // Concurrent dials before any connection exists share one too.
        let (mut acceptor, transport) = pinned_pair();
        let ep = endpoint(url(&acceptor));
        let (a, b, c) = tokio::join!(
            transport.connect(&ep),
            transport.connect(&ep),
            transport.connect(&ep)
        );
        for mut client in [a.unwrap(), b.unwrap(), c.unwrap()] {
            client.tx.send(frame(0x09, 0, 3).into()).await.unwrap();
        }
        for _ in 0..3 {
            acceptor.accept().await.unwrap();
        }
        assert_eq!(acceptor.connections_accepted(), 1);
    })
    .await
}

#[tokio::test]
async fn carrier_info() {
    guarded(async {
        let (mut acceptor, transport) = pinned_pair();
        assert_eq!(transport.name(), "quic");
        let (client, server) = dial(&transport, &mut acceptor).await;
        for info in [&client.info, &server.info] {
            assert_eq!(info.transport, "quic");
            assert_eq!(info.subprotocol.as_deref(), Some(ALPN_STR));
            assert_eq!(info.bearer, None);
        }
        assert_eq!(client.info.peer, Some(acceptor.local_addr()));
        assert_eq!(
            server.info.peer.map(|p| p.ip()),
            Some([127, 0, 0, 1].into())
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_come_out_one_by_one() {
    guarded(async {
        let (mut acceptor, transport) = pinned_pair();
        let (client, server) = dial(&transport, &mut acceptor).await;
        for (mut tx, mut rx) in [(client.tx, server.rx), (server.tx, client.rx)] {
            // Exactly the largest frame, alone.
            let max = frame(0x12, 1, MAX_FRAME_PAYLOAD);
            assert_eq!(max.len(), 9 + 65_536);
            tx.send(max.clone().into()).await.unwrap();
            assert_eq!(recv_some(&mut rx).await, max);

            // Several frames in one message, including an empty payload and the maximum.
            let frames = [
                frame(0x10, 2, 40),
                frame(0x13, 3, 0),
                frame(0x12, 4, MAX_FRAME_PAYLOAD),
                frame(0x12, 5, 1),
            ];
            tx.send(frames.concat().into()).await.unwrap();
            // And one frame split over two messages.
            let split = frame(0x12, 6, 5000);
            tx.send(Bytes::copy_from_slice(&split[..4])).await.unwrap();
            tx.send(Bytes::copy_from_slice(&split[4..])).await.unwrap();
            for expected in frames.iter().chain([&split]) {
                assert_eq!(recv_some(&mut rx).await, expected[..]);
            }
        }
    })
    .await
}

#[tokio::test]
async fn stream_ending_inside_a_frame_is_an_error() {
    guarded(async {
        let (mut acceptor, transport) = pinned_pair();
        let (mut client, mut server) = dial(&transport, &mut acceptor).await;
        let whole = frame(0x12, 1, 100);
        client
            .tx
            .send(Bytes::copy_from_slice(&whole[..50]))
            .await
            .unwrap();
        client.tx.close().await.unwrap();
        let err = server.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("middle of a frame"), "{err}");
        assert!(server.rx.recv().await.is_err());
    })
    .await
}

#[tokio::test]
async fn server_close_code_reaches_the_client() {
    guarded(async {
        let (mut acceptor, transport) = pinned_pair();
        let (mut client, _server) = dial(&transport, &mut acceptor).await;
        acceptor.close(1008, "resume grace expired");
        let err = client.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted, "{err}");
        let reason = close_reason(&err).expect("no close reason");
        assert_eq!(
            (reason.code, reason.reason.as_str()),
            (1008, "resume grace expired")
        );
        // The closed connection is not reused: the next connect dials again, and the closed
        // endpoint refuses it.
        let err = transport
            .connect(&endpoint(url(&acceptor)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    })
    .await
}

#[tokio::test]
async fn server_refuses_other_alpn() {
    guarded(async {
        let (cert, pem) = cert_with_pem(&["127.0.0.1"]);
        let acceptor = QuicAcceptor::bind(loopback(), cert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let endpoint = quinn::Endpoint::client(loopback()).unwrap();
        let result = endpoint
            .connect_with(
                quinn::ClientConfig::new(Arc::new(crypto)),
                acceptor.local_addr(),
                "127.0.0.1",
            )
            .unwrap()
            .await;
        assert!(result.is_err(), "handshake with a foreign ALPN succeeded");
        assert_eq!(acceptor.connections_accepted(), 0);
    })
    .await
}

#[tokio::test]
async fn bad_urls_are_invalid_input() {
    let (_acceptor, transport) = pinned_pair();
    for url in ["quic://127.0.0.1", "ws://127.0.0.1:80", "quic://h:1/x"] {
        let err = transport
            .connect(&endpoint(url.to_owned()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{url}");
    }
}

#[tokio::test]
async fn dropping_the_acceptor_keeps_carriers_and_answers_no_new_handshake() {
    guarded(async {
        let cert = QuicServerCert::self_signed(&["127.0.0.1".to_owned()]).unwrap();
        let pin = ServerTrust::PinnedSha256(cert.fingerprint_sha256());
        let mut acceptor = QuicAcceptor::bind(loopback(), cert).unwrap();
        let transport = QuicTransport::new(pin.clone()).unwrap();
        let (mut client, mut server) = dial(&transport, &mut acceptor).await;
        let addr = acceptor.local_addr();
        drop(acceptor);
        let ping = Bytes::from(frame(0x12, 7, 64));
        client.tx.send(ping.clone()).await.unwrap();
        assert_eq!(recv_some(&mut server.rx).await, ping);
        server.tx.send(ping.clone()).await.unwrap();
        assert_eq!(recv_some(&mut client.rx).await, ping);
        // Another transport needs a connection of its own, which nobody answers now.
        let other = QuicTransport::new(pin)
            .unwrap()
            .handshake_timeout(Duration::from_millis(500));
        let err = other
            .connect(&endpoint(format!("quic://{addr}")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    })
    .await
}

#[tokio::test]
async fn a_dead_connection_is_replaced() {
    guarded(async {
        let cert = QuicServerCert::self_signed(&["127.0.0.1".to_owned()]).unwrap();
        let pin = ServerTrust::PinnedSha256(cert.fingerprint_sha256());
        let mut acceptor = QuicAcceptor::bind(loopback(), cert).unwrap();
        // The connection idles out quickly: the idle timeout in force is the smaller of the two
        // sides', and no keep-alive comes before it.
        let tuning = QuicTuning {
            max_idle_timeout: Duration::from_secs(1),
            keep_alive_interval: Duration::from_secs(60),
            ..QuicTuning::default()
        };
        let transport = QuicTransport::with_tuning(pin, tuning).unwrap();
        let (mut client, _server) = dial(&transport, &mut acceptor).await;
        let err = client.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        let (mut client, mut server) = dial(&transport, &mut acceptor).await;
        assert_eq!(acceptor.connections_accepted(), 2);
        client.tx.send(frame(0x12, 1, 10).into()).await.unwrap();
        assert_eq!(recv_some(&mut server.rx).await, frame(0x12, 1, 10));
    })
    .await
}

/// Loopback throughput of one carrier and of four carriers sharing a connection, printed, not
/// asserted. Run with `cargo test --release -p underpass-transports --features quic --test quic
/// -- --ignored --nocapture throughput`. Sends a fixed amount (64 MiB per carrier).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run in release"]
async fn throughput() {
    const PER_CARRIER: usize = 64 << 20;
    guarded(async {
        for carriers in [1usize, 4] {
            let (mut acceptor, transport) = pinned_pair();
            let mut pairs = Vec::new();
            for _ in 0..carriers {
                pairs.push(dial(&transport, &mut acceptor).await);
            }
            let message = Bytes::from(frame(0x12, 0, MAX_FRAME_PAYLOAD));
            let start = std::time::Instant::now();
            let mut tasks = Vec::new();
            for (mut client, mut server) in pairs {
                let message = message.clone();
                tasks.push(tokio::spawn(async move {
                    let frames = PER_CARRIER / MAX_FRAME_PAYLOAD;
                    let sender = tokio::spawn(async move {
                        for _ in 0..frames {
                            client.tx.send(message.clone()).await.unwrap();
                        }
                        client
                    });
                    for _ in 0..frames {
                        recv_some(&mut server.rx).await;
                    }
                    sender.await.unwrap();
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let secs = start.elapsed().as_secs_f64();
            let mib = (carriers * PER_CARRIER) as f64 / f64::from(1 << 20);
            println!(
                "{carriers} carrier(s): {mib:.0} MiB in {secs:.2} s = {:.0} MiB/s",
                mib / secs
            );
        }
    })
    .await
}
