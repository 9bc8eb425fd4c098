//! Heap allocations counted, not time: a counting global allocator for the test binary that
//! includes this module, and the raw-socket app and visitor that the allocation tests drive
//! (fixed buffers, so nearly every allocation counted is the tunnel's).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::common;

/// Counts the allocations of the whole test process.
pub struct Counting;

pub static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

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
pub const WARM: usize = 600;
/// Requests counted.
pub const MEASURED: usize = 1000;
/// The app's whole answer: a 100-byte body, as the benchmarks' nginx serves.
pub const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nserver: test\r\n\
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
pub async fn app() -> u16 {
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
pub async fn requests(tcp: &mut TcpStream, n: usize) {
    let request = format!("GET /100b HTTP/1.1\r\nhost: {}\r\n\r\n", common::DEMO_HOST);
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        tcp.write_all(request.as_bytes()).await.unwrap();
        assert!(read_message(tcp, &mut buf, 100).await, "the tunnel closed");
        assert!(buf.starts_with(b"HTTP/1.1 200"), "not a 200");
    }
}

pub async fn visitor(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Allocations per request of `MEASURED` keep-alive requests on `tcp`, after `WARM` requests
/// (steady state: pools, rings and buffers filled).
pub async fn per_request(tcp: &mut TcpStream) -> usize {
    common::within(60, requests(tcp, WARM)).await;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    common::within(60, requests(tcp, MEASURED)).await;
    (ALLOCATIONS.load(Ordering::Relaxed) - before) / MEASURED
}
