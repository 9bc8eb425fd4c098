//! `underpass server`: the public side.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::parse;
use crate::http::edge::token::generate_token;
use crate::http::edge::trusted_proxy::TrustedProxies;
use crate::server::clients::DEFAULT_CLIENT;
use crate::server::{Limits, Server, ServerConfig, CONTROL_PATH};

/// Flags of `underpass server`.
#[derive(Clone, Args)]
pub struct ServerArgs {
    /// Main listener: public HTTP, control endpoint, health probes.
    #[arg(long, env = "UNDERPASS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Root domain: D is the root route, X.D is route X.
    #[arg(long, env = "UNDERPASS_DOMAIN")]
    pub domain: Option<String>,
    /// Client token; generated and printed when absent (unless --clients is given). With
    /// --clients it is the client `default`, with every right.
    #[arg(long, env = "UNDERPASS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// TOML file of named clients, each with its own token and scope; re-read on SIGHUP and
    /// `underpass admin reload`.
    #[arg(long, env = "UNDERPASS_CLIENTS", value_name = "FILE")]
    pub clients: Option<PathBuf>,
    /// Bearer token of the admin API (/__underpass__/api/v1/...) and /__underpass__/metrics;
    /// both answer 404 without it.
    #[arg(long, env = "UNDERPASS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Proxy whose X-Forwarded-* headers are believed: loopback, private, an IP or a CIDR.
    /// Repeatable; the env var takes a comma list.
    #[arg(
        long = "trusted-proxy",
        env = "UNDERPASS_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Range for server-picked dedicated ports.
    #[arg(long, env = "UNDERPASS_EXPOSE_PORTS", default_value = "20000-65534", value_parser = parse::port_range)]
    pub expose_ports: RangeInclusive<u16>,
    /// Server loopback ports clients may `forward` to, e.g. 5432,8000-8100 (off by default).
    /// Repeatable or a comma list.
    #[arg(
        long,
        env = "UNDERPASS_ALLOW_FORWARD",
        value_name = "PORTS",
        value_delimiter = ',',
        value_parser = parse::port_range
    )]
    pub allow_forward: Vec<RangeInclusive<u16>>,
    /// Allow dedicated ports 80-1023 (below 80 is always refused).
    #[arg(long)]
    pub allow_privileged_ports: bool,
    /// Public URL of a dedicated port; {host} and {port} are replaced.
    #[arg(
        long,
        env = "UNDERPASS_PUBLIC_URL_TEMPLATE",
        default_value = "http://{host}:{port}"
    )]
    pub public_url_template: String,
    /// Most sessions at once.
    #[arg(long, default_value_t = 256)]
    pub max_sessions: usize,
    /// Most bindings per session.
    #[arg(long, default_value_t = 8)]
    pub max_bindings_per_session: usize,
    /// Most concurrent streams per session.
    #[arg(long, default_value_t = 1024)]
    pub max_streams_per_session: usize,
    /// Most carriers per session (clamps v2 connectionsGranted).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub max_connections_per_session: u32,
    /// Seconds a new carrier has to send HELLO.
    #[arg(long, default_value = "5", value_parser = parse::seconds)]
    pub hello_timeout: Duration,
    /// Initial per-stream window (bytes, or 64KiB / 1MiB style).
    #[arg(long, default_value = "1MiB", value_parser = parse::bytes)]
    pub stream_initial_window: u32,
    /// Initial per-session window.
    #[arg(long, default_value = "16MiB", value_parser = parse::bytes)]
    pub session_initial_window: u32,
    /// Seconds without receiving before a carrier is pinged.
    #[arg(long, default_value = "30", value_parser = parse::seconds)]
    pub ping_interval: Duration,
    /// Seconds to wait for a pong before closing the carrier.
    #[arg(long, default_value = "60", value_parser = parse::seconds)]
    pub pong_timeout: Duration,
    /// Seconds a visitor waits for the response head before 504.
    #[arg(long, default_value = "60", value_parser = parse::seconds)]
    pub response_timeout: Duration,
    /// Seconds an HTTP connection gets to send a request head; idle keep-alive connections are
    /// closed after it too; connections from a --trusted-proxy are exempt (0: off).
    #[arg(long, default_value = "30", value_parser = parse::seconds)]
    pub header_timeout: Duration,
    /// Seconds a stream (a TCP connection, a request, a WebSocket) may move nothing either way
    /// before it is closed (0: never).
    #[arg(long, visible_alias = "idle-timeout", default_value = "300", value_parser = parse::seconds)]
    pub idle_stream_timeout: Duration,
    /// New public requests and TCP connections one visitor address may start per second (also
    /// the burst); over it: 429 or a closed connection (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub visitor_rate: u32,
    /// Accepted connections at once before new ones get 503 (default: the open-file limit
    /// minus 64).
    #[arg(long)]
    pub fd_budget: Option<usize>,
    /// Connections one visitor address (an IPv6 /64) may hold at once on the public listeners;
    /// more get 429 or are closed. Trusted proxies are exempt (0: no cap).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// Seconds a session whose connection dropped is kept for its client to resume (0: never).
    #[arg(long, env = "UNDERPASS_RESUME_GRACE", default_value = "60", value_parser = parse::seconds)]
    pub resume_grace: Duration,
    /// Seconds running streams get to finish on SIGTERM/Ctrl-C (readiness answers 503 meanwhile).
    #[arg(long, env = "UNDERPASS_DRAIN_TIMEOUT", default_value = "10", value_parser = parse::seconds)]
    pub drain_timeout: Duration,
    /// hoody-compatible control listener: `/api/v1/tunnel/connect` for carriers and the admin API
    /// at `/api/v1/tunnel/...`; off unless given.
    #[arg(long, env = "UNDERPASS_CONTROL_LISTEN")]
    pub control_listen: Option<SocketAddr>,
    /// QUIC (UDP) listener for clients on trusted hosts; off unless given.
    #[arg(long, env = "UNDERPASS_QUIC_LISTEN")]
    pub quic_listen: Option<SocketAddr>,
    /// PEM certificate chain for QUIC (with --tls-key); default: a self-signed one.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for QUIC.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Keep the self-signed QUIC certificate in this file so restarts keep its fingerprint.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_cert_cache: Option<PathBuf>,
}

impl std::fmt::Debug for ServerArgs {
    /// Written by hand so the secrets show as `<redacted>`; other fields are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerArgs")
            .field("listen", &self.listen)
            .field("domain", &self.domain)
            .field("token", &crate::redact::Redacted::of(&self.token))
            .field(
                "admin_token",
                &crate::redact::Redacted::of(&self.admin_token),
            )
            .finish_non_exhaustive()
    }
}

impl ServerArgs {
    /// Builds the server configuration; the token is generated when missing and there is no
    /// clients file (second value true).
    pub fn config(&self) -> Result<(ServerConfig, bool), String> {
        let trusted = TrustedProxies::parse(&self.trusted_proxies).map_err(|e| e.to_string())?;
        let (token, generated) = match self.token.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => (Some(t.to_string()), false),
            None if self.clients.is_some() => (None, false),
            None => (Some(generate_token()), true),
        };
        let admin_token = self.admin_token.clone().filter(|t| !t.is_empty());
        // Every client holds the client token; the same value would hand them the admin API.
        if admin_token.is_some() && admin_token == token {
            return Err(
                "--admin-token must differ from --token (every client knows the token)".into(),
            );
        }
        let domain = self
            .domain
            .as_deref()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        let limits = Limits {
            max_sessions: self.max_sessions,
            max_bindings_per_session: self.max_bindings_per_session,
            max_streams_per_session: self.max_streams_per_session,
            max_connections_per_session: self.max_connections_per_session,
            hello_timeout: self.hello_timeout,
            stream_window: self.stream_initial_window,
            session_window: self.session_initial_window.max(self.stream_initial_window),
            ping_after: self.ping_interval,
            pong_timeout: self.pong_timeout,
            response_timeout: self.response_timeout,
            header_timeout: self.header_timeout,
            idle_stream_timeout: self.idle_stream_timeout,
            visitor_rate: std::num::NonZeroU32::new(self.visitor_rate),
            resume_grace: self.resume_grace,
            fd_budget: self.fd_budget,
            max_connections_per_ip: self.max_connections_per_ip,
            ..Limits::default()
        };
        Ok((
            ServerConfig {
                listen: self.listen,
                domain,
                token,
                clients_file: self.clients.clone(),
                admin_token,
                trusted_proxies: trusted,
                expose_ports: self.expose_ports.clone(),
                allow_forward: self.allow_forward.clone(),
                allow_privileged_ports: self.allow_privileged_ports,
                public_url_template: self.public_url_template.clone(),
                limits,
                control_listen: self.control_listen,
                #[cfg(feature = "quic")]
                quic: self.quic()?,
            },
            generated,
        ))
    }
}

impl ServerArgs {
    /// The QUIC listener settings: a given certificate, a cached self-signed one, or a fresh one.
    #[cfg(feature = "quic")]
    fn quic(&self) -> Result<Option<crate::server::QuicListen>, String> {
        use underpass_transports::quic::QuicServerCert;
        let Some(addr) = self.quic_listen else {
            if self.tls_cert.is_some() || self.tls_cert_cache.is_some() {
                return Err("--tls-cert / --tls-cert-cache need --quic-listen".into());
            }
            return Ok(None);
        };
        let mut names = vec!["localhost".to_string(), addr.ip().to_string()];
        if let Some(d) = &self.domain {
            names.insert(0, d.clone());
        }
        let cert = match (&self.tls_cert, &self.tls_key, &self.tls_cert_cache) {
            (Some(c), Some(k), _) => QuicServerCert::from_pem_files(c, k),
            (_, _, Some(cache)) => QuicServerCert::load_or_create(cache, &names),
            _ => QuicServerCert::self_signed(&names),
        }
        .map_err(|e| format!("QUIC certificate: {e}"))?;
        Ok(Some(crate::server::QuicListen { addr, cert }))
    }
}

/// Runs the server until Ctrl-C or SIGTERM, then drains.
pub async fn run(args: ServerArgs) -> Result<(), String> {
    let (config, generated) = args.config()?;
    let args_drain = args.drain_timeout;
    #[cfg(feature = "quic")]
    let fingerprint = config
        .quic
        .as_ref()
        .map(|q| q.cert.fingerprint_sha256_hex());
    let token = config.token.clone().filter(|_| generated);
    let domain = config.domain.clone();
    let server = Server::start(config).await.map_err(|e| e.to_string())?;
    let addr = server.local_addr();
    // Listening for SIGHUP before the banner: a reload sent once the banner is out must not
    // find the default action (ending the process) still in place.
    let reloads = server
        .state()
        .clients
        .file()
        .is_some()
        .then(|| reload_on_sighup(server.state().clone()))
        .flatten();
    if let Some(token) = token {
        println!("token: {token}");
    }
    print_clients(&server);
    let host = domain.unwrap_or_else(|| addr.ip().to_string());
    println!("public: http://{host}:{}", addr.port());
    println!("control: ws://{addr}{CONTROL_PATH}");
    if let Some(control) = server.control_addr() {
        println!("control-listen: ws://{control}/api/v1/tunnel/connect");
    }
    #[cfg(feature = "quic")]
    if let (Some(quic), Some(fp)) = (server.quic_addr(), fingerprint) {
        println!("quic: quic://{quic}");
        println!("quic-cert-sha256: {fp}");
    }
    tracing::info!(%addr, "server listening");
    shutdown_signal().await;
    if let Some(task) = reloads {
        task.abort();
    }
    tracing::info!(
        drain_secs = args_drain.as_secs_f64(),
        "draining, then shutting down"
    );
    server.shutdown_within(args_drain).await;
    Ok(())
}

/// With a clients file: one `clients:` line naming them, and a `default:` line when the shared
/// token is one of them.
fn print_clients(server: &Server) {
    let registry = &server.state().clients;
    let Some(file) = registry.file() else {
        return;
    };
    let clients = registry.all();
    let named: Vec<&str> = clients
        .iter()
        .map(|c| &*c.name)
        .filter(|n| *n != DEFAULT_CLIENT)
        .collect();
    let names = if named.is_empty() {
        "none yet".to_string()
    } else {
        named.join(", ")
    };
    println!(
        "clients: {names} (from {}; SIGHUP re-reads it)",
        file.display()
    );
    if clients.iter().any(|c| &*c.name == DEFAULT_CLIENT) {
        println!("default: the shared --token is the client 'default', with every right");
    }
}

/// A task that re-reads the clients file on each SIGHUP (only started with `--clients`;
/// without it SIGHUP keeps its usual meaning and ends the process).
fn reload_on_sighup(
    state: std::sync::Arc<crate::server::ServerState>,
) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use `underpass admin reload` instead");
            return None;
        };
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: re-reading the clients file");
                // Success and failure are both logged by the reload itself.
                let _ = crate::server::clients::reload(&state);
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        None
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
