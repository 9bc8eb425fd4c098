//! Bulk throughput: N TCP connections to a target that leads to the [`Sink`], each writing its
//! share of the bytes; the clock runs from the first connect until the sink has counted every
//! byte.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::{JoinError, JoinSet};

use super::sink::Sink;

/// Size of each write: one shared buffer, so the writer costs no copies of its own.
const WRITE_CHUNK: usize = 256 << 10;

/// Deadline floor of one run; the rest of the deadline scales with the bytes (see [`deadline`]).
const MIN_DEADLINE: Duration = Duration::from_secs(60);

/// Result of one bulk run.
#[derive(Debug, Clone, Copy)]
pub struct BulkResult {
    /// Bytes the sink received.
    pub bytes: u64,
    /// From the first connect to the last byte at the sink.
    pub elapsed: Duration,
}

impl BulkResult {
    /// Throughput in MiB/s.
    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A generous bound so a stuck tunnel fails the run instead of hanging it: one minute plus one
/// second per MiB (far slower than any working loopback path).
fn deadline(total: u64) -> Duration {
    MIN_DEADLINE + Duration::from_secs(total >> 20)
}

/// Sends `total` bytes over `streams` parallel connections to `target` and times their arrival
/// at `sink`. The sink must be where `target` ultimately leads.
pub async fn run(
    target: SocketAddr,
    sink: &Sink,
    total: u64,
    streams: u32,
) -> Result<BulkResult, String> {
    let streams = u64::from(streams.max(1));
    let buf: Arc<[u8]> = (0..WRITE_CHUNK).map(|i| (i % 251) as u8).collect();
    sink.arm(total);
    let start = Instant::now();
    // Dropping the set on an early return aborts the writers that are left.
    let mut writers = JoinSet::new();
    for i in 0..streams {
        // Even shares; the first connection also carries the remainder.
        let share = total / streams + if i == 0 { total % streams } else { 0 };
        let buf = buf.clone();
        writers.spawn(async move {
            let mut tcp = TcpStream::connect(target)
                .await
                .map_err(|e| format!("connect {target}: {e}"))?;
            let mut left = share;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                tcp.write_all(&buf[..n])
                    .await
                    .map_err(|e| format!("write to {target}: {e}"))?;
                left -= n as u64;
            }
            tcp.shutdown()
                .await
                .map_err(|e| format!("shutdown {target}: {e}"))
        });
    }
    let arrived = sink.wait(deadline(total));
    tokio::pin!(arrived);
    // A writer that fails ends the run at once instead of leaving it to the sink's deadline.
    // Each pass either finishes a writer or ends the loop, so it runs at most `streams` + 1 times.
    loop {
        tokio::select! {
            r = &mut arrived => {
                r?;
                break;
            }
            Some(done) = writers.join_next(), if !writers.is_empty() => check(done)?,
        }
    }
    let elapsed = start.elapsed();
    // Everything has arrived, so the writers only have their FIN left; bounded all the same.
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(done) = writers.join_next().await {
            check(done)?;
        }
        Ok::<_, String>(())
    })
    .await
    .map_err(|_| "the bulk writers did not finish after delivering".to_string())??;
    Ok(BulkResult {
        bytes: sink.received(),
        elapsed,
    })
}

fn check(done: Result<Result<(), String>, JoinError>) -> Result<(), String> {
    done.map_err(|e| format!("writer task: {e}"))?
}
