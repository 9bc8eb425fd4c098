//! What `underpass bench` found: one row per path (direct, then each transport), shown as a
//! markdown table or serialised for `--json`.

use std::fmt;

use serde::Serialize;

/// Figures of one path: the direct baseline or one tunnel transport.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// `direct` (no tunnel) or the transport's name (`ws`, `ws-striped`).
    pub path: String,
    /// Carriers the tunnel session actually had (`None` for the direct path).
    pub carriers: Option<u32>,
    /// Bulk throughput over one TCP connection, MiB/s.
    pub single_stream_mib_s: f64,
    /// Bulk throughput over the parallel connections, MiB/s (all of them together).
    pub multi_stream_mib_s: f64,
    /// Successful HTTP requests per second.
    pub requests_per_sec: f64,
    /// Median HTTP latency, ms.
    pub p50_ms: f64,
    /// 99th percentile HTTP latency, ms.
    pub p99_ms: f64,
    /// Failed HTTP requests (counted, not in the latency figures).
    pub http_errors: u32,
    /// The first HTTP failure, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_first_error: Option<String>,
    /// Median mux PING round trip, ms (`None` for the direct path, or if no pong came back).
    pub rtt_ms: Option<f64>,
    /// Process CPU seconds (user + system) per GiB moved in the bulk runs (`None` off Linux, or
    /// when too little CPU time was measured to mean anything; see `cpu_s`).
    pub cpu_s_per_gib: Option<f64>,
    /// The CPU seconds that figure comes from (in 10 ms steps), so its precision can be judged.
    pub cpu_s: Option<f64>,
}

/// Below this much measured CPU time the per-GiB figure is flagged: `/proc` counts in 10 ms
/// ticks, so it is then only good to a few percent or worse.
const COARSE_CPU_SECONDS: f64 = 0.5;

/// Below this much there is no per-GiB figure at all: a handful of ticks (or none) would give a
/// number that looks precise and is not.
const MIN_CPU_SECONDS: f64 = 0.1;

/// CPU seconds per GiB from `cpu_s` seconds over `gib` GiB, if enough CPU time was measured.
pub(crate) fn cpu_per_gib(cpu_s: Option<f64>, gib: f64) -> Option<f64> {
    cpu_s
        .filter(|s| *s >= MIN_CPU_SECONDS && gib > 0.0)
        .map(|s| s / gib)
}

/// The whole result of a bench run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// underpass version that produced the figures.
    pub version: &'static str,
    /// CPU cores available to the process (the figures depend on it).
    pub cores: usize,
    /// Bytes per bulk run (each of the single- and multi-stream runs moves this much).
    pub bytes: u64,
    /// Connections of the multi-stream bulk run.
    pub parallel_streams: u32,
    /// HTTP requests per path (after warm-up).
    pub requests: u32,
    /// Concurrent HTTP workers.
    pub http_workers: u32,
    /// The server measured against, when it was not started in this process.
    pub server: Option<String>,
    /// Direct baseline first, then one row per transport.
    pub rows: Vec<BenchRow>,
}

/// `12.345` with `decimals`, or `n/a`.
fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))
}

/// `256 MiB` when the size is a whole number of MiB, else plain bytes.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match &self.server {
            Some(url) => format!("against {url}"),
            None => "on loopback".to_string(),
        };
        writeln!(
            f,
            "underpass {} bench {place}, {} cores: {} per bulk run, {} HTTP requests from {} \
             workers",
            self.version,
            self.cores,
            size(self.bytes),
            self.requests,
            self.http_workers
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| transport | 1-stream MiB/s | {}-stream MiB/s | req/s | p50 ms | p99 ms | RTT ms | \
             CPU s/GiB |",
            self.parallel_streams
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        for r in &self.rows {
            let path = match r.carriers {
                None => format!("{} (no tunnel)", r.path),
                Some(1) => format!("{} (1 carrier)", r.path),
                Some(n) => format!("{} ({n} carriers)", r.path),
            };
            writeln!(
                f,
                "| {path} | {:.1} | {:.1} | {:.0} | {:.3} | {:.3} | {} | {} |",
                r.single_stream_mib_s,
                r.multi_stream_mib_s,
                r.requests_per_sec,
                r.p50_ms,
                r.p99_ms,
                opt(r.rtt_ms, 3),
                opt(r.cpu_s_per_gib, 2),
            )?;
        }
        writeln!(f)?;
        if self.server.is_some() {
            writeln!(
                f,
                "CPU s/GiB: user + system CPU of this process (load generator, client and sink; \
                 not the server) during both bulk runs, per GiB delivered."
            )?;
        } else {
            writeln!(
                f,
                "CPU s/GiB: user + system CPU of this whole process (load generator, server, \
                 client and sink together) during both bulk runs, per GiB delivered."
            )?;
        }
        if self
            .rows
            .iter()
            .any(|r| r.cpu_s.is_some_and(|s| s < MIN_CPU_SECONDS))
        {
            writeln!(
                f,
                "  n/a where under {MIN_CPU_SECONDS} s of CPU time was measured (/proc counts 10 ms \
                 ticks); a larger --bytes gives a figure."
            )?;
        }
        if self.rows.iter().any(|r| {
            r.cpu_s
                .is_some_and(|s| (MIN_CPU_SECONDS..COARSE_CPU_SECONDS).contains(&s))
        }) {
            writeln!(
                f,
                "  Some figures rest on under {COARSE_CPU_SECONDS} s of CPU time: coarse; a larger \
                 --bytes sharpens them."
            )?;
        }
        write!(
            f,
            "RTT: median mux PING round trip on carrier 0 (no tunnel, no RTT for the direct path)."
        )?;
        for r in self.rows.iter().filter(|r| r.http_errors > 0) {
            write!(
                f,
                "\n{}: {} HTTP requests failed (first: {})",
                r.path,
                r.http_errors,
                r.http_first_error.as_deref().unwrap_or("?")
            )?;
        }
        Ok(())
    }
}
