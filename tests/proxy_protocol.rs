//! PROXY protocol on a tcp expose: the local service reads a v1 or v2 header naming the real
//! visitor (its address and the public port it reached) before the visitor's own bytes, which
//! follow unchanged.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use underpass::client::TcpExpose;
use underpass::tcp::ProxyProtocol;

/// A service that parses the PROXY header of each connection, reports the addresses it names,
/// then echoes the rest.
async fn header_reading_echo() -> (u16, mpsc::UnboundedReceiver<(SocketAddr, SocketAddr)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 512];
                // Read until a whole header parses; whatever follows it is the visitor's.
                let (addrs, used) = loop {
                    let n = tcp.read(&mut buf).await.unwrap();
                    assert!(n > 0, "closed before a PROXY header");
                    got.extend_from_slice(&buf[..n]);
                    if let Some(found) = parse(&got) {
                        break found;
                    }
                };
                tx.send(addrs).unwrap();
                tcp.write_all(&got[used..]).await.unwrap();
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (port, rx)
}

/// The addresses of a complete v1 or v2 header at the start of `bytes`, and its length.
fn parse(bytes: &[u8]) -> Option<((SocketAddr, SocketAddr), usize)> {
    if bytes.starts_with(ppp::v2::PROTOCOL_PREFIX) || ppp::v2::PROTOCOL_PREFIX.starts_with(bytes) {
        // v2, possibly still incomplete.
        let h = ppp::v2::Header::try_from(bytes).ok()?;
        let ppp::v2::Addresses::IPv4(a) = h.addresses else {
            panic!("expected IPv4 addresses, got {:?}", h.addresses)
        };
        let pair = (
            SocketAddr::from((a.source_address, a.source_port)),
            SocketAddr::from((a.destination_address, a.destination_port)),
        );
        return Some((pair, h.len()));
    }
    // v1: one text line.
    let end = bytes.windows(2).position(|w| w == b"\r\n")? + 2;
    let line = std::str::from_utf8(&bytes[..end]).unwrap();
    let h = ppp::v1::Header::try_from(line).unwrap();
    let ppp::v1::Addresses::Tcp4(a) = h.addresses else {
        panic!("expected TCP4, got {line:?}")
    };
    let pair = (
        SocketAddr::from((a.source_address, a.source_port)),
        SocketAddr::from((a.destination_address, a.destination_port)),
    );
    Some((pair, end))
}

async fn check(version: ProxyProtocol) {
    let server = server().await;
    let client = client(&server).await;
    let (port, mut seen) = header_reading_echo().await;
    let binding = client
        .expose_tcp_with(&TcpExpose::local(port).proxy_protocol(version))
        .await
        .unwrap();
    let public = SocketAddr::from(([127, 0, 0, 1], binding.container_port()));
    for round in 0..2u8 {
        let mut visitor = TcpStream::connect(public).await.unwrap();
        let me = visitor.local_addr().unwrap();
        let payload = [round; 3000];
        visitor.write_all(&payload).await.unwrap();
        let mut back = vec![0u8; payload.len()];
        within(10, visitor.read_exact(&mut back)).await.unwrap();
        assert_eq!(
            back, payload,
            "{version}: the visitor's bytes pass unchanged"
        );
        let (source, destination) = within(10, seen.recv()).await.unwrap();
        assert_eq!(source, me, "{version}: the header names the visitor");
        assert_eq!(
            destination, public,
            "{version}: and the public port it reached"
        );
    }
}

#[tokio::test]
async fn a_v1_header_names_the_visitor() {
    check(ProxyProtocol::V1).await;
}

#[tokio::test]
async fn a_v2_header_names_the_visitor() {
    check(ProxyProtocol::V2).await;
}
