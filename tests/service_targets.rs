//! A binding may lead to a service on another machine of the client's network, not only to
//! `127.0.0.1` (as `ngrok http 192.168.1.5:80` or frp's `localIP`). Here the "other machine" is
//! `127.0.0.2`, which Linux routes over loopback: a service bound there alone proves the
//! client did not just dial 127.0.0.1.

mod common;

use std::net::SocketAddr;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use underpass::client::TcpExpose;

/// An HTTP service on 127.0.0.2 that answers every request with the address it was reached at.
async fn service_on_127_0_0_2() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let me = tcp.local_addr().unwrap().to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{me}",
                    me.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_and_tcp_exposes_reach_a_service_on_another_address() {
    let server = domain_server().await;
    let client = client(&server).await;
    let service = service_on_127_0_0_2().await;
    let _web = client.expose_http_at(service, &named("nas")).await.unwrap();
    let r = get(server.local_addr(), "nas.example.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), service.to_string());

    let raw = client
        .expose_tcp_with(&TcpExpose::at(service))
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", raw.container_port()))
        .await
        .unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    within(10, tcp.read_to_string(&mut answer)).await.unwrap();
    assert!(answer.ends_with(&service.to_string()), "{answer}");
}

#[tokio::test]
async fn a_dead_service_elsewhere_is_a_502_naming_its_address() {
    let server = domain_server().await;
    let client = client(&server).await;
    // Bound then dropped: nothing listens there any more.
    let dead = TcpListener::bind("127.0.0.2:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let _web = client.expose_http_at(dead, &named("nas")).await.unwrap();
    let r = get(server.local_addr(), "nas.example.test", "/").await;
    assert_eq!(r.status, 502);
    // 127.0.0.2 is a loopback address, so the body names the port, as for 127.0.0.1.
    assert!(
        r.text().contains(&format!("port {}", dead.port())),
        "{}",
        r.text()
    );
}
