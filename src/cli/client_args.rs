//! Flags every client command shares: which server, which token, how many carriers.

use clap::{Args, ValueEnum};

use std::path::PathBuf;
use std::time::Duration;

use underpass_transports::tls::parse_fingerprint;

use super::parse;

use crate::client::{ClientOptions, EgressProxy, HttpProxy, ServerTrust};

/// Carrier transport of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// WebSocket (default; passes through HTTP reverse proxies).
    #[default]
    Ws,
    /// QUIC (UDP), between trusted hosts.
    Quic,
}

/// Default `--ping-interval`.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Default `--pong-timeout`.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(60);

/// The server a client dials when neither `--server`, `UNDERPASS_SERVER` nor a config file
/// names one.
pub const DEFAULT_SERVER: &str = "ws://127.0.0.1:8080";

/// Connection flags of `http`, `tcp`, `pull`, `forward` and `start`: the one path from flags,
/// environment and (for `start`) the config file to [`ClientOptions`]. Every field is optional
/// so that `start` can tell a flag from a default and fall back to its file.
#[derive(Clone, Default, Args)]
pub struct ClientArgs {
    /// Server URL: ws://, wss://, http://, https:// (or quic://HOST:PORT)
    /// [default: ws://127.0.0.1:8080].
    #[arg(long, env = "UNDERPASS_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Shared token of the server (required).
    #[arg(long, env = "UNDERPASS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Parallel carriers (1 = protocol v1, more = v2 striping) [default: 4].
    #[arg(long, env = "UNDERPASS_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub connections: Option<u32>,
    /// Carrier transport (a quic:// server URL implies quic) [default: ws].
    #[arg(long, env = "UNDERPASS_TRANSPORT", value_enum)]
    pub transport: Option<TransportChoice>,
    /// wss and QUIC: trust exactly the server certificate with this SHA-256 (a QUIC server
    /// prints its own as `quic-cert-sha256: ...`); makes a self-signed certificate usable.
    #[arg(long, env = "UNDERPASS_SERVER_CERT_SHA256", value_name = "HEX")]
    pub server_cert_sha256: Option<String>,
    /// wss and QUIC: trust server certificates issued by the CA certificates in this PEM file
    /// instead of the system's trust store.
    #[arg(long, env = "UNDERPASS_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// HTTP proxy for ws/wss carriers, http://[USER:PASS@]HOST:PORT, tunnelled with CONNECT;
    /// `none` ignores HTTPS_PROXY / HTTP_PROXY [default: from those, minus NO_PROXY].
    #[arg(
        long,
        env = "UNDERPASS_PROXY",
        value_name = "URL",
        hide_env_values = true
    )]
    pub proxy: Option<String>,
    /// Seconds without receiving on a carrier before it is pinged [default: 30].
    #[arg(long, env = "UNDERPASS_PING_INTERVAL", value_name = "S", value_parser = parse::seconds)]
    pub ping_interval: Option<Duration>,
    /// Seconds to wait for the pong before a carrier is given up: carrier 0 resumes the
    /// session, another one is re-dialled [default: 60].
    #[arg(long, env = "UNDERPASS_PONG_TIMEOUT", value_name = "S", value_parser = parse::seconds)]
    pub pong_timeout: Option<Duration>,
}

impl std::fmt::Debug for ClientArgs {
    /// Written by hand so the secrets (the token, a proxy URL's password) show as `<redacted>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("server", &self.server)
            .field("connections", &self.connections)
            .field("token", &crate::redact::Redacted::of(&self.token))
            .field("transport", &self.transport)
            .field("server_cert_sha256", &self.server_cert_sha256)
            .field("ca", &self.ca)
            // A proxy URL may carry a password.
            .field("proxy", &crate::redact::Redacted::of(&self.proxy))
            .field("ping_interval", &self.ping_interval)
            .field("pong_timeout", &self.pong_timeout)
            .finish()
    }
}

impl ClientArgs {
    /// These flags, with what they leave unset taken from `fallback` (the config file of
    /// `start`).
    pub fn or(&self, fallback: ClientArgs) -> ClientArgs {
        ClientArgs {
            server: self.server.clone().or(fallback.server),
            token: self
                .token
                .clone()
                .filter(|t| !t.is_empty())
                .or(fallback.token),
            connections: self.connections.or(fallback.connections),
            transport: self.transport.or(fallback.transport),
            server_cert_sha256: self
                .server_cert_sha256
                .clone()
                .or(fallback.server_cert_sha256),
            ca: self.ca.clone().or(fallback.ca),
            proxy: self.proxy.clone().or(fallback.proxy),
            ping_interval: self.ping_interval.or(fallback.ping_interval),
            pong_timeout: self.pong_timeout.or(fallback.pong_timeout),
        }
    }

    /// The server URL to dial.
    pub fn server(&self) -> &str {
        self.server.as_deref().unwrap_or(DEFAULT_SERVER)
    }

    /// Checks the flags and builds connection options (a CA file is read now, so a bad one is
    /// reported before connecting).
    pub fn options(&self) -> Result<ClientOptions, String> {
        let token = self
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("a token is required: pass --token or set UNDERPASS_TOKEN (the server prints it as 'token: ...')")?;
        let server = self.server();
        let scheme = server.split("://").next().unwrap_or("");
        if self.is_quic() {
            if !cfg!(feature = "quic") {
                return Err(
                    "this build has no QUIC support (cargo feature 'quic'); use ws:// or wss://"
                        .into(),
                );
            }
            if !server.starts_with("quic://") {
                return Err(format!(
                    "--transport quic needs --server quic://HOST:PORT (the server's --quic-listen), got '{server}'"
                ));
            }
        } else if !matches!(scheme, "ws" | "wss" | "http" | "https") || !server.contains("://") {
            return Err(format!(
                "--server must be a ws://, wss://, http:// or https:// URL, got '{server}'"
            ));
        }
        let connections = self.connections.unwrap_or(4);
        if !(1..=16).contains(&connections) {
            return Err(format!("connections must be 1 to 16, got {connections}"));
        }
        let ping_interval = self.ping_interval.unwrap_or(DEFAULT_PING_INTERVAL);
        let pong_timeout = self.pong_timeout.unwrap_or(DEFAULT_PONG_TIMEOUT);
        if ping_interval.is_zero() || pong_timeout.is_zero() {
            return Err("--ping-interval and --pong-timeout must be more than 0 seconds".into());
        }
        let opts = ClientOptions::new(server, token)
            .connections(connections)
            .trust(self.trust()?)
            .proxy(self.egress_proxy()?)
            .keepalive(ping_interval, pong_timeout);
        opts.check().map_err(|e| e.to_string())?;
        Ok(opts)
    }

    /// `--server-cert-sha256` (wins), `--ca`, or the system's trust store.
    fn trust(&self) -> Result<ServerTrust, String> {
        let trust = match (&self.server_cert_sha256, &self.ca) {
            (Some(pin), _) => ServerTrust::PinnedSha256(
                parse_fingerprint(pin).map_err(|e| format!("--server-cert-sha256: {e}"))?,
            ),
            (None, Some(ca)) => ServerTrust::CaFile(ca.clone()),
            (None, None) if self.is_quic() => {
                // The QUIC server's default certificate is self-signed: say where its pin is.
                return Err("QUIC needs to know the server's certificate: pass \
                            --server-cert-sha256 HEX (the server prints it as \
                            'quic-cert-sha256: ...') or --ca FILE"
                    .into());
            }
            (None, None) => ServerTrust::System,
        };
        let plain = matches!(self.server().split("://").next(), Some("ws" | "http"));
        if plain && trust != ServerTrust::System {
            tracing::warn!(
                server = self.server(),
                "--ca and --server-cert-sha256 apply to wss:// and quic:// servers; this one is \
                 not encrypted"
            );
        }
        Ok(trust)
    }

    /// `--proxy URL`, `--proxy none`, or the proxy variables of the environment.
    fn egress_proxy(&self) -> Result<EgressProxy, String> {
        match self.proxy.as_deref().map(str::trim) {
            None | Some("") => Ok(EgressProxy::FromEnv),
            Some(off) if off.eq_ignore_ascii_case("none") => Ok(EgressProxy::Direct),
            Some(url) => HttpProxy::parse(url)
                .map(EgressProxy::Http)
                .map_err(|e| format!("--proxy: {e}")),
        }
    }

    /// Scheme, host and explicit port of the server URL, for printing public URLs.
    pub fn public_base(&self) -> (String, String, Option<u16>) {
        let (scheme, rest) = self
            .server()
            .split_once("://")
            .unwrap_or(("ws", self.server()));
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
        self.transport == Some(TransportChoice::Quic) || self.server().starts_with("quic://")
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
            server: Some(server.into()),
            token: Some("t".into()),
            ..ClientArgs::default()
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
        a.server = Some("ws://x".into());
        a.token = None;
        assert!(a.options().unwrap_err().contains("token"));
        let mut a = args("ws://x");
        a.pong_timeout = Some(Duration::ZERO);
        assert!(a.options().unwrap_err().contains("--pong-timeout"));
    }

    #[test]
    fn keepalive_reaches_the_options() {
        let opts = args("ws://x").options().unwrap();
        assert_eq!(opts.ping_interval, DEFAULT_PING_INTERVAL);
        assert_eq!(opts.pong_timeout, DEFAULT_PONG_TIMEOUT);
        let mut a = args("ws://x");
        a.ping_interval = Some(Duration::from_millis(500));
        a.pong_timeout = Some(Duration::from_secs(2));
        let opts = a.options().unwrap();
        assert_eq!(opts.ping_interval, Duration::from_millis(500));
        assert_eq!(opts.pong_timeout, Duration::from_secs(2));
    }
}
