//! A protocol peer that writes frames by hand with the crate's codec over a real WebSocket
//! carrier: for hostile input (floods, frames out of order, payloads the server must refuse)
//! that the real client would never send.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use underpass::proto::{decode_message, encode_frame, Frame, Hello, HelloAuth, HelloOk};
use underpass::server::Server;
use underpass_transports::ws::WsTransport;
use underpass_transports::{Carrier, Endpoint, Transport};

use super::{within, TOKEN};

/// A WebSocket carrier to `server`'s control endpoint with `subprotocol` (and the token as
/// `Authorization: Bearer`, as the hoody SDK sends it, when `bearer` is given), nothing sent yet.
pub async fn raw_carrier(server: &Server, subprotocol: &str, bearer: Option<&str>) -> Carrier {
    let endpoint = Endpoint {
        url: server.control_url(),
        subprotocol: subprotocol.into(),
        bearer: bearer.map(str::to_string),
    };
    within(10, WsTransport::new().connect(&endpoint))
        .await
        .expect("WebSocket upgrade")
}

/// One raw carrier to a server.
pub struct RawPeer {
    pub carrier: Carrier,
    backlog: VecDeque<Frame>,
}

impl RawPeer {
    /// A WebSocket carrier to `server` with `subprotocol`, nothing sent yet.
    pub async fn dial(server: &Server, subprotocol: &str) -> RawPeer {
        RawPeer {
            carrier: raw_carrier(server, subprotocol, None).await,
            backlog: VecDeque::new(),
        }
    }

    /// A v1 session: HELLO with the test token, HELLO_OK back.
    pub async fn session(server: &Server) -> (RawPeer, HelloOk) {
        let mut peer = Self::dial(server, "hoody-tunnel.v1").await;
        peer.send(&[Frame::Hello(Hello {
            version: "hoody-tunnel.v1".into(),
            capabilities: Vec::new(),
            auth: Some(HelloAuth {
                kind: "bearer".into(),
                token: TOKEN.into(),
            }),
            resume: None,
            max_connections: None,
        })])
        .await;
        match peer.next().await {
            Some(Frame::HelloOk(ok)) => (peer, ok),
            other => panic!("expected HELLO_OK, got {other:?}"),
        }
    }

    /// Sends `frames` as one carrier message (at most 64 frames and 256 KiB).
    pub async fn send(&mut self, frames: &[Frame]) {
        let mut out = BytesMut::new();
        for f in frames {
            encode_frame(f, &mut out).expect("encodable frame");
        }
        self.send_bytes(out.freeze()).await;
    }

    /// Sends one message of raw bytes.
    pub async fn send_bytes(&mut self, message: Bytes) {
        self.carrier.tx.send(message).await.expect("carrier send");
    }

    /// The next frame from the server; `None` once the carrier is closed.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.backlog.pop_front() {
                return Some(f);
            }
            let message = within(10, self.carrier.rx.recv()).await.ok()??;
            self.backlog
                .extend(decode_message(&message).expect("server frames decode"));
        }
    }

    /// The next frame that `pred` accepts; frames before it are skipped.
    pub async fn expect(&mut self, what: &str, mut pred: impl FnMut(&Frame) -> bool) -> Frame {
        loop {
            match self.next().await {
                Some(f) if pred(&f) => return f,
                Some(_) => {}
                None => panic!("carrier closed before {what}"),
            }
        }
    }
}
