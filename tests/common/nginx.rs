//! A real nginx (Debian package `nginx`) in front of an underpass server, configured with the
//! README's block: started in the foreground with a temporary prefix, config, pid file and logs,
//! on a loopback port of its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::{readme_block, require_program, substitute, Daemon};

/// nginx, and what it needs to start again on the same port.
pub struct Nginx {
    pub addr: SocketAddr,
    daemon: Option<Daemon>,
    config: PathBuf,
    dir: PathBuf,
}

impl Nginx {
    /// Writes the README's configuration for `upstream` (the server) and `listen`, with the
    /// certificate files given, into `dir`, and starts nginx.
    pub async fn start(
        dir: &Path,
        listen: SocketAddr,
        upstream: SocketAddr,
        cert: &Path,
        key: &Path,
    ) -> Nginx {
        let block = readme_block("nginx");
        let block = substitute(&block, "listen 443 ssl;", &format!("listen {listen} ssl;"));
        let block = substitute(&block, "proxy.example.com", "example.test");
        let block = substitute(
            &block,
            "/etc/ssl/underpass/fullchain.pem",
            cert.to_str().unwrap(),
        );
        let block = substitute(
            &block,
            "/etc/ssl/underpass/privkey.pem",
            key.to_str().unwrap(),
        );
        let block = substitute(&block, "127.0.0.1:8080", &upstream.to_string());
        let d = dir.display();
        // One process (no master and workers), so stopping it stops everything; everything it
        // writes stays in `dir`.
        let config = format!(
            "master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             {block}\n\
             }}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let mut nginx = Nginx {
            addr: listen,
            daemon: None,
            config: path,
            dir: dir.to_path_buf(),
        };
        nginx.run().await;
        nginx
    }

    async fn run(&mut self) {
        let program = require_program("nginx", "nginx");
        let mut cmd = Command::new(program);
        cmd.arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(&self.config)
            .arg("-g")
            .arg("daemon off;");
        let mut daemon = Daemon::start("nginx", cmd);
        daemon.wait_listening(self.addr).await;
        self.daemon = Some(daemon);
    }

    /// Stops nginx and starts it again on the same port, as `systemctl restart nginx` does.
    pub async fn restart(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
        self.run().await;
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}
