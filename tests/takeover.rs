//! Takeover: a new holder claims a port from another session; the old holder's open streams on
//! that binding are reset (BIND_TAKEOVER) and it is told the binding is gone.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use underpass::client::StreamHandler;
use underpass::proto::{Bind, BindKind, BindMode};

fn tcp_expose(port: u16, takeover: bool) -> Bind {
    Bind {
        takeover: takeover.then_some(true),
        ..raw_bind(BindKind::Tcp, BindMode::Expose, port)
    }
}

#[tokio::test]
async fn takeover_resets_the_old_holders_streams_and_moves_the_port() {
    let server = server().await;
    let echo = echo_server().await;
    let old = client(&server).await;
    let first = old
        .bind(tcp_expose(0, false), StreamHandler::Tcp(echo))
        .await
        .unwrap();
    let public = SocketAddr::from(([127, 0, 0, 1], first.container_port()));

    // A long-lived visitor connection through the old holder.
    let mut visitor = tokio::net::TcpStream::connect(public).await.unwrap();
    visitor.write_all(b"before").await.unwrap();
    let mut buf = [0u8; 6];
    within(5, visitor.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"before");

    let new = client(&server).await;
    let second = new
        .bind(
            tcp_expose(first.container_port(), true),
            StreamHandler::Tcp(echo),
        )
        .await
        .unwrap();
    assert_eq!(second.container_port(), first.container_port());
    assert_eq!(server.state().counters.snapshot().takeovers, 1);

    // The old holder learns why, and its visitor's connection ends.
    let (revoked_id, reason) = within(5, old.next_revocation()).await.unwrap();
    assert_eq!(revoked_id, first.bind_id());
    assert!(reason.contains("taken over"), "{reason}");
    let mut rest = Vec::new();
    let end = within(5, visitor.read_to_end(&mut rest)).await;
    assert!(
        end.is_err() || rest.is_empty(),
        "old connection must end, got {rest:?}"
    );

    // New visitors reach the new holder.
    let got = within(10, async {
        loop {
            if let Ok(tcp) = tokio::net::TcpStream::connect(public).await {
                drop(tcp);
                return tcp_roundtrip(public, b"after").await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(got, b"after");
    let holders: Vec<_> = server
        .state()
        .sessions
        .all()
        .into_iter()
        .filter(|s| !s.bindings().is_empty())
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(holders, vec![new.session_id().to_string()]);
}
