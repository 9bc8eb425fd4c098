//! Interim (1xx) responses of a local app travel through the tunnel as `final: false` heads
//! ahead of the final head (PROTOCOL.md, Streams).

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use underpass::proto::{BindKind, StreamOpen};

/// A raw HTTP/1.1 app that answers every request with 103 Early Hints, then 200.
async fn early_hints_app() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n\
                          HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_103_from_the_app_reaches_the_server_before_the_final_head() {
    let server = domain_server().await;
    let client = client(&server).await;
    let binding = client
        .expose_http(early_hints_app().await, &named("hints"))
        .await
        .unwrap();
    let server_side = server.sessions().pop().unwrap().1;
    let open = StreamOpen {
        bind_id: binding.bind_id(),
        kind: BindKind::Http,
        method: Some("GET".into()),
        target: Some("/".into()),
        headers: vec![("host".into(), "hints.example.test".into())],
        is_upgrade: false,
    };
    let mut stream = server_side.open(&open).unwrap();
    stream.finish().unwrap();
    let first = within(10, stream.recv_head()).await.unwrap();
    assert_eq!((first.status, first.is_final), (103, false));
    assert!(first
        .headers
        .iter()
        .any(|(k, v)| k == "link" && v.contains("preload")));
    let last = within(10, stream.recv_head()).await.unwrap();
    assert_eq!((last.status, last.is_final), (200, true));
    assert_eq!(
        &within(10, stream.recv_chunk()).await.unwrap().unwrap()[..],
        b"ok"
    );
}
