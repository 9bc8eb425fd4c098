//! The connection (file-descriptor) budget: past it the server answers 503 instead of failing
//! with EMFILE, and a freed permit serves the next visitor.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn health(addr: std::net::SocketAddr) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /__underpass__/health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = String::new();
    within(10, tcp.read_to_string(&mut out)).await.unwrap();
    out
}

#[tokio::test]
async fn over_budget_connections_get_503_and_freed_permits_serve_again() {
    let server = server_with(|c| c.limits.fd_budget = Some(2)).await;
    let addr = server.local_addr();
    let state = server.state().clone();
    let idle1 = tokio::net::TcpStream::connect(addr).await.unwrap();
    let idle2 = tokio::net::TcpStream::connect(addr).await.unwrap();
    within(5, async {
        while state.fd_budget.available() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let refused = health(addr).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 5"));
    assert!(refused.contains("out of connection capacity"));
    drop((idle1, idle2));
    let ok = within(10, async {
        loop {
            let r = health(addr).await;
            if r.starts_with("HTTP/1.1 200") {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(ok.contains(r#"{"status":"ok"}"#));
}
