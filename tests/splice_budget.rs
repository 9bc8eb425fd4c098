//! A splice whose socket always has data and whose stream always has credit must still hand
//! the thread back. tokio stops a task's I/O after a budget of operations per poll (reads come
//! back `Pending` although data is there) but does not count waiting for readiness; a read loop
//! that took such a `Pending` as "nothing to read" and went straight back to `readable()` spun
//! on one core for good (seen after a benchmark: a server at 100 % CPU long after its visitors
//! left). Here the runtime has one thread, so a spinning splice would starve the task that
//! counts the bytes, and the test would fail at its deadline instead of passing.

use std::io::Write;
use std::net::TcpListener as StdListener;
use std::sync::mpsc;
use std::time::Duration;

use underpass::mux::{MuxConfig, Role, Session, SessionEvent};
use underpass::proto::StreamOpen;
use underpass_transports::mem;

/// More than the budget's 128 reads of 64 KiB, all of it sent before the splice starts reading.
const BYTES: usize = 24 << 20;

/// Windows large enough that sending never waits for credit.
fn cfg(role: Role) -> MuxConfig {
    MuxConfig {
        stream_window: 256 << 20,
        session_window: 256 << 20,
        ..MuxConfig::new(role)
    }
}

#[test]
fn a_splice_with_data_and_credit_to_spare_yields_the_thread() {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The visitor: writes everything as fast as the socket takes it, then closes.
    let visitor = std::thread::spawn(move || {
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..BYTES / chunk.len() {
            if tcp.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let (tunnel_side, _) = listener.accept().expect("accept");
    tunnel_side.set_nonblocking(true).expect("nonblocking");

    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let received = rt.block_on(async move {
            // Let the visitor fill the socket buffers first, so every read finds data.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let tcp = tokio::net::TcpStream::from_std(tunnel_side).expect("tokio socket");
            let (a, b) = mem::pair();
            let server = Session::start(cfg(Role::Server), a);
            let client = Session::start(cfg(Role::Client), b);
            let stream = server.open(&StreamOpen::tcp(1)).expect("open");
            let splice = tokio::spawn(underpass::tcp::splice(tcp, stream));
            let mut far = match client.next_event().await {
                Some(SessionEvent::Incoming(stream, _)) => stream,
                other => panic!("expected a stream, got {other:?}"),
            };
            let mut received = 0;
            while let Ok(Some(chunk)) = far.recv_chunk().await {
                received += chunk.len();
            }
            drop(far);
            splice.abort();
            received
        });
        let _ = done.send(received);
    });
    let received = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the splice never let the thread go (spinning)");
    assert_eq!(received, BYTES);
    visitor.join().expect("visitor");
}
