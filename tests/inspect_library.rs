//! The capture as a library API, without the web page: an embedding program attaches an
//! `Inspector` to an expose (a local port, or a `serve(handler)` handler), subscribes to its
//! exchanges and replays them.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::broadcast::Receiver;
use underpass::client::HttpExpose;
use underpass::http::body::full;
use underpass::inspect::{
    BodyState, ExchangeState, InspectConfig, InspectEvent, Inspector, ReplayEdit, ReplayError,
};

async fn next(rx: &mut Receiver<InspectEvent>) -> InspectEvent {
    within(10, rx.recv()).await.expect("an event")
}

fn inspected(inspector: &Inspector, route: &str) -> HttpExpose {
    HttpExpose {
        inspector: Some(inspector.clone()),
        ..named(route)
    }
}

#[tokio::test]
async fn a_handler_s_exchanges_are_announced_in_order_and_replayed_to_it() {
    let server = domain_server().await;
    let client = client(&server).await;
    let inspector = Inspector::new(InspectConfig::default());
    let mut events = inspector.subscribe();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let _binding = client
        .expose_handler(&inspected(&inspector, "lib"), move |req| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                let method = req.method().clone();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let mut resp = Response::new(full(format!("{method} got {} bytes", body.len())));
                *resp.status_mut() = StatusCode::CREATED;
                resp
            }
        })
        .await
        .unwrap();
    let reply = request(
        server.local_addr(),
        Method::POST,
        "lib.example.test",
        "/orders",
        &[("content-type", "application/json")],
        r#"{"qty":3}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.text(), "POST got 9 bytes");

    let InspectEvent::Started(started) = next(&mut events).await else {
        panic!("first comes Started");
    };
    assert_eq!(started.request().method, "POST");
    assert_eq!(started.request().target, "/orders");
    assert_eq!(started.tunnel_name(), "lib");
    assert!(
        matches!(next(&mut events).await, InspectEvent::Responded(e) if e.id() == started.id())
    );
    let InspectEvent::Completed(done) = next(&mut events).await else {
        panic!("then Completed");
    };
    let snap = done.snapshot();
    assert_eq!(snap.state, ExchangeState::Complete);
    assert_eq!(
        snap.request_body.bytes(),
        Bytes::from_static(br#"{"qty":3}"#)
    );
    assert_eq!(snap.request_body.state(), BodyState::Complete);
    assert_eq!(snap.response.as_ref().map(|r| r.status), Some(201));
    assert_eq!(snap.response_body.bytes(), Bytes::from("POST got 9 bytes"));
    assert!(snap.duration.is_some() && snap.time_to_head <= snap.duration);
    assert_eq!(inspector.tunnels()[0].addr, "handler");

    // Replay calls the handler again, with no tunnel in between; edits apply.
    let edit = ReplayEdit {
        method: Some("PUT".into()),
        body: Some(Bytes::from_static(b"12345")),
        ..ReplayEdit::default()
    };
    let replay = inspector.replay(done.id(), None, edit).unwrap();
    assert_eq!(replay.replay_of(), Some(done.id()));
    loop {
        if let InspectEvent::Completed(e) = next(&mut events).await {
            if e.id() == replay.id() {
                break;
            }
        }
    }
    let snap = replay.snapshot();
    assert_eq!(snap.response_body.bytes(), Bytes::from("PUT got 5 bytes"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(inspector.exchanges()[0].id(), replay.id(), "newest first");

    assert_eq!(
        inspector
            .replay("nope", None, ReplayEdit::default())
            .unwrap_err(),
        ReplayError::NotFound("nope".into())
    );
    assert_eq!(
        inspector
            .replay(done.id(), Some("other"), ReplayEdit::default())
            .unwrap_err(),
        ReplayError::NoTunnel("other".into())
    );
    inspector.clear();
    assert!(matches!(next(&mut events).await, InspectEvent::Cleared));
    assert!(inspector.exchanges().is_empty());
}

#[tokio::test]
async fn the_ring_keeps_the_last_n_and_a_dropped_binding_leaves_the_tunnel_list() {
    let server = domain_server().await;
    let client = client(&server).await;
    let inspector = Inspector::new(InspectConfig {
        body_cap: 0,
        max_exchanges: 2,
    });
    let app = echo_app("ring").await;
    let binding = client
        .expose_http(app, &inspected(&inspector, "ring"))
        .await
        .unwrap();
    assert_eq!(inspector.tunnels().len(), 1);
    for n in 0..3 {
        let r = request(
            server.local_addr(),
            Method::POST,
            "ring.example.test",
            &format!("/{n}"),
            &[],
            "abc",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let kept: Vec<String> = inspector
        .exchanges()
        .iter()
        .map(|e| e.request().target.clone())
        .collect();
    assert_eq!(kept, ["/2", "/1"]);
    // A zero cap keeps sizes only.
    let snap = inspector.exchanges()[0].snapshot();
    assert_eq!(
        (snap.request_body.captured(), snap.request_body.total()),
        (0, 3)
    );
    assert!(snap.request_body.truncated());
    drop(binding);
    assert!(inspector.tunnels().is_empty());
}
