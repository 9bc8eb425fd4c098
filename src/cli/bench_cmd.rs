//! `underpass bench`: measure the tunnel on this machine, or against a given server (see
//! [`crate::bench`]).

use clap::Args;

use super::client_args::{self, ClientArgs};
use super::parse;
use crate::bench::{self, BenchOptions, BenchTransport, RemoteServer};

/// A `--transport` value: one transport, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportChoice {
    /// Every transport this build has.
    All,
    /// One transport.
    One(BenchTransport),
}

fn transport_choice(s: &str) -> Result<TransportChoice, String> {
    let s = s.trim();
    if s == "all" {
        return Ok(TransportChoice::All);
    }
    BenchTransport::from_name(s)
        .map(TransportChoice::One)
        .ok_or_else(|| {
            let names: Vec<&str> = BenchTransport::ALL.iter().map(|t| t.name()).collect();
            format!("'{s}' is not a transport ({} or all)", names.join(", "))
        })
}

/// Flags of `underpass bench`.
#[derive(Clone, Args)]
pub struct BenchArgs {
    /// Transports to measure: ws (one carrier), ws-striped (four carriers), quic (four carriers
    /// on one QUIC connection) or all. Repeat the flag or give a comma list.
    #[arg(
        long = "transport",
        value_name = "NAME",
        value_delimiter = ',',
        default_value = "all",
        value_parser = transport_choice
    )]
    pub transports: Vec<TransportChoice>,
    /// Bytes per bulk run (the 1-stream and the 8-stream run each move this much): 1048576,
    /// 64KiB, 256MiB.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = bulk_bytes)]
    pub bytes: u64,
    /// HTTP requests per path (direct and each transport).
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub requests: u32,
    /// Print the report as JSON instead of a markdown table.
    #[arg(long)]
    pub json: bool,
    /// Measure against this running server instead of one started in this process: a ws://,
    /// wss://, http:// or https:// URL measures ws and ws-striped, a quic:// URL measures quic.
    /// The server's dedicated ports (--expose-ports) must be reachable from here.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Token of the server given with --server (unused without it, so an exported
    /// UNDERPASS_TOKEN does not get in the way of a local run).
    #[arg(long, env = "UNDERPASS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// wss and QUIC: trust exactly the server certificate with this SHA-256.
    #[arg(long, requires = "server")]
    pub server_cert_sha256: Option<String>,
    /// wss and QUIC: trust server certificates issued by the CA certificates in this PEM file.
    #[arg(long, requires = "server")]
    pub ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for BenchArgs {
    /// Written by hand so the secrets show as `<redacted>`; other fields are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchArgs")
            .field("transports", &self.transports)
            .field("server", &self.server)
            .field("token", &crate::redact::Redacted::of(&self.token))
            .finish_non_exhaustive()
    }
}

fn bulk_bytes(s: &str) -> Result<u64, String> {
    parse::bytes(s).map(u64::from)
}

impl BenchArgs {
    fn options(&self) -> Result<BenchOptions, String> {
        let mut transports = Vec::new();
        for choice in &self.transports {
            match choice {
                TransportChoice::All => transports.extend_from_slice(BenchTransport::ALL),
                TransportChoice::One(t) => transports.push(*t),
            }
        }
        let remote = match &self.server {
            Some(url) => Some(self.remote(url, &transports)?),
            None => None,
        };
        Ok(BenchOptions {
            transports,
            bytes: self.bytes,
            requests: self.requests,
            json: self.json,
            remote,
            ..BenchOptions::default()
        })
    }

    /// The paths to measure against `url`: those of `transports` its scheme can carry.
    fn remote(&self, url: &str, transports: &[BenchTransport]) -> Result<RemoteServer, String> {
        let host = bench::url_host(url)
            .ok_or_else(|| format!("--server needs a URL with a host, got '{url}'"))?;
        let quic = url.starts_with("quic://");
        let mut paths = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in transports.iter().filter(|t| seen.insert(**t)) {
            let connections = match (t, quic) {
                (BenchTransport::Ws1, false) => 1,
                (BenchTransport::Ws4, false) => 4,
                #[cfg(feature = "quic")]
                (BenchTransport::Quic, true) => 4,
                _ => continue,
            };
            let args = ClientArgs {
                server: Some(url.to_string()),
                token: self.token.clone(),
                connections: Some(connections),
                transport: Some(if quic {
                    client_args::TransportChoice::Quic
                } else {
                    client_args::TransportChoice::Ws
                }),
                server_cert_sha256: self.server_cert_sha256.clone(),
                ca: self.ca.clone(),
                proxy: None,
                ..ClientArgs::default()
            };
            paths.push((t.name().to_string(), args.options()?));
        }
        if paths.is_empty() {
            return Err(if quic {
                "a quic:// server measures --transport quic only".to_string()
            } else {
                "a ws/wss/http/https server measures --transport ws or ws-striped; quic needs \
                 --server quic://HOST:PORT"
                    .to_string()
            });
        }
        Ok(RemoteServer {
            host,
            url: url.to_string(),
            paths,
        })
    }
}

/// Runs the bench and prints the report on stdout (progress goes to the log on stderr).
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let opts = args.options()?;
    let report = bench::run(&opts).await?;
    if opts.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| format!("cannot encode the report: {e}"))?;
        println!("{text}");
    } else {
        println!("{report}");
    }
    Ok(())
}
