//! Issue 14, the server's side of re-joining, with carriers dialled by hand: TICKET_REQUEST
//! hands out a fresh single-use ticket (and gives up the carrier the client says it lost), and
//! a JOIN with a used, expired or foreign ticket, or for a session that is parked, is refused
//! with JOIN_ERR and a code.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use underpass::proto::{
    decode_message, encode_frame, CarrierTicket, Frame, Hello, HelloAuth, HelloOk, HelloResume,
    Join, TicketRequest,
};
use underpass::server::Server;
use underpass_transports::Carrier;

const ADMIN: &str = "admin-token-tickets-0123456";

/// One hand-driven carrier.
struct Raw {
    carrier: Carrier,
    backlog: Vec<Frame>,
}

impl Raw {
    async fn dial(server: &Server) -> Self {
        Self::dial_as(server, "hoody-tunnel.v2").await
    }

    async fn dial_as(server: &Server, subprotocol: &str) -> Self {
        Self {
            carrier: raw_carrier(server, subprotocol, None).await,
            backlog: Vec::new(),
        }
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        encode_frame(&frame, &mut out).unwrap();
        self.carrier.tx.send(out.freeze()).await.unwrap();
    }

    /// The next frame `want` accepts (others are kept); `None` once the carrier ended.
    async fn expect(&mut self, want: impl Fn(&Frame) -> bool) -> Option<Frame> {
        loop {
            if let Some(i) = self.backlog.iter().position(&want) {
                return Some(self.backlog.remove(i));
            }
            let msg = match within(20, self.carrier.rx.recv()).await {
                Ok(Some(msg)) => msg,
                _ => return None,
            };
            self.backlog.extend(decode_message(&msg).unwrap());
        }
    }

    /// True once the server closed this carrier.
    async fn closed_by_server(&mut self) -> bool {
        self.expect(|_| false).await.is_none()
    }
}

/// A v2 session of `carriers` carriers opened by hand: carrier 0 and HELLO_OK.
async fn hello(server: &Server, carriers: u32) -> (Raw, HelloOk) {
    hello_resuming(server, carriers, None).await
}

/// [`hello`], resuming session `resume` when given.
async fn hello_resuming(server: &Server, carriers: u32, resume: Option<&str>) -> (Raw, HelloOk) {
    let mut c0 = Raw::dial(server).await;
    c0.send(Frame::Hello(Hello {
        version: "hoody-tunnel.v2".into(),
        capabilities: vec!["multi-ws".into()],
        auth: Some(HelloAuth {
            kind: "bearer".into(),
            token: TOKEN.into(),
        }),
        resume: resume.map(|id| HelloResume {
            session_id: id.into(),
        }),
        max_connections: Some(carriers),
    }))
    .await;
    match c0.expect(|f| matches!(f, Frame::HelloOk(_))).await {
        Some(Frame::HelloOk(ok)) => (c0, ok),
        other => panic!("expected HELLO_OK, got {other:?}"),
    }
}

/// A JOIN on a new carrier; the carrier and the answer (JOIN_OK or JOIN_ERR).
async fn join(server: &Server, session_id: &str, index: u32, nonce: &str) -> (Raw, Frame) {
    let mut c = Raw::dial(server).await;
    c.send(Frame::Join(Join {
        session_id: session_id.into(),
        index,
        nonce: nonce.into(),
    }))
    .await;
    let answer = c
        .expect(|f| matches!(f, Frame::JoinOk(_) | Frame::JoinErr(_)))
        .await
        .expect("an answer to JOIN");
    (c, answer)
}

fn refused_with(answer: &Frame) -> &str {
    match answer {
        Frame::JoinErr(e) => &e.code,
        other => panic!("expected JOIN_ERR, got {other:?}"),
    }
}

async fn ticket(c0: &mut Raw, index: u32) -> CarrierTicket {
    c0.send(Frame::TicketRequest(TicketRequest {
        index,
        received_bytes: Some(0),
    }))
    .await;
    match c0
        .expect(|f| matches!(f, Frame::Ticket(t) if t.index == index))
        .await
    {
        Some(Frame::Ticket(t)) => t,
        other => panic!("expected TICKET, got {other:?}"),
    }
}

fn nonce_of(ok: &HelloOk, index: u32) -> String {
    ok.join_tickets
        .as_ref()
        .and_then(|t| t.iter().find(|t| t.index == index))
        .map(|t| t.nonce.clone())
        .expect("a ticket for the index")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_ticket_rejoins_a_lost_carrier_once() {
    let server = server_with(|c| c.admin_token = Some(ADMIN.into())).await;
    let (mut c0, ok) = hello(&server, 3).await;
    let id = ok.session_id.clone();
    let first = nonce_of(&ok, 1);
    let (mut c1, answer) = join(&server, &id, 1, &first).await;
    assert!(matches!(answer, Frame::JoinOk(_)), "{answer:?}");

    // HELLO_OK's ticket is single-use.
    let (_, answer) = join(&server, &id, 1, &first).await;
    assert_eq!(refused_with(&answer), "INVALID_TICKET");

    // Asking for a ticket says "carrier 1 is gone": the server gives it up and hands out a new
    // ticket, with what it received on it.
    let t = ticket(&mut c0, 1).await;
    assert_eq!(t.error, None, "{t:?}");
    assert_eq!(t.received_bytes, Some(0));
    assert!(t.expires_in_ms.is_some_and(|ms| ms > 0), "{t:?}");
    let nonce = t.nonce.clone().expect("a nonce");
    assert_ne!(nonce, first);
    assert!(
        c1.closed_by_server().await,
        "the server gave the old carrier 1 up"
    );

    // A newer ticket voids an older one not used yet.
    let t2 = ticket(&mut c0, 1).await;
    let newer = t2.nonce.expect("a nonce");
    let (_, answer) = join(&server, &id, 1, &nonce).await;
    assert_eq!(refused_with(&answer), "INVALID_TICKET");
    let (_c1, answer) = join(&server, &id, 1, &newer).await;
    assert!(matches!(answer, Frame::JoinOk(_)), "{answer:?}");
    let (_, answer) = join(&server, &id, 1, &newer).await;
    assert_eq!(
        refused_with(&answer),
        "INVALID_TICKET",
        "a TICKET is single-use too"
    );

    let sessions = admin_sessions(server.local_addr(), ADMIN).await;
    assert_eq!(sessions[0]["carrierLosses"], 1, "{sessions:?}");
    assert_eq!(sessions[0]["carrierRejoins"], 1, "{sessions:?}");
    // Carrier 2 never joined: 2 of 3 are up.
    assert_eq!(sessions[0]["carriers"], "2/3", "{sessions:?}");
    let metrics = admin_metrics(server.local_addr(), ADMIN).await;
    assert_eq!(
        metric(&metrics, "underpass_carrier_rejoined_total"),
        Some(1.0)
    );
    assert!(
        !metrics.contains(&newer) && !metrics.contains(&first),
        "no nonce in the metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_only_for_granted_secondary_carriers() {
    let server = server_with(|c| c.admin_token = Some(ADMIN.into())).await;
    let (mut c0, ok) = hello(&server, 2).await;
    for index in [0, 2, 99] {
        let t = ticket(&mut c0, index).await;
        assert_eq!(t.nonce, None, "{t:?}");
        assert_eq!(t.error.map(|e| e.code).as_deref(), Some("INVALID_INDEX"));
    }
    // A ticket admits its own index only: carrier 1's does not open a third carrier 2.
    let nonce = nonce_of(&ok, 1);
    let (_, answer) = join(&server, &ok.session_id, 2, &nonce).await;
    assert_eq!(refused_with(&answer), "INVALID_TICKET");
    let (_c1, answer) = join(&server, &ok.session_id, 1, &nonce).await;
    assert!(matches!(answer, Frame::JoinOk(_)), "{answer:?}");
    let s = &admin_sessions(server.local_addr(), ADMIN).await[0];
    assert_eq!(s["carriers"], "2/2", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_of_another_session_is_refused() {
    let server = server().await;
    let (_a0, a) = hello(&server, 2).await;
    let (_b0, b) = hello(&server, 2).await;
    let (_, answer) = join(&server, &a.session_id, 1, &nonce_of(&b, 1)).await;
    assert_eq!(refused_with(&answer), "INVALID_TICKET");
    let (_, answer) = join(&server, "s_no_such_session_0000", 1, &nonce_of(&b, 1)).await;
    assert_eq!(refused_with(&answer), "INVALID_TICKET");
    // Both tickets still work for their own sessions.
    let (_, answer) = join(&server, &b.session_id, 1, &nonce_of(&b, 1)).await;
    assert!(matches!(answer, Frame::JoinOk(_)), "{answer:?}");
    let (_, answer) = join(&server, &a.session_id, 1, &nonce_of(&a, 1)).await;
    assert!(matches!(answer, Frame::JoinOk(_)), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_ticket_is_refused() {
    let server = server_with(|c| c.limits.join_ticket_ttl = Duration::from_millis(100)).await;
    let (mut c0, ok) = hello(&server, 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, answer) = join(&server, &ok.session_id, 1, &nonce_of(&ok, 1)).await;
    assert_eq!(refused_with(&answer), "INVALID_TICKET");
    let t = ticket(&mut c0, 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, answer) = join(&server, &ok.session_id, 1, &t.nonce.unwrap()).await;
    assert_eq!(refused_with(&answer), "INVALID_TICKET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_for_a_parked_session_is_refused() {
    let server = server_with(|c| c.admin_token = Some(ADMIN.into())).await;
    let (mut c0, ok) = hello(&server, 3).await;
    let t = ticket(&mut c0, 2).await;
    // Carrier 0 vanishes without a goodbye: the session is parked for a resume.
    drop(c0);
    wait_parked(&server).await;
    let (mut c, answer) = join(&server, &ok.session_id, 2, &t.nonce.unwrap()).await;
    assert_eq!(refused_with(&answer), "SESSION_PARKED");
    assert!(c.closed_by_server().await);
    // HELLO_OK's ticket for carrier 1 does not get in either.
    let (_, answer) = join(&server, &ok.session_id, 1, &nonce_of(&ok, 1)).await;
    assert_eq!(refused_with(&answer), "SESSION_PARKED");
}

/// Waits until the only session is parked (carrier 0 went away without a goodbye).
async fn wait_parked(server: &Server) {
    within(20, async {
        loop {
            let s = admin_sessions(server.local_addr(), ADMIN).await;
            if s.first().is_some_and(|s| s["parked"] == true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_that_grants_another_count_sets_the_carriers_tickets_are_for() {
    let server = server_with(|c| c.admin_token = Some(ADMIN.into())).await;
    let (mut c0, ok) = hello(&server, 3).await;
    let id = ok.session_id.clone();
    // Resumed asking fewer, then more carriers than the session first had: the admin API shows
    // the new grant, a ticket for its last index is given, one for the index beyond is not.
    for asked in [2, 4] {
        drop(c0);
        wait_parked(&server).await;
        let (mut resumed, ok) = hello_resuming(&server, asked, Some(&id)).await;
        assert!(ok.resumed);
        assert_eq!(ok.connections_granted, Some(asked));
        let s = &admin_sessions(server.local_addr(), ADMIN).await[0];
        assert_eq!(s["carriers"], format!("1/{asked}"), "{s}");
        assert_eq!(s["connectionsGranted"], asked, "{s}");
        let t = ticket(&mut resumed, asked - 1).await;
        assert_eq!(t.error, None, "{t:?}");
        let t = ticket(&mut resumed, asked).await;
        assert_eq!(t.error.map(|e| e.code).as_deref(), Some("INVALID_INDEX"));
        c0 = resumed;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_session_gets_no_tickets() {
    let server = server().await;
    let mut c0 = Raw::dial_as(&server, "hoody-tunnel.v1").await;
    c0.send(Frame::Hello(Hello {
        version: "hoody-tunnel.v1".into(),
        capabilities: vec![],
        auth: Some(HelloAuth {
            kind: "bearer".into(),
            token: TOKEN.into(),
        }),
        resume: None,
        max_connections: None,
    }))
    .await;
    c0.expect(|f| matches!(f, Frame::HelloOk(_))).await.unwrap();
    let t = ticket(&mut c0, 1).await;
    assert_eq!(t.error.map(|e| e.code).as_deref(), Some("NOT_STRIPED"));
}
