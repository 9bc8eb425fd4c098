//! `underpass bench`: a server, a client session per transport, a TCP sink and a small HTTP app,
//! all in this process on loopback, measuring what DESIGN.md section 8 lists (bulk throughput
//! of 1 and of N streams, HTTP request rate and p50/p99 latency, RTT, CPU seconds per GiB) for
//! each transport, next to a direct run without the tunnel so the overhead shows. With a
//! [`RemoteServer`] the server is a real one elsewhere and everything else stays here.
//!
//! Every figure comes from a measurement of this run; nothing is estimated or filled in.

mod app;
mod bulk;
mod cpu;
mod load;
mod remote;
mod report;
mod rtt;
mod sink;
mod transport;

use std::net::SocketAddr;
use std::time::Duration;

pub use remote::{url_host, RemoteServer};
pub use report::{BenchReport, BenchRow};
pub use transport::BenchTransport;

use crate::client::{ClientOptions, ClientSession, HttpExpose};
use crate::http::edge::token::generate_token;
use crate::mux::Session;
use crate::server::{Server, ServerConfig};
use app::App;
use sink::Sink;

/// One GiB, for the CPU-per-GiB figure.
const GIB: f64 = (1u64 << 30) as f64;
/// Bound on connecting a client session and binding its exposes.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Most parallel bulk connections: enough to show striping, few enough for one machine.
const MAX_PARALLEL_STREAMS: u32 = 256;
/// Most concurrent HTTP workers.
const MAX_HTTP_WORKERS: u32 = 1024;

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Transports to measure, in order; duplicates are measured once.
    pub transports: Vec<BenchTransport>,
    /// Bytes per bulk run (the 1-stream and the N-stream run each move this much).
    pub bytes: u64,
    /// HTTP requests per path, after a warm-up of one request per worker.
    pub requests: u32,
    /// Print JSON instead of the table (read by the command line, not by [`run`]).
    pub json: bool,
    /// Connections of the multi-stream bulk run.
    pub parallel_streams: u32,
    /// Concurrent HTTP workers, each with its own keep-alive connection.
    pub http_workers: u32,
    /// Measure against this server instead of one started in this process (`transports` is
    /// then unused: the remote's paths say what to measure).
    pub remote: Option<RemoteServer>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            transports: BenchTransport::ALL.to_vec(),
            bytes: 256 << 20,
            requests: 5000,
            json: false,
            parallel_streams: 8,
            http_workers: 16,
            remote: None,
        }
    }
}

impl BenchOptions {
    fn validate(&self) -> Result<(), String> {
        if self.bytes < u64::from(self.parallel_streams) || self.bytes == 0 {
            return Err("--bytes must be at least one byte per parallel stream".into());
        }
        if !(1..=MAX_PARALLEL_STREAMS).contains(&self.parallel_streams) {
            return Err(format!(
                "parallel streams must be 1 to {MAX_PARALLEL_STREAMS}"
            ));
        }
        if !(1..=MAX_HTTP_WORKERS).contains(&self.http_workers) {
            return Err(format!("HTTP workers must be 1 to {MAX_HTTP_WORKERS}"));
        }
        if self.requests == 0 {
            return Err("--requests must be at least 1".into());
        }
        Ok(())
    }
}

/// Runs the whole bench and returns the figures: in this process on loopback, or against
/// `opts.remote`.
pub async fn run(opts: &BenchOptions) -> Result<BenchReport, String> {
    opts.validate()?;
    if let Some(remote) = &opts.remote {
        if remote.paths.is_empty() {
            return Err("nothing to measure against the given server".into());
        }
        let mut report = measure_all(opts, &remote.paths, &remote.host, false).await?;
        report.server = Some(remote.url.clone());
        return Ok(report);
    }
    let mut transports = opts.transports.clone();
    // Keep the first occurrence of each, in the order asked for.
    let mut seen = std::collections::HashSet::new();
    transports.retain(|t| seen.insert(*t));

    let token = generate_token();
    let mut cfg = ServerConfig::local(token.clone());
    for t in &transports {
        t.prepare_server(&mut cfg);
    }
    let server = Server::start(cfg)
        .await
        .map_err(|e| format!("cannot start the bench server: {e}"))?;
    let paths: Vec<(String, ClientOptions)> = transports
        .iter()
        .map(|t| (t.name().to_string(), t.client_options(&server, &token)))
        .collect();
    let host = server.local_addr().ip().to_string();
    let result = measure_all(opts, &paths, &host, true).await;
    // Shut down on failure too, so an embedding caller is not left with a running server.
    server.shutdown().await;
    result
}

/// Measures the direct baseline (when asked) and then each path; `public_host` is where the
/// server's dedicated ports are reached.
async fn measure_all(
    opts: &BenchOptions,
    paths: &[(String, ClientOptions)],
    public_host: &str,
    direct: bool,
) -> Result<BenchReport, String> {
    let sink = Sink::start()
        .await
        .map_err(|e| format!("cannot start the TCP sink: {e}"))?;
    let app = App::start()
        .await
        .map_err(|e| format!("cannot start the HTTP app: {e}"))?;
    let mut rows = Vec::with_capacity(paths.len() + 1);

    if direct {
        tracing::info!("bench: direct (no tunnel)");
        rows.push(measure(opts, "direct", sink.addr(), app.addr(), &sink, None).await?);
    }

    for (name, options) in paths {
        tracing::info!("bench: {name}");
        let client = tokio::time::timeout(SETUP_TIMEOUT, ClientSession::connect(options))
            .await
            .map_err(|_| format!("{name}: the client did not connect in time"))?
            .map_err(|e| format!("{name}: cannot connect: {e}"))?;
        let row = measure_tunnel(opts, name, public_host, &client, &sink, &app).await;
        client.close();
        rows.push(row?);
    }

    Ok(BenchReport {
        version: env!("CARGO_PKG_VERSION"),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        bytes: opts.bytes,
        parallel_streams: opts.parallel_streams,
        requests: opts.requests,
        http_workers: opts.http_workers,
        server: None,
        rows,
    })
}

/// Binds a tcp expose to the sink and an http expose (own port) to the app, then measures
/// through the server's public ports.
async fn measure_tunnel(
    opts: &BenchOptions,
    name: &str,
    public_host: &str,
    client: &ClientSession,
    sink: &Sink,
    app: &App,
) -> Result<BenchRow, String> {
    let (tcp, http) = tokio::time::timeout(SETUP_TIMEOUT, async {
        let tcp = client.expose_tcp(sink.addr().port(), 0).await?;
        let http = client
            .expose_http(app.addr().port(), &HttpExpose::port(0))
            .await?;
        Ok::<_, crate::client::ClientError>((tcp, http))
    })
    .await
    .map_err(|_| format!("{name}: binding the exposes timed out"))?
    .map_err(|e| format!("{name}: cannot bind: {e}"))?;
    let tcp_target = remote::public_addr(public_host, tcp.container_port()).await?;
    let http_target = remote::public_addr(public_host, http.container_port()).await?;
    let mux = client.mux();
    let row = measure(opts, name, tcp_target, http_target, sink, Some(&mux)).await;
    drop((tcp, http));
    row
}

/// Measures one path: RTT (tunnel only, while idle), both bulk runs with the process CPU time
/// around them, then the HTTP request rate.
async fn measure(
    opts: &BenchOptions,
    name: &str,
    tcp_target: SocketAddr,
    http_target: SocketAddr,
    sink: &Sink,
    session: Option<&Session>,
) -> Result<BenchRow, String> {
    let (carriers, rtt) = match session {
        Some(s) => {
            let alive = s.inspect(|st| {
                (0..st.carrier_count())
                    .filter(|i| st.carrier_alive(*i))
                    .count()
            });
            (
                Some(u32::try_from(alive).unwrap_or(u32::MAX)),
                rtt::measure(s).await,
            )
        }
        None => (None, None),
    };

    let cpu_before = cpu::process_cpu_time();
    let one = bulk::run(tcp_target, sink, opts.bytes, 1)
        .await
        .map_err(|e| format!("{name}: 1-stream bulk: {e}"))?;
    let many = bulk::run(tcp_target, sink, opts.bytes, opts.parallel_streams)
        .await
        .map_err(|e| format!("{name}: {}-stream bulk: {e}", opts.parallel_streams))?;
    let cpu = cpu_before
        .zip(cpu::process_cpu_time())
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    let moved = (one.bytes + many.bytes) as f64 / GIB;

    let http = load::run(http_target, opts.requests, opts.http_workers)
        .await
        .map_err(|e| format!("{name}: HTTP: {e}"))?;

    Ok(BenchRow {
        path: name.to_string(),
        carriers,
        single_stream_mib_s: one.mib_per_sec(),
        multi_stream_mib_s: many.mib_per_sec(),
        requests_per_sec: http.requests_per_sec(),
        p50_ms: http.p50.as_secs_f64() * 1e3,
        p99_ms: http.p99.as_secs_f64() * 1e3,
        http_errors: http.errors,
        http_first_error: http.first_error,
        rtt_ms: rtt.map(|d| d.as_secs_f64() * 1e3),
        cpu_s_per_gib: report::cpu_per_gib(cpu, moved),
        cpu_s: cpu,
    })
}
