//! Flags every client command shares: which server, which token, how many carriers.

use clap::{Args, ValueEnum};

use crate::client::ClientOptions;

/// Carrier transport of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum TransportChoice {
    /// WebSocket (default; passes through HTTP reverse proxies).
    #[default]
    Ws,
    /// QUIC (UDP), between trusted hosts.
    Quic,
}

/// Connection flags of `http`, `tcp`, `pull`, `forward` and `start`.
#[derive(Clone, Args)]
pub struct ClientArgs {
    /// Server URL: ws://, wss://, http://, https:// (or quic://HOST:PORT).
    #[arg(long, env = "UNDERPASS_SERVER", default_value = "ws://127.0.0.1:8080")]
    pub server: String,
    /// Shared token of the server (required).
    #[arg(long, env = "UNDERPASS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Parallel carriers (1 = protocol v1, more = v2 striping).
    #[arg(long, env = "UNDERPASS_CONNECTIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub connections: u32,
    /// Carrier transport (a quic:// server URL implies quic).
    #[arg(long, value_enum, default_value_t = TransportChoice::Ws)]
    pub transport: TransportChoice,
    /// QUIC: trust exactly the server certificate with this SHA-256 (the server prints it as
    /// `quic-cert-sha256: ...`).
    #[arg(long, env = "UNDERPASS_SERVER_CERT_SHA256")]
    pub server_cert_sha256: Option<String>,
    /// QUIC: trust server certificates issued by the CA certificates in this PEM file.
    #[arg(long)]
    pub ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for ClientArgs {
    /// Written by hand so the secrets show as `<redacted>`; other fields are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("server", &self.server)
            .field("connections", &self.connections)
            .field("token", &crate::redact::Redacted::of(&self.token))
            .finish_non_exhaustive()
    }
}

impl ClientArgs {
    /// Checks the flags and builds connection options.
    pub fn options(&self) -> Result<ClientOptions, String> {
        let token = self
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("a token is required: pass --token or set UNDERPASS_TOKEN (the server prints it as 'token: ...')")?;
        let scheme = self.server.split("://").next().unwrap_or("");
        if self.is_quic() {
            return self.quic_options(token);
        }
        if !matches!(scheme, "ws" | "wss" | "http" | "https") || !self.server.contains("://") {
            return Err(format!(
                "--server must be a ws://, wss://, http:// or https:// URL, got '{}'",
                self.server
            ));
        }
        Ok(ClientOptions::new(self.server.clone(), token).connections(self.connections))
    }

    #[cfg(feature = "quic")]
    fn quic_options(&self, token: String) -> Result<ClientOptions, String> {
        use underpass_transports::quic::{parse_fingerprint, QuicTransport, QuicTrust};
        if !self.server.starts_with("quic://") {
            return Err(format!(
                "--transport quic needs --server quic://HOST:PORT (the server's --quic-listen), got '{}'",
                self.server
            ));
        }
        let trust =
            match (&self.server_cert_sha256, &self.ca) {
                (Some(pin), _) => QuicTrust::PinnedSha256(
                    parse_fingerprint(pin).map_err(|e| format!("--server-cert-sha256: {e}"))?,
                ),
                (None, Some(ca)) => QuicTrust::CaFile(ca.clone()),
                (None, None) => return Err(
                    "QUIC needs to know the server's certificate: pass --server-cert-sha256 HEX \
                     (the server prints it as 'quic-cert-sha256: ...') or --ca FILE"
                        .into(),
                ),
            };
        let transport = QuicTransport::new(trust).map_err(|e| e.to_string())?;
        Ok(ClientOptions::new(self.server.clone(), token)
            .connections(self.connections)
            .transport(std::sync::Arc::new(transport)))
    }

    #[cfg(not(feature = "quic"))]
    fn quic_options(&self, _token: String) -> Result<ClientOptions, String> {
        Err("this build has no QUIC support (cargo feature 'quic'); use ws:// or wss://".into())
    }

    /// Scheme, host and explicit port of the server URL, for printing public URLs.
    pub fn public_base(&self) -> (String, String, Option<u16>) {
        let (scheme, rest) = self
            .server
            .split_once("://")
            .unwrap_or(("ws", &self.server));
        let secure = matches!(scheme, "wss" | "https");
        // A quic:// URL names the UDP port, not the public HTTP one.
        let quic = scheme == "quic";
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = split_host_port(authority);
        let default = if secure { 443 } else { 80 };
        let port = port.filter(|p| *p != default && !quic);
        (
            if secure { "https" } else { "http" }.to_string(),
            host.to_string(),
            port,
        )
    }

    /// True when the carriers are QUIC.
    pub fn is_quic(&self) -> bool {
        self.transport == TransportChoice::Quic || self.server.starts_with("quic://")
    }

    /// The URL to print for a route: derived from `--server`, or over QUIC (whose URL does not
    /// name the public HTTP port) the server's own `publicUrl` when it gave one.
    pub fn printable_route_url(
        &self,
        route: &str,
        domain: Option<&str>,
        server_url: Option<&str>,
    ) -> String {
        match server_url {
            Some(url) if self.is_quic() => url.to_string(),
            _ => self.route_url(route, domain),
        }
    }

    /// The public URL of host route `route` (`@` = root) on domain `domain`.
    pub fn route_url(&self, route: &str, domain: Option<&str>) -> String {
        let (scheme, host, port) = self.public_base();
        let domain = domain.unwrap_or(&host);
        let name = if route == "@" {
            domain.to_string()
        } else {
            format!("{route}.{domain}")
        };
        match port {
            Some(p) => format!("{scheme}://{name}:{p}"),
            None => format!("{scheme}://{name}"),
        }
    }
}

fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: &str) -> ClientArgs {
        ClientArgs {
            server: server.into(),
            token: Some("t".into()),
            connections: 4,
            transport: TransportChoice::Ws,
            server_cert_sha256: None,
            ca: None,
        }
    }

    #[test]
    fn public_urls_follow_the_server_url() {
        assert_eq!(
            args("wss://proxy.example.com").route_url("demo", None),
            "https://demo.proxy.example.com"
        );
        assert_eq!(
            args("ws://127.0.0.1:8080").route_url("demo", Some("proxy.localhost")),
            "http://demo.proxy.localhost:8080"
        );
        assert_eq!(
            args("https://p.example.com:443/").route_url("@", Some("p.example.com")),
            "https://p.example.com"
        );
        assert_eq!(
            args("http://h:9000").route_url("@", Some("d.test")),
            "http://d.test:9000"
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let mut a = args("ftp://x");
        assert!(a.options().unwrap_err().contains("--server"));
        a.server = "ws://x".into();
        a.token = None;
        assert!(a.options().unwrap_err().contains("token"));
    }
}
