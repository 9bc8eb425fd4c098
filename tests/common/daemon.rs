//! Third-party daemons the tests run in the foreground (nginx, Caddy, tinyproxy): found on the
//! system or named by their Debian package, their output kept for assertions and failure
//! messages, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::within;

/// The path of `program`, searched in PATH and the sbin directories (nginx lives in
/// /usr/sbin). A missing program fails the test with the Debian package to install: CI
/// installs them (see `.ci/run`), so a silent skip would hide a broken setup.
pub fn require_program(program: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let sbin = [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ];
    let found = path
        .split(':')
        .chain(sbin)
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file());
    match found {
        Some(found) => found,
        None => panic!(
            "{program} is not installed: this test needs the Debian package \
             '{debian_package}' (sudo apt-get install -y {debian_package}; .ci/run installs it)"
        ),
    }
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    pub name: &'static str,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr captured.
    pub fn start(name: &'static str, mut cmd: Command) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), output.clone());
        collect(child.stderr.take().unwrap(), output.clone());
        Daemon {
            name,
            child,
            output,
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until its output contains `needle`; fails with the output if it exits first.
    pub async fn wait_output(&mut self, needle: &str) {
        let name = self.name;
        within(30, async {
            loop {
                if self.output().contains(needle) {
                    return;
                }
                if let Ok(Some(status)) = self.child.try_wait() {
                    // Let the readers catch the last lines.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    panic!("{name} exited ({status}):\n{}", self.output());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Waits until something accepts TCP connections on `addr`.
    pub async fn wait_listening(&mut self, addr: std::net::SocketAddr) {
        let name = self.name;
        within(30, async {
            loop {
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return;
                }
                if let Ok(Some(status)) = self.child.try_wait() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    panic!("{name} exited ({status}):\n{}", self.output());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Stops it and waits until it is gone.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = within(30, self.child.wait()).await;
    }
}

fn collect(stream: impl AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}
