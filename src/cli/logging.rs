//! Logs go to stderr (stdout is for the lines scripts read): human by default, JSON on request.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use super::log_text::{CachedUtcTime, PlainFields};

/// Libraries that print whole WebSocket frames, HTTP request heads or QUIC frames at debug or
/// trace level: HELLO with its token, `Authorization` headers, join nonces. They are capped
/// here, in a filter of its own, so no `RUST_LOG` directive (however specific) can lift the
/// cap and put a secret in the logs.
const CAPPED: [(&str, LevelFilter); 8] = [
    ("tungstenite", LevelFilter::INFO),
    ("tokio_tungstenite", LevelFilter::INFO),
    ("hyper", LevelFilter::INFO),
    ("hyper_util", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("rustls", LevelFilter::INFO),
    ("tokio_rustls", LevelFilter::INFO),
    ("quinn_proto", LevelFilter::DEBUG),
];

/// The cap of [`CAPPED`]; everything else passes to the user's filter.
fn library_cap() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED)
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only on a terminal: journald, `docker logs` and files get plain text (NO_COLOR
    // turns them off on a terminal too).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // The timestamp and (human) fields read as tracing-subscriber's defaults; they are only
    // written for less (a request logs a line on each side).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_timer(CachedUtcTime);
    let _ = match format {
        LogFormat::Human => builder
            .fmt_fields(PlainFields)
            .finish()
            .with(library_cap())
            .try_init(),
        LogFormat::Json => builder.json().finish().with(library_cap()).try_init(),
    };
}
