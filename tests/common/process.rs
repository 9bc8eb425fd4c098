//! The real `underpass` binary as a user runs it: spawn it with flags and environment variables,
//! read the lines it prints on stdout, expect a clean failure with a message on stderr.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::within;

/// Path of the binary under test (built by cargo for integration tests).
pub const BIN: &str = env!("CARGO_BIN_EXE_underpass");

/// A running `underpass` process; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub lines: Lines<BufReader<ChildStdout>>,
}

pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut child = command(args, env).spawn().expect("underpass binary runs");
    let stdout = child.stdout.take().unwrap();
    Proc {
        child,
        lines: BufReader::new(stdout).lines(),
    }
}

impl Proc {
    /// Next stdout line starting with `prefix`, returning the rest.
    pub async fn expect_line(&mut self, prefix: &str) -> String {
        within(20, async {
            loop {
                match self.lines.next_line().await.unwrap() {
                    Some(line) if line.starts_with(prefix) => {
                        return line[prefix.len()..].trim().to_string()
                    }
                    Some(_) => continue,
                    None => {
                        let mut err = String::new();
                        if let Some(mut e) = self.child.stderr.take() {
                            let _ = e.read_to_string(&mut err).await;
                        }
                        panic!("process ended before printing '{prefix}'; stderr:\n{err}");
                    }
                }
            }
        })
        .await
    }

    /// The server's address, from the `control: ws://ADDR/__underpass__/control` line.
    pub async fn expect_control(&mut self) -> SocketAddr {
        let control = self.expect_line("control: ws://").await;
        control
            .trim_end_matches("/__underpass__/control")
            .parse()
            .unwrap()
    }
}

/// Runs a command that must fail quickly; returns its stderr.
pub async fn run_failing(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = within(20, command(args, env).output()).await.unwrap();
    assert!(!out.status.success(), "expected failure: {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A started `underpass server` and the address it printed.
pub async fn server_process(extra: &[&str], env: &[(&str, &str)]) -> (Proc, SocketAddr) {
    let mut args = vec!["server", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut p = spawn(&args, env);
    let addr = p.expect_control().await;
    (p, addr)
}
