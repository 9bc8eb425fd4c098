//! What one HTTP keep-alive request costs the tunnel, counted as heap allocations (a counting
//! global allocator in this test binary), not timed. Server and client run in this process
//! with the request inspector attached (as `underpass http` does by default); the visitor and
//! the local app are raw sockets with fixed buffers, so nearly every allocation counted is the
//! tunnel's: the server's hyper and edge, the STREAM_OPEN and response head, the client's HTTP
//! client and the inspector's capture.

mod allocations;
mod common;

use allocations::{app, per_request, visitor};
use common::*;
use underpass::client::HttpExpose;
use underpass::inspect::{InspectConfig, Inspector};

/// Allocations one request may cost, server, client and inspector together. Measured 146 (debug
/// build) when this test was written, 168 just before: the inspector copied the request head
/// and each response header into strings of their own, and the client copied method, host and
/// path for its log line. 141 with the client's own connection pool; 130 once the carriers kept
/// their frame lists between messages.
const PER_REQUEST_LIMIT: usize = 155;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_request_costs_a_bounded_number_of_allocations() {
    let app = app().await;
    let server = domain_server().await;
    let client = client(&server).await;
    let inspector = Inspector::new(InspectConfig::default());
    let expose = HttpExpose {
        inspector: Some(inspector.clone()),
        ..named("demo")
    };
    let _binding = client.expose_http(app, &expose).await.unwrap();
    let mut tcp = visitor(server.local_addr()).await;
    let per_request = per_request(&mut tcp).await;
    eprintln!("one keep-alive request: {per_request} allocations (server, client, inspector)");
    assert_eq!(
        inspector.exchanges().len(),
        500,
        "the inspector captured them"
    );
    assert!(
        per_request <= PER_REQUEST_LIMIT,
        "a request costs {per_request} allocations, more than {PER_REQUEST_LIMIT}"
    );
}
