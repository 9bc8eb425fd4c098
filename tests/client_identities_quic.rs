//! Issue 12 over QUIC: per-client tokens and scopes hold on the QUIC listener exactly as on
//! WebSocket carriers (the handshake is shared, the transport is not): a client's own token
//! admits it and binds its route, the other client's route is FORBIDDEN_ROUTE, an unknown
//! token is refused as a bad token, and a pull is refused without `pull = true`.
#![cfg(feature = "quic")]

mod common;

use std::sync::Arc;

use common::*;
use underpass::client::{ClientError, ClientOptions, ClientSession};
use underpass::proto::BindErrorCode;
use underpass::server::{QuicListen, Server};
use underpass_transports::quic::{QuicServerCert, QuicTransport};
use underpass_transports::tls::ServerTrust;

const ALICE: &str = "alice-quic-token-0123456789";
const BOB: &str = "bob-quic-token-0123456789";

/// Options for a QUIC client of `server` with `token`, pinned to the server's certificate.
fn quic_opts(server: &Server, pin: [u8; 32], token: &str) -> ClientOptions {
    let url = format!("quic://{}", server.quic_addr().expect("QUIC listener"));
    let transport = QuicTransport::new(ServerTrust::PinnedSha256(pin)).unwrap();
    ClientOptions::new(url, token).transport(Arc::new(transport))
}

#[tokio::test]
async fn client_tokens_and_scopes_hold_over_quic() {
    let file = TempClients::new(
        &(client_block("alice", ALICE, "subdomains = [\"alice\"]")
            + &client_block("bob", BOB, "subdomains = [\"bob\"]")),
    );
    let cert = QuicServerCert::self_signed(&["localhost".into()]).unwrap();
    let pin = cert.fingerprint_sha256();
    let server = clients_server(&file, |cfg| {
        cfg.quic = Some(QuicListen {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert: cert.clone(),
        });
    })
    .await;

    let alice = within(10, ClientSession::connect(&quic_opts(&server, pin, ALICE)))
        .await
        .unwrap_or_else(|e| panic!("alice connects over QUIC: {e}"));
    let (app, _release) = full_app("alice-app").await;
    let _route = alice.expose_http(app, &named("alice")).await.unwrap();
    let reply = within(
        10,
        get(server.local_addr(), &format!("alice.{DOMAIN}"), "/"),
    )
    .await;
    assert_eq!(reply.status, 200);

    let (code, message) = refused(alice.expose_http(app, &named("bob")).await);
    assert_eq!(code, BindErrorCode::ForbiddenRoute, "{message}");
    let (code, message) = refused(alice.pull(echo_server().await, 0).await);
    assert_eq!(code, BindErrorCode::ForbiddenPort, "{message}");

    let stranger = quic_opts(&server, pin, "nobody-has-this-token-0123");
    assert!(matches!(
        within(10, ClientSession::connect(&stranger)).await,
        Err(ClientError::Auth(_))
    ));
    server.shutdown().await;
}
