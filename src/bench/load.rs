//! HTTP request rate and latency: a keep-alive hyper client and `workers` concurrent loops that
//! share a fixed budget of requests, each timed from send to the last body byte.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;

/// One request that takes longer than this counts as an error (and bounds each worker's loop).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Result of one request-rate run.
#[derive(Debug, Clone)]
pub struct HttpResult {
    /// Requests answered with a 2xx status and a complete body.
    pub ok: u32,
    /// Requests that failed (connection error, timeout, non-2xx).
    pub errors: u32,
    /// What the first failure was, to explain a non-zero `errors`.
    pub first_error: Option<String>,
    /// Wall time of the timed part (after warm-up).
    pub elapsed: Duration,
    /// Median latency of the successful requests.
    pub p50: Duration,
    /// 99th percentile latency of the successful requests.
    pub p99: Duration,
}

impl HttpResult {
    /// Successful requests per second.
    pub fn requests_per_sec(&self) -> f64 {
        f64::from(self.ok) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Per-worker tally.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u32,
    first_error: Option<String>,
}

/// Sends `requests` GETs to `http://target/` from `workers` concurrent loops.
pub async fn run(target: SocketAddr, requests: u32, workers: u32) -> Result<HttpResult, String> {
    let workers = workers.max(1);
    let mut connector = HttpConnector::new();
    // Small requests: Nagle plus delayed ACKs would otherwise dominate the latency figures.
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let uri: Uri = format!("http://{target}/")
        .parse()
        .map_err(|e| format!("bad bench URL for {target}: {e}"))?;

    // Warm-up: one request per worker at once, so the pool already holds `workers` open
    // connections and the timed part measures requests rather than TCP handshakes.
    let mut warm = JoinSet::new();
    for _ in 0..workers {
        let (client, uri) = (client.clone(), uri.clone());
        warm.spawn(async move { get(&client, uri).await });
    }
    while let Some(done) = warm.join_next().await {
        done.map_err(|e| format!("warm-up task: {e}"))?
            .map_err(|e| format!("warm-up request to {target} failed: {e}"))?;
    }

    let budget = Arc::new(AtomicU32::new(requests));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (client, uri, budget) = (client.clone(), uri.clone(), budget.clone());
        set.spawn(async move {
            let mut tally = Tally::default();
            // Each pass takes one request from the shared budget, so all loops together make
            // exactly `requests` requests, each bounded by REQUEST_TIMEOUT.
            while budget
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                let sent = Instant::now();
                match get(&client, uri.clone()).await {
                    Ok(()) => tally.latencies.push(sent.elapsed()),
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(e);
                    }
                }
            }
            tally
        });
    }
    let mut all = Tally::default();
    while let Some(done) = set.join_next().await {
        let t = done.map_err(|e| format!("HTTP worker task: {e}"))?;
        all.latencies.extend(t.latencies);
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let elapsed = start.elapsed();
    if all.latencies.is_empty() && requests > 0 {
        return Err(format!(
            "all {requests} HTTP requests to {target} failed: {}",
            all.first_error.unwrap_or_default()
        ));
    }
    all.latencies.sort_unstable();
    Ok(HttpResult {
        ok: u32::try_from(all.latencies.len()).unwrap_or(u32::MAX),
        errors: all.errors,
        first_error: all.first_error,
        elapsed,
        p50: percentile(&all.latencies, 0.50),
        p99: percentile(&all.latencies, 0.99),
    })
}

/// One GET, read to the end; any failure, a non-2xx status or a timeout is an error.
async fn get(client: &HttpClient, uri: Uri) -> Result<(), String> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let resp = client.get(uri).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        // The body is read even on an error status, so the connection can be reused.
        resp.into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    })
    .await
    .map_err(|_| format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=1); zero for no samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&ms, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&ms[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
