//! What one HTTP keep-alive exchange costs a plain TCP tunnel (a `tcp` expose: how rathole and
//! bore carry HTTP, and the benchmarks' keep-alive column), counted as heap allocations, not
//! timed. The tunnel does not parse the bytes: what is counted is the splice on both sides, the
//! mux frames each way and the carrier's messages.

mod allocations;
mod common;

use std::net::SocketAddr;

use allocations::{app, per_request, visitor};
use common::*;

/// Allocations one request and its answer may cost through the tunnel, server and client
/// together (debug build). Measured 22 when this test was written; 14 once a carrier's reader
/// and writer and a splice's socket writer kept their frame and chunk lists between messages.
/// What is left per direction: the read buffer and its handle, the message's gathered headers
/// and its list of parts, and the boxed futures of the carrier's send and receive.
const PER_REQUEST_LIMIT: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_exchange_through_a_tcp_tunnel_costs_few_allocations() {
    let app = app().await;
    let server = server().await;
    let client = client(&server).await;
    let binding = client.expose_tcp(app, 0).await.unwrap();
    let public = SocketAddr::from(([127, 0, 0, 1], binding.container_port()));
    let mut tcp = visitor(public).await;
    let per_request = per_request(&mut tcp).await;
    eprintln!("one keep-alive exchange through a tcp expose: {per_request} allocations");
    assert!(
        per_request <= PER_REQUEST_LIMIT,
        "an exchange costs {per_request} allocations, more than {PER_REQUEST_LIMIT}"
    );
}
