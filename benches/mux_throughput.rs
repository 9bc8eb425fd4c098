//! Bulk one-way throughput of the mux: 64 MiB per iteration, sent as zero-copy 64 KiB `Bytes`
//! chunks and read with `recv_chunk`, over 1 stream and over 8 parallel streams, on
//!
//! * in-memory carriers (`mem::pair`): the mux alone, no sockets or framing below it;
//! * the same with 10 ms of one-way delay (20 ms round trip): what the flow-control windows
//!   allow on a long path, where one stream can have at most its window in flight;
//! * loopback WebSocket carriers, 1 carrier (protocol v1) and 4 striped carriers (v2), through a
//!   real `Server` and `connect_session`, as `tests/core_striping.rs` does.
//!
//! The bench uses the binary's allocator (mimalloc), so the figures match what `underpass` does.
//!
//! Run with `cargo bench --bench mux_throughput`. Sample counts and times are kept small so the
//! whole run stays within a few minutes on a 2-core machine; the figures are for comparing
//! setups on one machine, not absolute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Mutex};
use underpass::client::{connect_session, ClientOptions};
use underpass::mux::{MuxConfig, Role, Session, SessionEvent};
use underpass::proto::StreamOpen;
use underpass::server::{Server, ServerConfig};
use underpass_transports::mem;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bytes moved per iteration, split evenly over the streams of that iteration.
const BYTES_PER_ITER: usize = 64 << 20;
/// Size of each `send`: one shared buffer, so sending is a refcount bump, not a copy.
const CHUNK: usize = 64 << 10;
/// Stream counts measured for every carrier setup.
const STREAM_COUNTS: [usize; 2] = [1, 8];
/// Upper bound for one iteration, so a stuck session fails the bench instead of hanging it.
const ITER_TIMEOUT: Duration = Duration::from_secs(120);

/// One connected pair of sessions: `sender` opens streams, the peer's reader tasks report how
/// many bytes each stream delivered on `done`.
struct Link {
    sender: Session,
    done: Mutex<mpsc::UnboundedReceiver<u64>>,
    /// Kept so the server (and its sessions) live as long as the link; `None` for mem.
    _server: Option<Server>,
    /// Kept so the receiving session is not dropped while benches run.
    receiver: Session,
}

/// Drains every stream the peer opens on `session` and reports its byte count on `done`.
fn spawn_sink(session: Session, done: mpsc::UnboundedSender<u64>) {
    tokio::spawn(async move {
        while let Some(ev) = session.next_event().await {
            if let SessionEvent::Incoming(stream, _) = ev {
                let done = done.clone();
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let mut n = 0u64;
                    while let Ok(Some(chunk)) = r.recv_chunk().await {
                        n += chunk.len() as u64;
                    }
                    // Close our direction too, so the stream ends cleanly both ways and the
                    // sender's handles can be dropped without a RESET racing the data.
                    let _ = w.finish();
                    let _ = done.send(n);
                });
            }
        }
    });
}

impl Link {
    fn new(sender: Session, receiver: Session, server: Option<Server>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        spawn_sink(receiver.clone(), tx);
        Self {
            sender,
            done: Mutex::new(rx),
            _server: server,
            receiver,
        }
    }

    /// Moves `BYTES_PER_ITER` over `streams` parallel streams; returns the wall time from the
    /// first open to the last byte counted at the receiver.
    async fn transfer(&self, streams: usize, chunk: &Bytes) -> Duration {
        let mut done = self.done.lock().await;
        let per_stream = BYTES_PER_ITER / streams;
        let start = Instant::now();
        let mut writers = Vec::with_capacity(streams);
        for _ in 0..streams {
            let stream = self
                .sender
                .open(&StreamOpen::tcp(1))
                .expect("open a bench stream");
            let chunk = chunk.clone();
            writers.push(tokio::spawn(async move {
                let (r, mut w) = stream.split();
                let mut left = per_stream;
                while left > 0 {
                    let n = left.min(chunk.len());
                    w.send(chunk.slice(..n)).await.expect("send a chunk");
                    left -= n;
                }
                w.finish().expect("finish the stream");
                // The halves stay alive until the receiver has read everything (see spawn_sink).
                (r, w)
            }));
        }
        let mut received = 0u64;
        for _ in 0..streams {
            let n = tokio::time::timeout(ITER_TIMEOUT, done.recv())
                .await
                .expect("receiver finished in time")
                .expect("receiver still running");
            received += n;
        }
        let elapsed = start.elapsed();
        assert_eq!(received, (per_stream * streams) as u64, "bytes lost");
        for w in writers {
            drop(w.await.expect("writer task"));
        }
        elapsed
    }
}

/// Two sessions over an in-memory carrier pair, `delay` each way.
fn mem_link(delay: Option<Duration>) -> Link {
    let (a, b, _) = mem::pair_with(mem::MemOptions { delay });
    let server = Session::start(MuxConfig::new(Role::Server), a);
    let client = Session::start(MuxConfig::new(Role::Client), b);
    Link::new(server, client, None)
}

/// A loopback server and a client with `connections` WebSocket carriers; the server side sends.
async fn ws_link(connections: u32) -> Link {
    let token = "bench-token-0123456789";
    let server = Server::start(ServerConfig::local(token))
        .await
        .expect("server starts");
    let opts = ClientOptions::new(server.control_url(), token).connections(connections);
    let (client, _hello) = tokio::time::timeout(Duration::from_secs(10), connect_session(&opts))
        .await
        .expect("connect in time")
        .expect("connect");
    let server_side = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some((_, s)) = server.sessions().into_iter().next() {
                // Striping only counts once every carrier has joined on the server side.
                let alive = s.inspect(|st| {
                    (0..st.carrier_count())
                        .filter(|i| st.carrier_alive(*i))
                        .count()
                });
                if alive >= connections as usize {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("server session with every carrier");
    Link::new(server_side, client, Some(server))
}

fn bench_link(c: &mut Criterion, rt: &Runtime, name: &str, link: Link) {
    let link = Arc::new(link);
    let chunk = Bytes::from(vec![0xA5u8; CHUNK]);
    let mut group = c.benchmark_group(format!("mux_throughput/{name}"));
    // Each iteration is tens to hundreds of milliseconds: flat sampling with the minimum sample
    // count keeps the run short while still timing every iteration separately.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(BYTES_PER_ITER as u64));
    for streams in STREAM_COUNTS {
        group.bench_with_input(
            BenchmarkId::new("streams", streams),
            &streams,
            |b, &streams| {
                b.to_async(rt).iter_custom(|iters| {
                    let link = link.clone();
                    let chunk = chunk.clone();
                    async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += link.transfer(streams, &chunk).await;
                        }
                        total
                    }
                });
            },
        );
    }
    group.finish();
    rt.block_on(async {
        link.sender.abort();
        link.receiver.abort();
    });
}

fn mux_throughput(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mem = rt.block_on(async { mem_link(None) });
    bench_link(c, &rt, "mem", mem);
    let far = rt.block_on(async { mem_link(Some(Duration::from_millis(10))) });
    bench_link(c, &rt, "mem-20ms-rtt", far);
    let ws1 = rt.block_on(ws_link(1));
    bench_link(c, &rt, "ws-1-carrier", ws1);
    let ws4 = rt.block_on(ws_link(4));
    bench_link(c, &rt, "ws-4-carriers", ws4);
}

criterion_group!(benches, mux_throughput);
criterion_main!(benches);
