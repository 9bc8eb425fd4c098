//! Issue 12 for clients that speak the protocol as the hoody SDK does (raw frames, no
//! underpass client): the token as `Authorization: Bearer` on the upgrade or in HELLO auth
//! selects the client, its scope holds at BIND, and an extra v2 carrier joins only with the
//! bearer of the session's own client.

mod common;

use bytes::BytesMut;
use common::*;
use serde_json::Value;
use underpass::proto::{
    decode_message, encode_frame, Bind, BindErrorCode, BindKind, BindMode, ErrorCode, Frame, Hello,
    HelloAuth, Join, ProtocolVersion, RouteMode, RouteSpec,
};
use underpass_transports::Carrier;

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";

/// Alice may bind `alice`, Bob `bob`.
fn alice_and_bob() -> String {
    client_block("alice", ALICE, "subdomains = [\"alice\"]")
        + &client_block("bob", BOB, "subdomains = [\"bob\"]")
}

async fn send(carrier: &mut Carrier, frame: &Frame) {
    let mut out = BytesMut::new();
    encode_frame(frame, &mut out).unwrap();
    carrier.tx.send(out.freeze()).await.unwrap();
}

/// The next frame that is not a PING or WINDOW.
async fn next(carrier: &mut Carrier) -> Frame {
    loop {
        let message = within(10, carrier.rx.recv())
            .await
            .unwrap()
            .expect("a message");
        for frame in decode_message(&message).unwrap() {
            if !matches!(frame, Frame::Ping(_) | Frame::Window { .. }) {
                return frame;
            }
        }
    }
}

fn hello(version: ProtocolVersion, token: Option<&str>) -> Frame {
    Frame::Hello(Hello {
        version: version.as_str().into(),
        capabilities: if version == ProtocolVersion::V2 {
            vec!["multi-ws".into()]
        } else {
            Vec::new()
        },
        auth: token.map(|t| HelloAuth {
            kind: "bearer".into(),
            token: t.into(),
        }),
        resume: None,
        max_connections: (version == ProtocolVersion::V2).then_some(2),
    })
}

fn route_bind(name: &str) -> Frame {
    let bind = Bind {
        client_bind_ref: Value::String(name.into()),
        route: Some(RouteSpec {
            subdomain: Some(name.into()),
            mode: RouteMode::Single,
        }),
        container_port: None,
        ..raw_bind(BindKind::Http, BindMode::Expose, 0)
    };
    Frame::Bind(bind)
}

#[tokio::test]
async fn hoody_style_hello_works_with_a_client_token() {
    let file = TempClients::new(&alice_and_bob());
    let server = clients_server(&file, |_| {}).await;

    // Bearer on the upgrade, HELLO without auth (hoody-tunnel.v1).
    let mut carrier = raw_carrier(&server, "hoody-tunnel.v1", Some(ALICE)).await;
    send(&mut carrier, &hello(ProtocolVersion::V1, None)).await;
    let Frame::HelloOk(ok) = next(&mut carrier).await else {
        panic!("HELLO_OK expected");
    };
    assert_eq!(
        server
            .state()
            .sessions
            .get(&ok.session_id)
            .unwrap()
            .client
            .name
            .as_ref(),
        "alice"
    );
    send(&mut carrier, &route_bind("alice")).await;
    assert!(matches!(next(&mut carrier).await, Frame::BindOk(_)));
    send(&mut carrier, &route_bind("bob")).await;
    match next(&mut carrier).await {
        Frame::BindErr(e) => assert_eq!(e.code, BindErrorCode::ForbiddenRoute),
        other => panic!("BIND_ERR expected, got {other:?}"),
    }

    // The token in HELLO auth works the same.
    let mut carrier = raw_carrier(&server, "hoody-tunnel.v1", None).await;
    send(&mut carrier, &hello(ProtocolVersion::V1, Some(BOB))).await;
    assert!(matches!(next(&mut carrier).await, Frame::HelloOk(_)));
    send(&mut carrier, &route_bind("bob")).await;
    assert!(matches!(next(&mut carrier).await, Frame::BindOk(_)));

    // A bearer nobody has: GOAWAY AUTH.
    let mut carrier = raw_carrier(&server, "hoody-tunnel.v1", Some("nobody")).await;
    send(&mut carrier, &hello(ProtocolVersion::V1, None)).await;
    match next(&mut carrier).await {
        Frame::GoAway(g) => assert_eq!(g.code, ErrorCode::AUTH),
        other => panic!("GOAWAY expected, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_extra_carrier_joins_only_with_its_own_clients_bearer() {
    let file = TempClients::new(&alice_and_bob());
    let server = clients_server(&file, |_| {}).await;
    let mut first = raw_carrier(&server, "hoody-tunnel.v2", Some(ALICE)).await;
    send(&mut first, &hello(ProtocolVersion::V2, None)).await;
    let Frame::HelloOk(ok) = next(&mut first).await else {
        panic!("HELLO_OK expected");
    };
    let ticket = ok.join_tickets.unwrap().remove(0);
    let join = Frame::Join(Join {
        session_id: ok.session_id.clone(),
        index: ticket.index,
        nonce: ticket.nonce,
    });

    // Bob's bearer with Alice's ticket: refused, and the ticket stays good.
    let mut extra = raw_carrier(&server, "hoody-tunnel.v2", Some(BOB)).await;
    send(&mut extra, &join).await;
    assert!(matches!(next(&mut extra).await, Frame::JoinErr(_)));
    let mut extra = raw_carrier(&server, "hoody-tunnel.v2", Some(ALICE)).await;
    send(&mut extra, &join).await;
    assert!(matches!(next(&mut extra).await, Frame::JoinOk(_)));
    server.shutdown().await;
}
