//! What one HTTP keep-alive request costs the tunnel, counted as heap allocations (a counting
//! global allocator in this test binary), not timed. Server and client run in this process
//! with the request inspector attached (as `underpass http` does by default); the visitor and
//! the local app are raw sockets with fixed buffers, so nearly every allocation counted is the
//! tunnel's: the server's hyper and edge, the STREAM_OPEN and response head, the client's HTTP
//! client and the inspector's capture.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use underpass::client::HttpExpose;
use underpass::inspect::{InspectConfig, Inspector};

/// Counts the allocations of the whole test process.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Requests before counting: enough to fill the inspector's ring (500), so the count includes
/// its steady state of evicting the oldest exchange.
const WARM: usize = 600;
/// Requests counted.
const MEASURED: usize = 1000;
/// Allocations one request may cost, server, client and inspector together. Measured 146 (debug
/// build) when this test was written, 168 just before: the inspector copied the request head
/// and each response header into strings of their own, and the client copied method, host and
/// path for its log line. 141 with the client's own connection pool.
const PER_REQUEST_LIMIT: usize = 155;

/// The app's whole answer: a 100-byte body, as the benchmarks' nginx serves.
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nserver: test\r\n\
content-length: 100\r\n\r\n\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// Reads from `tcp` until `buf[..filled]` holds a whole head plus `body` bytes after it; keeps
/// no more than one message (the visitor and the app send one at a time). False at EOF.
async fn read_message(tcp: &mut TcpStream, buf: &mut [u8], body: usize) -> bool {
    let mut filled = 0;
    loop {
        if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            if filled >= end + 4 + body {
                return true;
            }
        }
        match tcp.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => filled += n,
        }
    }
}

/// A keep-alive app answering every request with [`ANSWER`], from fixed buffers.
async fn app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while read_message(&mut tcp, &mut buf, 0).await {
                    if tcp.write_all(ANSWER).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// `n` requests on one keep-alive connection, each read whole before the next.
async fn requests(tcp: &mut TcpStream, n: usize) {
    let request = format!("GET /100b HTTP/1.1\r\nhost: {DEMO_HOST}\r\n\r\n");
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        tcp.write_all(request.as_bytes()).await.unwrap();
        assert!(read_message(tcp, &mut buf, 100).await, "the tunnel closed");
        assert!(buf.starts_with(b"HTTP/1.1 200"), "not a 200");
    }
}

async fn visitor(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

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
    within(60, requests(&mut tcp, WARM)).await;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    within(60, requests(&mut tcp, MEASURED)).await;
    let per_request = (ALLOCATIONS.load(Ordering::Relaxed) - before) / MEASURED;
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
