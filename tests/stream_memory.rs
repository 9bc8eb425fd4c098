//! What an idle stream costs, measured by counting the bytes allocated and not yet freed (a
//! counting global allocator in this test binary), not by time. A WebSocket visitor that has
//! talked and gone quiet must not keep the splice's read buffers (64 KiB per direction before):
//! both ends wait for their socket to become readable and take a buffer only then.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counts live heap bytes of the whole test process.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes each visitor sends and gets back before going quiet: more than one small read, so the
/// splice buffers of both ends were in use.
const TALK: usize = 16 * 1024;
/// Visitors opened first, so one-time growth (tables, pools) is not counted per stream.
const WARM: usize = 64;
/// Visitors measured.
const MEASURED: usize = 256;
/// Live bytes one idle visitor may add, for both ends of the tunnel together plus this test's
/// own sockets and tasks (the visitor's and the app's): issue 9's target of 8 KiB per end, with
/// the test's share counted against it too. Measured about 6 KiB in all in a debug build (8 KiB
/// with the client's upgrade splice kept in its request task). Before, one idle visitor held
/// about 137 KiB: a 64 KiB read buffer at each end, hyper's read buffers and the client's whole
/// request task.
const PER_VISITOR_LIMIT: isize = 16 * 1024;

/// A local app that answers any upgrade with 101 and then echoes, with a small fixed buffer so
/// the test's own side stays cheap.
async fn quiet_ws_app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut tcp).await.is_none() {
                    return;
                }
                let answer = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
                              connection: upgrade\r\n\r\n";
                if tcp.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 512];
                while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                    if tcp.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Reads an HTTP head up to its blank line; returns it.
async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    String::from_utf8(head).ok()
}

/// A visitor: upgrades through the tunnel, echoes [`TALK`] bytes, and stays connected.
async fn visitor(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nhost: {DEMO_HOST}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await.expect("a response head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let sent = pattern(TALK, 7);
    let (mut r, mut w) = tcp.split();
    let mut back = vec![0u8; TALK];
    let (wrote, read) = tokio::join!(w.write_all(&sent), r.read_exact(&mut back));
    wrote.unwrap();
    read.unwrap();
    assert_eq!(back, sent);
    tcp
}

async fn visitors(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    for _ in 0..n / 32 {
        open.extend(futures_util::future::join_all((0..32).map(|_| visitor(addr))).await);
    }
    open
}

/// Live bytes once in-flight work has settled: the lowest of a few samples a little apart (tasks
/// that finish an upgrade free their memory just after the visitor saw its answer).
async fn settled_live() -> isize {
    let mut lowest = isize::MAX;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        lowest = lowest.min(LIVE.load(Ordering::Relaxed));
    }
    lowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_visitor_holds_no_splice_buffers() {
    let app = quiet_ws_app().await;
    // Every visitor comes from 127.0.0.1: no per-address cap.
    let server = server_with(|cfg| {
        cfg.domain = Some(DOMAIN.into());
        cfg.limits.max_connections_per_ip = 0;
    })
    .await;
    let client = client(&server).await;
    let _binding = client.expose_http(app, &named("demo")).await.unwrap();
    let addr = server.local_addr();
    let warm = within(60, visitors(addr, WARM)).await;
    let before = settled_live().await;
    let measured = within(60, visitors(addr, MEASURED)).await;
    let after = settled_live().await;
    let per_visitor = (after - before) / MEASURED as isize;
    eprintln!("one idle WebSocket visitor: {per_visitor} bytes (both ends and the test's sockets)");
    assert!(
        per_visitor <= PER_VISITOR_LIMIT,
        "an idle visitor holds {per_visitor} bytes, more than {PER_VISITOR_LIMIT}"
    );
    drop((warm, measured));
}
