//! Resume: when a client's connection drops, the server parks the session for the resume grace
//! period (visitors get 503 + Retry-After, ports stay bound) and a HELLO with `resume.sessionId`
//! brings every binding back on a new connection.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{header, Response};
use http_body_util::Full;
use underpass::client::{Binding, ClientError, ClientOptions, ClientSession};
use underpass::server::Server;

async fn app() -> u16 {
    common::app(|_req| async { Response::new(Full::new(Bytes::from_static(b"app"))) }).await
}

/// A GET / for `host`: status and Retry-After.
async fn visit(addr: SocketAddr, host: &str) -> (u16, Option<String>) {
    let r = get(addr, host, "/").await;
    let retry = r
        .headers
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    (r.status.as_u16(), retry)
}

/// A server for [`DOMAIN`] with resume grace `grace`, a relay in front of it that can cut the
/// connection, the options that dial through the relay, and a client connected through it whose
/// route `route` leads to [`app`].
async fn relayed(
    grace: Duration,
    route: &str,
) -> (Server, Relay, ClientOptions, ClientSession, Binding) {
    let server = server_with(|c| {
        c.domain = Some(DOMAIN.into());
        c.limits.resume_grace = grace;
    })
    .await;
    let relay = Relay::start(server.local_addr()).await;
    let opts = ClientOptions::new(format!("ws://{}", relay.addr), TOKEN);
    let client = ClientSession::connect(&opts).await.unwrap();
    let route = client
        .expose_http(app().await, &named(route))
        .await
        .unwrap();
    (server, relay, opts, client, route)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    within(10, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let _ = what;
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_with_every_binding() {
    let (server, relay, opts, client, _route) = relayed(Duration::from_secs(20), "r").await;
    let pull = client.pull(echo_server().await, 0).await.unwrap();
    let pulled = SocketAddr::from(([127, 0, 0, 1], pull.container_port()));
    assert_eq!(visit(server.local_addr(), "r.example.test").await.0, 200);
    assert_eq!(tcp_roundtrip(pulled, b"before").await, b"before");
    let id = client.session_id();

    relay.cut();
    let state = server.state().clone();
    wait_for("parked", || {
        state.sessions.get(&id).is_some_and(|e| e.is_parked())
    })
    .await;
    // Parked: visitors are asked to retry, the pull port stays bound.
    assert_eq!(
        visit(server.local_addr(), "r.example.test").await,
        (503, Some("5".into()))
    );
    assert!(
        tokio::net::TcpStream::connect(pulled).await.is_ok(),
        "pull port still bound"
    );

    within(10, client.resume(&opts)).await.unwrap();
    assert!(client.hello().resumed);
    assert_eq!(client.session_id(), id);
    assert_eq!(visit(server.local_addr(), "r.example.test").await.0, 200);
    assert_eq!(within(10, tcp_roundtrip(pulled, b"after")).await, b"after");
    assert_eq!(server.sessions().len(), 1);
    assert_eq!(
        client.mux().inspect(|st| st.carrier_count()),
        4,
        "carriers rejoined"
    );
}

#[tokio::test]
async fn after_the_grace_period_the_session_and_its_bindings_are_gone() {
    // The default grace (60 s), passed on tokio's paused clock: the sockets work in real time
    // while the clock runs, and the minute goes by in one step once the session is parked.
    let grace = underpass::server::Limits::default().resume_grace;
    assert_eq!(grace, Duration::from_secs(60));
    let (server, relay, opts, client, _route) = relayed(grace, "g").await;
    let id = client.session_id();
    relay.cut();
    let state = server.state().clone();
    wait_for("parked", || {
        state.sessions.get(&id).is_some_and(|e| e.is_parked())
    })
    .await;
    tokio::time::pause();
    tokio::time::advance(grace - Duration::from_secs(1)).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        state.sessions.get(&id).is_some(),
        "still parked just before the grace ends"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    for _ in 0..1000 {
        if state.sessions.get(&id).is_none() {
            break;
        }
        tokio::task::yield_now().await;
    }
    tokio::time::resume();
    assert!(
        state.sessions.get(&id).is_none(),
        "removed when the grace ran out"
    );
    assert_eq!(visit(server.local_addr(), "g.example.test").await.0, 404);
    let err = within(10, client.resume(&opts)).await.unwrap_err();
    assert!(matches!(err, ClientError::ResumeRefused(_)), "{err}");
    // A fresh session can take the route again.
    let fresh = ClientSession::connect(&opts).await.unwrap();
    fresh.expose_http(app().await, &named("g")).await.unwrap();
}

#[tokio::test]
async fn a_goodbye_or_an_admin_style_close_is_not_parked() {
    let server = server_with(|c| c.limits.resume_grace = Duration::from_secs(20)).await;
    let client = client(&server).await;
    let id = client.session_id();
    client.close();
    let state = server.state().clone();
    wait_for("removed", || state.sessions.get(&id).is_none()).await;
}

#[tokio::test]
async fn a_session_can_be_resumed_again_and_a_kill_ends_a_parked_one() {
    let (server, relay, opts, client, _route) = relayed(Duration::from_secs(30), "k").await;
    let id = client.session_id();
    let state = server.state().clone();
    // Resumed while the server has not noticed the loss yet (half-open), then lost again: the
    // second loss must park the session again, not end it.
    relay.cut();
    within(10, client.resume(&opts)).await.unwrap();
    assert_eq!(visit(server.local_addr(), "k.example.test").await.0, 200);
    relay.cut();
    wait_for("parked again", || {
        state.sessions.get(&id).is_some_and(|e| e.is_parked())
    })
    .await;
    // An admin kill of a parked session ends it at once instead of after the grace.
    state.sessions.get(&id).unwrap().forbid_parking();
    wait_for("removed", || state.sessions.get(&id).is_none()).await;
    assert!(matches!(
        within(10, client.resume(&opts)).await,
        Err(ClientError::ResumeRefused(_))
    ));
}

/// A server that answers any carrier's first message with a bare close 1008, as a server of the
/// protocol may refuse a resume without sending GOAWAY first.
async fn closing_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |mut req| async move {
                    let (resp, pending) = underpass_transports::ws::accept_upgrade(
                        &mut req,
                        &["hoody-tunnel.v2", "hoody-tunnel.v1"],
                        Some(peer),
                    )
                    .unwrap();
                    tokio::spawn(async move {
                        let mut carrier = pending.upgrade().await.unwrap();
                        let _ = carrier.rx.recv().await;
                        let _ = carrier.tx.close_with(1008, "resume grace expired").await;
                        let _ = carrier.rx.recv().await;
                    });
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_bare_close_1008_is_read_as_a_refused_resume() {
    let server = server().await;
    let client = ClientSession::connect(&ClientOptions::new(server.control_url(), TOKEN))
        .await
        .unwrap();
    let other = ClientOptions::new(format!("ws://{}", closing_server().await), TOKEN);
    let err = within(10, client.resume(&other)).await.unwrap_err();
    assert!(matches!(err, ClientError::ResumeRefused(_)), "{err}");
}
