//! A real HTTP proxy (Debian's tinyproxy) for the egress-proxy tests: started in the foreground
//! on a free loopback port with a temporary config, optionally asking for Basic credentials.

use std::net::SocketAddr;

use tokio::process::Command;

use super::{require_program, unused_addr, Daemon};

/// A running tinyproxy; its log (stderr) records each CONNECT.
pub struct Tinyproxy {
    pub daemon: Daemon,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy; with `credentials` it answers 407 to requests without them.
    pub async fn start(credentials: Option<(&str, &str)>) -> Tinyproxy {
        let program = require_program("tinyproxy", "tinyproxy");
        let dir = tempfile::tempdir().unwrap();
        let addr = unused_addr();
        let mut config = format!(
            "Listen 127.0.0.1\nPort {}\nTimeout 60\nLogLevel Connect\nMaxClients 64\n",
            addr.port()
        );
        if let Some((user, pass)) = credentials {
            config.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        let path = dir.path().join("tinyproxy.conf");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(program);
        cmd.arg("-d").arg("-c").arg(&path);
        let mut daemon = Daemon::start("tinyproxy", cmd);
        daemon.wait_listening(addr).await;
        Tinyproxy {
            daemon,
            addr,
            _dir: dir,
        }
    }

    /// `http://[user:pass@]127.0.0.1:PORT`.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("http://{u}:{p}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// How many CONNECT requests to `target` it logged.
    pub fn connects_to(&self, target: SocketAddr) -> usize {
        self.daemon
            .output()
            .matches(&format!("CONNECT {target} "))
            .count()
    }
}
