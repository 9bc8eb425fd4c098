//! `underpass bench`: measure the tunnel on this machine (see [`crate::bench`]).

use clap::Args;

use super::parse;
use crate::bench::{self, BenchOptions, BenchTransport};

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
#[derive(Debug, Clone, Args)]
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
}

fn bulk_bytes(s: &str) -> Result<u64, String> {
    parse::bytes(s).map(u64::from)
}

impl BenchArgs {
    fn options(&self) -> BenchOptions {
        let mut transports = Vec::new();
        for choice in &self.transports {
            match choice {
                TransportChoice::All => transports.extend_from_slice(BenchTransport::ALL),
                TransportChoice::One(t) => transports.push(*t),
            }
        }
        BenchOptions {
            transports,
            bytes: self.bytes,
            requests: self.requests,
            json: self.json,
            ..BenchOptions::default()
        }
    }
}

/// Runs the bench and prints the report on stdout (progress goes to the log on stderr).
pub async fn run(args: BenchArgs) -> Result<(), String> {
    let opts = args.options();
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
