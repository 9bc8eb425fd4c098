//! Graceful shutdown: readiness turns 503, new visitors get 503, a running stream finishes, then
//! the server stops well before its drain deadline.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http::Response;
use http_body_util::BodyExt;
use tokio::sync::Notify;

/// An app whose every answer is [`two_events`] released by `go`.
async fn sse_app(go: Arc<Notify>) -> u16 {
    app(move |_req| {
        let go = go.clone();
        async move { Response::new(two_events(go)) }
    })
    .await
}

#[tokio::test]
async fn a_draining_server_finishes_running_streams_and_refuses_new_ones() {
    let server = domain_server().await;
    let addr = server.local_addr();
    let go = Arc::new(Notify::new());
    let port = sse_app(go.clone()).await;
    let client = client(&server).await;
    let _b = client.expose_http(port, &named("live")).await.unwrap();

    let mut body = get_live(addr, "live.example.test", "/events")
        .await
        .into_body();
    let one = next_chunk(&mut body).await;
    assert_eq!(one, "data: one\n\n");

    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown_within(Duration::from_secs(20)));
    // Readiness flips to 503 while the stream is still running.
    within(10, async {
        loop {
            let r = get(addr, "any", "/__underpass__/health/ready").await;
            if r.status == 503 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let refused = get(addr, "live.example.test", "/events").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "5");
    assert!(refused.text().contains("shutting down"));

    // The running stream is untouched and finishes normally.
    go.notify_one();
    let two = next_chunk(&mut body).await;
    assert_eq!(two, "data: two\n\n");
    assert!(
        within(10, body.frame()).await.is_none(),
        "the stream ends cleanly"
    );

    within(15, stopping).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped once streams were done"
    );
    within(5, client.closed()).await;
}
