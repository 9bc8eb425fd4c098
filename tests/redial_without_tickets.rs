//! Issue 14: a client against a server that does not know TICKET_REQUEST (an older underpass,
//! another implementation of the protocol). Such a server skips the extension frame and never
//! answers; the client asks once, then keeps running on the carriers it has, without dialling
//! again and again. In-memory carriers and tokio's paused clock, so minutes pass at once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use common::TOKEN;
use underpass::client::{ClientOptions, ClientSession};
use underpass::mux::{MuxConfig, Role, Session, SessionEvent};
use underpass::proto::{
    decode_message, encode_frame, Frame, HelloOk, JoinOk, JoinTicket, DEFAULT_SESSION_WINDOW,
    DEFAULT_STREAM_WINDOW,
};
use underpass_transports::mem::{MemAcceptor, MemLink, MemTransport};
use underpass_transports::Carrier;

async fn first_frame(c: &mut Carrier) -> Frame {
    let msg = c.rx.recv().await.unwrap().unwrap();
    decode_message(&msg).unwrap().remove(0)
}

async fn send(c: &mut Carrier, frame: Frame) {
    let mut out = BytesMut::new();
    encode_frame(&frame, &mut out).unwrap();
    c.tx.send(out.freeze()).await.unwrap();
}

/// The old server: grants 3 carriers, admits the two JOINs, and ignores everything it does not
/// know. Returns its mux and the links under carriers 1 and 2.
async fn old_server(mut acceptor: MemAcceptor) -> (Session, Vec<(u32, MemLink)>, MemAcceptor) {
    let (mut c0, _) = acceptor.accept_with_link().await.unwrap();
    assert!(matches!(first_frame(&mut c0).await, Frame::Hello(_)));
    let tickets = (1..3)
        .map(|index| JoinTicket {
            index,
            nonce: format!("nonce-{index}"),
            expires_ms: 30_000,
        })
        .collect();
    send(
        &mut c0,
        Frame::HelloOk(HelloOk {
            session_id: "s_oldserver0000000000".into(),
            resumed: false,
            resumed_binds: vec![],
            connections_granted: Some(3),
            join_tickets: Some(tickets),
            stream_window: DEFAULT_STREAM_WINDOW,
            session_window: DEFAULT_SESSION_WINDOW,
            server_version: None,
            domain: None,
            max_streams: None,
        }),
    )
    .await;
    let session = Session::start(MuxConfig::new(Role::Server), c0);
    let mut links = Vec::new();
    for _ in 0..2 {
        let (mut c, link) = acceptor.accept_with_link().await.unwrap();
        let Frame::Join(join) = first_frame(&mut c).await else {
            panic!("expected JOIN")
        };
        send(
            &mut c,
            Frame::JoinOk(JoinOk {
                session_id: join.session_id,
                index: join.index,
            }),
        )
        .await;
        session.attach_carrier(join.index as usize, c);
        links.push((join.index, link));
    }
    (session, links, acceptor)
}

#[tokio::test(start_paused = true)]
async fn without_tickets_the_client_asks_once_and_runs_on_fewer_carriers() {
    let (transport, acceptor) = MemTransport::new();
    let opts = ClientOptions::new("mem://old-server", TOKEN)
        .connections(3)
        .transport(Arc::new(transport));
    let server = tokio::spawn(old_server(acceptor));
    let client = ClientSession::connect(&opts).await.unwrap();
    let (server_mux, links, mut acceptor) = server.await.unwrap();
    assert_eq!(client.mux().inspect(|st| st.carriers_up()), 3);

    // The old server sees TICKET_REQUEST as an unknown extension: count and ignore it.
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let events = server_mux.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.next_event().await {
            if let SessionEvent::Control(Frame::TicketRequest(_)) = ev {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });

    let (_, link2) = links.iter().find(|(i, _)| *i == 2).unwrap();
    link2.cut();
    // Minutes pass (on tokio's paused clock): one request, then the client stops asking.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert!(
        tokio::time::timeout(Duration::from_secs(60), acceptor.accept())
            .await
            .is_err(),
        "the client dialled a carrier without a ticket"
    );
    // The session carries on with carriers 0 and 1.
    assert!(!client.mux().is_closed());
    assert_eq!(client.mux().inspect(|st| st.carriers_up()), 2);
    assert_eq!(server_mux.inspect(|st| st.carriers_up()), 2);
    client.mux().ping(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        client.mux().inspect(|st| st.rtt(1)).is_some(),
        "carrier 1 answers"
    );
}
