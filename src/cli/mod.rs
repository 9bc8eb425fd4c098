//! The command line: one file per subcommand, flags > `UNDERPASS_*` env > config file > defaults.

mod address_args;
mod admin_cmd;
mod admin_table;
mod bench_cmd;
mod client_args;
mod completions_cmd;
mod demo;
mod demo_app;
mod http_cmd;
mod inspect_args;
mod log_text;
mod logging;
mod man_cmd;
mod parse;
mod server_cmd;
mod service_target;
mod skill_cmd;
mod start_cmd;
mod supervise;
mod tcp_cmd;
mod token_cmd;

use clap::{Parser, Subcommand};

pub use logging::LogFormat;

/// underpass: a reverse tunnel to a public server you control.
#[derive(Debug, Parser)]
#[command(name = "underpass", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Worker threads of this process [default: half the CPUs, at least 1; demo and bench:
    /// every CPU].
    #[arg(long, global = true, env = "UNDERPASS_THREADS", value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the largest variant (the server's flags) costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the public server.
    Server(server_cmd::ServerArgs),
    /// Publish a local HTTP service (HTTP, SSE, WebSocket) on a host route.
    Http(http_cmd::HttpArgs),
    /// Publish a local TCP port on a public server port.
    Tcp(tcp_cmd::TcpArgs),
    /// Make a service on this side reachable from the server's loopback.
    Pull(tcp_cmd::PullArgs),
    /// Make a service on the server's loopback reachable from this side's loopback.
    Forward(tcp_cmd::ForwardArgs),
    /// Open every binding of a TOML config file in one session.
    Start(start_cmd::StartArgs),
    /// Server, client and a small app in one process: open the printed URL.
    Demo(demo::DemoArgs),
    /// Measure throughput, request rate, latency and CPU cost of the tunnel on this machine.
    Bench(bench_cmd::BenchArgs),
    /// Write a short reference for coding agents (`skill install DIR`); contacts nothing.
    Skill(skill_cmd::SkillArgs),
    /// Ask a running server's admin API: health, metrics, sessions, bindings, kill a session,
    /// reload the clients file.
    Admin(admin_cmd::AdminArgs),
    /// Make a client token for the server's clients file (`token new`); contacts nothing.
    Token(token_cmd::TokenArgs),
    /// Print a shell completion script: bash, zsh, fish, powershell or elvish.
    Completions(completions_cmd::CompletionsArgs),
    /// Print the manual page (roff), or write one per subcommand with --dir.
    Man(man_cmd::ManArgs),
}

/// Empty `UNDERPASS_*` variables count as unset (call before starting threads), so `UNDERPASS_TOKEN=` does not shadow a
/// default or fail validation.
pub fn drop_empty_env() {
    let empty: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            (k.starts_with("UNDERPASS_") && v.is_empty()).then_some(k)
        })
        .collect();
    for k in empty {
        std::env::remove_var(k);
    }
}

impl Cli {
    /// Parses the command line (exits with clap's message on a bad one). Call
    /// [`drop_empty_env`] first, before any thread exists.
    pub fn from_args() -> Self {
        Cli::parse()
    }

    /// Worker threads for this process's runtime: `--threads`, else half the CPUs (at least
    /// one), or every CPU for the commands that run both ends of a tunnel in one process.
    ///
    /// Why half: a tunnel process is one of several busy ones on a request's path (the other
    /// end, a TLS proxy in front, the service behind), and much of its work is the kernel's
    /// socket work done in its own threads. A second worker that the machine cannot run at the
    /// same moment costs wake-ups and context switches instead of adding throughput: on 2
    /// CPUs, one worker per process cut CPU per keep-alive request through a TCP tunnel from
    /// 26.0 to 22.4 µs and context switches from 0.48 to 0.19 per request (docs/benchmarks.md).
    pub fn worker_threads(&self) -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        match (self.threads, &self.command) {
            (Some(n), _) => n.get(),
            (None, Command::Demo(_) | Command::Bench(_)) => cpus,
            (None, _) => (cpus / 2).max(1),
        }
    }
}

/// Runs the parsed command line. The error is the one line printed before exiting 1.
pub async fn main(cli: Cli) -> Result<(), String> {
    // Per-request log lines would measure the logger, not the tunnel.
    let level = if matches!(cli.command, Command::Bench(_)) {
        "warn"
    } else {
        "info"
    };
    logging::init(cli.log_format, level);
    match cli.command {
        Command::Server(a) => server_cmd::run(a).await,
        Command::Http(a) => http_cmd::run(a).await,
        Command::Tcp(a) => tcp_cmd::run_tcp(a).await,
        Command::Pull(a) => tcp_cmd::run_pull(a).await,
        Command::Forward(a) => tcp_cmd::run_forward(a).await,
        Command::Start(a) => start_cmd::run(a).await,
        Command::Demo(a) => demo::run(a).await,
        Command::Bench(a) => bench_cmd::run(a).await,
        Command::Skill(a) => skill_cmd::run(a),
        Command::Admin(a) => admin_cmd::run(a).await,
        Command::Token(a) => token_cmd::run(a),
        Command::Completions(a) => completions_cmd::run(a),
        Command::Man(a) => man_cmd::run(a),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    /// clap's own consistency checks (conflicting names, bad `requires`, ...) over every
    /// subcommand; they run only when asked.
    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--allow-forward` once panicked at start-up: its parser returned a list where clap's
    /// derive expected one value per occurrence.
    #[test]
    fn allow_forward_takes_a_list_and_repeats() {
        let cli = Cli::try_parse_from([
            "underpass",
            "server",
            "--allow-forward",
            "5432,8000-8100",
            "--allow-forward",
            "6379",
        ])
        .unwrap();
        let Command::Server(args) = cli.command else {
            panic!("not the server command");
        };
        assert_eq!(
            args.allow_forward,
            vec![5432..=5432, 8000..=8100, 6379..=6379]
        );
    }
}
