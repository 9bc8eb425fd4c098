//! A local TCP sink: accepts connections on loopback, reads and discards everything, and counts
//! the bytes so a bulk run can stop its clock when the last byte has arrived (not when the
//! sender's buffers have merely accepted it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Read buffer per connection: large, so the sink's own syscalls stay a small share of the CPU.
const READ_BUFFER: usize = 256 << 10;

#[derive(Default)]
struct Counter {
    received: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Counter {
    fn add(&self, n: usize) {
        let now = self.received.fetch_add(n as u64, Ordering::AcqRel) + n as u64;
        if now >= self.target.load(Ordering::Acquire) {
            // `notify_one` stores a permit if nobody waits yet, so the wake-up cannot be lost.
            self.reached.notify_one();
        }
    }
}

/// The running sink. Dropping it stops accepting.
pub struct Sink {
    addr: SocketAddr,
    counter: Arc<Counter>,
    accept: JoinHandle<()>,
}

impl Sink {
    /// Starts a sink on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let counter = Arc::new(Counter {
            // Nothing is awaited until the first `arm`.
            target: AtomicU64::new(u64::MAX),
            ..Counter::default()
        });
        let c = counter.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; READ_BUFFER];
                    // Ends at EOF or on error; a reset connection simply stops counting, and the
                    // run waiting for its bytes then fails on its deadline.
                    while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                        c.add(n);
                    }
                });
            }
        });
        Ok(Self {
            addr,
            counter,
            accept,
        })
    }

    /// Where the sink listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resets the count for a run that will deliver `total` bytes.
    pub fn arm(&self, total: u64) {
        self.counter.target.store(total, Ordering::Release);
        self.counter.received.store(0, Ordering::Release);
    }

    /// Bytes counted since the last [`arm`](Self::arm).
    pub fn received(&self) -> u64 {
        self.counter.received.load(Ordering::Acquire)
    }

    /// Waits until the armed total has arrived, at most `limit`.
    pub async fn wait(&self, limit: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        let target = self.counter.target.load(Ordering::Acquire);
        // Each pass either returns or consumes one notification; a stale permit from an earlier
        // run only costs one extra check, and the deadline bounds the loop.
        loop {
            if self.received() >= target {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, self.counter.reached.notified())
                .await
                .is_err()
            {
                return Err(format!(
                    "the sink received {} of {target} bytes within {}s",
                    self.received(),
                    limit.as_secs()
                ));
            }
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
