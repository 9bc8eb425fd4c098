//! A real Caddy (Debian package `caddy`) in front of an underpass server, configured with the
//! README's block: `caddy run` in the foreground with a temporary Caddyfile, no admin endpoint,
//! no HTTP-to-HTTPS redirect listener, and HOME, XDG directories and storage in a temporary
//! directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::{readme_block, require_program, substitute, unused_addr, Daemon};

/// How Caddy gets its certificate.
pub enum CaddyTls<'a> {
    /// Files the test made.
    Files { cert: &'a Path, key: &'a Path },
    /// `tls internal`: Caddy's own CA, whose root lands in the storage directory.
    Internal,
}

/// Caddy, and what it needs to start again on the same port.
pub struct Caddy {
    pub addr: SocketAddr,
    daemon: Option<Daemon>,
    config: PathBuf,
    dir: PathBuf,
}

impl Caddy {
    /// Writes the README's Caddyfile block for `upstream` (the server), listening on `listen`
    /// for `example.test`, `*.example.test` and `127.0.0.1` (the address the test's client
    /// dials, since the test has no DNS), and starts Caddy.
    pub async fn start(
        dir: &Path,
        listen: SocketAddr,
        upstream: SocketAddr,
        tls: CaddyTls<'_>,
    ) -> Caddy {
        let block = readme_block("caddyfile");
        let port = listen.port();
        let block = substitute(
            &block,
            "proxy.example.com, *.proxy.example.com {",
            &format!(
                "https://example.test:{port}, https://*.example.test:{port}, https://127.0.0.1:{port} {{"
            ),
        );
        let tls_line = match tls {
            CaddyTls::Files { cert, key } => {
                format!("tls {} {}", cert.display(), key.display())
            }
            CaddyTls::Internal => "tls internal".to_string(),
        };
        let block = substitute(
            &block,
            "tls /etc/ssl/underpass/fullchain.pem /etc/ssl/underpass/privkey.pem",
            &tls_line,
        );
        let block = substitute(&block, "127.0.0.1:8080", &upstream.to_string());
        let d = dir.display();
        let config = format!(
            "{{\n\
             \tadmin off\n\
             \tauto_https disable_redirects\n\
             \tskip_install_trust\n\
             \thttp_port {}\n\
             \thttps_port {port}\n\
             \tstorage file_system {d}/storage\n\
             }}\n\n{block}",
            unused_addr().port()
        );
        let path = dir.join("Caddyfile");
        std::fs::write(&path, config).unwrap();
        let mut caddy = Caddy {
            addr: listen,
            daemon: None,
            config: path,
            dir: dir.to_path_buf(),
        };
        caddy.run().await;
        caddy
    }

    async fn run(&mut self) {
        let program = require_program("caddy", "caddy");
        let mut cmd = Command::new(program);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--adapter")
            .arg("caddyfile")
            .env("HOME", &self.dir)
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"));
        let mut daemon = Daemon::start("caddy", cmd);
        daemon.wait_listening(self.addr).await;
        self.daemon = Some(daemon);
    }

    /// The root certificate of Caddy's own CA (`tls internal`), once Caddy has made it.
    pub fn internal_root(&self) -> PathBuf {
        self.dir.join("storage/pki/authorities/local/root.crt")
    }

    /// Stops Caddy and starts it again on the same port.
    pub async fn restart(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
        self.run().await;
    }

    /// What Caddy logged, for failure messages.
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(|d| d.output()).unwrap_or_default()
    }
}
