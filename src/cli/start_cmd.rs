//! `underpass start --config FILE`: every binding of a TOML file in one session.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::address_args;
use super::client_args::{ClientArgs, TransportChoice};
use super::http_cmd::ModeArg;
use super::inspect_args::{InspectArgs, InspectFile};
use super::service_target::{resolve, service_target};
use super::supervise;
use crate::client::{Binding, ClientError, ClientSession, HttpExpose, TcpExpose};
use crate::http::edge::routing::validate_route_name;
use crate::proto::RouteMode;

/// Flags of `underpass start`.
#[derive(Clone, Args)]
pub struct StartArgs {
    /// TOML file with the server, token and bindings.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Server URL (overrides the file).
    #[arg(long, env = "UNDERPASS_SERVER")]
    pub server: Option<String>,
    /// Token (overrides the file).
    #[arg(long, env = "UNDERPASS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Carriers (overrides the file).
    #[arg(long, env = "UNDERPASS_CONNECTIONS")]
    pub connections: Option<u32>,
    /// QUIC: pinned server certificate SHA-256 (for a quic:// server).
    #[arg(long, env = "UNDERPASS_SERVER_CERT_SHA256")]
    pub server_cert_sha256: Option<String>,
    /// QUIC: CA file (for a quic:// server).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    #[command(flatten)]
    /// The request inspector (overrides the file's `inspect`).
    pub inspect: InspectArgs,
}

impl std::fmt::Debug for StartArgs {
    /// Written by hand so the secrets show as `<redacted>`; other fields are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartArgs")
            .field("config", &self.config)
            .field("server", &self.server)
            .field("token", &crate::redact::Redacted::of(&self.token))
            .finish_non_exhaustive()
    }
}

/// The config file. Unknown keys are errors, reported with their line.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Server URL.
    pub server: Option<String>,
    /// Token (may come from UNDERPASS_TOKEN instead).
    pub token: Option<String>,
    /// Carriers.
    pub connections: Option<u32>,
    /// HTTP exposes.
    #[serde(default)]
    pub http: Vec<HttpEntry>,
    /// Raw TCP exposes.
    #[serde(default)]
    pub tcp: Vec<TcpEntry>,
    /// Pulls.
    #[serde(default)]
    pub pull: Vec<PullEntry>,
    /// Forwards.
    #[serde(default)]
    pub forward: Vec<ForwardEntry>,
    /// The request inspector of the http bindings: `"off"`, an address, or a table.
    pub inspect: Option<InspectFile>,
}

impl std::fmt::Debug for ConfigFile {
    /// Written by hand so the secrets show as `<redacted>`; other fields are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("server", &self.server)
            .field("connections", &self.connections)
            .field("http", &self.http)
            .field("tcp", &self.tcp)
            .field("pull", &self.pull)
            .field("forward", &self.forward)
            .field("token", &crate::redact::Redacted::of(&self.token))
            .finish_non_exhaustive()
    }
}

/// One `[[http]]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpEntry {
    /// Local port.
    pub port: u16,
    /// Another machine's service to reach instead, HOST:PORT (default 127.0.0.1:port).
    pub to: Option<String>,
    /// Route name or `@`; absent = assigned.
    pub subdomain: Option<String>,
    /// `single` or `cluster`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Claim the route.
    #[serde(default)]
    pub takeover: bool,
    /// Dedicated server port (0 = any).
    pub public_port: Option<u16>,
    /// Basic Auth username.
    pub basic_auth_username: Option<String>,
    /// Basic Auth password.
    pub basic_auth_password: Option<String>,
    /// Visitor addresses admitted (empty = everyone).
    #[serde(default)]
    pub cidr_allow: Vec<String>,
    /// Visitor addresses refused, even inside `cidr_allow`.
    #[serde(default)]
    pub cidr_deny: Vec<String>,
}

impl std::fmt::Debug for HttpEntry {
    /// Written by hand so the secrets show as `<redacted>`; other fields are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEntry")
            .field("port", &self.port)
            .field("to", &self.to)
            .field("subdomain", &self.subdomain)
            .field(
                "basic_auth_password",
                &crate::redact::Redacted::of(&self.basic_auth_password),
            )
            .finish_non_exhaustive()
    }
}

/// One `[[tcp]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpEntry {
    /// Local port.
    pub port: u16,
    /// Another machine's service to reach instead, HOST:PORT (default 127.0.0.1:port).
    pub to: Option<String>,
    /// Public server port (0 = any).
    #[serde(default)]
    pub remote_port: u16,
    /// `"v1"` or `"v2"`: open each connection to the service with a PROXY protocol header.
    #[serde(default)]
    pub proxy_protocol: Option<crate::tcp::ProxyProtocol>,
    /// Visitor addresses admitted (empty = everyone).
    #[serde(default)]
    pub cidr_allow: Vec<String>,
    /// Visitor addresses refused, even inside `cidr_allow`.
    #[serde(default)]
    pub cidr_deny: Vec<String>,
}

/// One `[[pull]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullEntry {
    /// Local port of the service.
    pub port: u16,
    /// Server loopback port (0 = any).
    #[serde(default)]
    pub remote_port: u16,
    /// Target HOST:PORT (default 127.0.0.1:port).
    pub to: Option<String>,
}

/// One `[[forward]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardEntry {
    /// Local loopback port to listen on.
    pub port: u16,
    /// Server loopback port.
    pub remote_port: u16,
}

impl ConfigFile {
    /// Parses TOML; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                text.as_bytes()[..s.start.min(text.len())]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1
            });
            match line {
                Some(l) => format!("line {l}: {}", e.message()),
                None => e.message().to_string(),
            }
        })
    }
}

fn http_spec(e: &HttpEntry) -> Result<HttpExpose, String> {
    let mode = match e.mode.as_deref().unwrap_or("single") {
        "single" => ModeArg::Single,
        "cluster" => ModeArg::Cluster,
        other => {
            return Err(format!(
                "http mode must be single or cluster, got '{other}'"
            ))
        }
    };
    let (cidr_allow, cidr_deny) = address_args::checked(&e.cidr_allow, &e.cidr_deny)?;
    Ok(HttpExpose {
        subdomain: e
            .subdomain
            .as_deref()
            .map(validate_route_name)
            .transpose()
            .map_err(|err| err.to_string())?,
        route: true,
        mode: if mode == ModeArg::Cluster {
            RouteMode::Cluster
        } else {
            RouteMode::Single
        },
        takeover: e.takeover,
        port: e.public_port,
        basic_auth_username: e.basic_auth_username.clone(),
        basic_auth_password: e.basic_auth_password.clone(),
        cidr_allow,
        cidr_deny,
        inspector: None,
    })
}

/// Where an entry's connections lead: its `to`, or `127.0.0.1:port`; resolved once at start.
async fn target(port: u16, to: Option<&str>) -> Result<(SocketAddr, String), String> {
    let text = match to {
        Some(to) => service_target(to)?,
        None => format!("127.0.0.1:{port}"),
    };
    Ok((resolve(&text).await?, text))
}

/// Runs every binding of the file until Ctrl-C.
pub async fn run(args: StartArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))?;
    let file = ConfigFile::parse(&text).map_err(|e| format!("{}: {e}", args.config.display()))?;
    let client = ClientArgs {
        server: args
            .server
            .clone()
            .or(file.server.clone())
            .unwrap_or_else(|| "ws://127.0.0.1:8080".into()),
        token: args
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or(file.token.clone()),
        connections: args
            .connections
            .or(file.connections)
            .unwrap_or(4)
            .clamp(1, 16),
        transport: TransportChoice::Ws,
        server_cert_sha256: args.server_cert_sha256.clone(),
        ca: args.ca.clone(),
    };
    let opts = client.options()?;
    let mut http = Vec::new();
    for e in &file.http {
        let (to, text) = target(e.port, e.to.as_deref()).await?;
        http.push((to, text, http_spec(e)?));
    }
    let mut tcp = Vec::new();
    for t in &file.tcp {
        let (to, text) = target(t.port, t.to.as_deref()).await?;
        let mut spec = TcpExpose::at(to).remote_port(t.remote_port);
        spec.proxy_protocol = t.proxy_protocol;
        (spec.cidr_allow, spec.cidr_deny) = address_args::checked(&t.cidr_allow, &t.cidr_deny)?;
        tcp.push((text, spec));
    }
    let mut pulls = Vec::new();
    for p in &file.pull {
        let (to, text) = target(p.port, p.to.as_deref())
            .await
            .map_err(|e| format!("pull target: {e}"))?;
        pulls.push((to, text, p.remote_port));
    }
    if http.is_empty() && tcp.is_empty() && pulls.is_empty() && file.forward.is_empty() {
        return Err(format!(
            "{}: no bindings ([[http]], [[tcp]], [[pull]] or [[forward]])",
            args.config.display()
        ));
    }
    // The inspector sees HTTP only: without [[http]] there is nothing to show.
    let inspect = match http.is_empty() {
        true => None,
        false => args.inspect.start(file.inspect.as_ref()).await?,
    };
    for (_, _, spec) in &mut http {
        spec.inspector = inspect.as_ref().map(|i| i.inspector.clone());
    }
    let inspect_line = inspect.as_ref().map(|i| i.line());
    let file = std::sync::Arc::new(file);
    supervise::run(opts, move |session: ClientSession, first| {
        let inspect_line = inspect_line.clone();
        let http = http.clone();
        let tcp = tcp.clone();
        let pulls = pulls.clone();
        let file = file.clone();
        let client = client.clone();
        async move {
            let mut out: Vec<Binding> = Vec::new();
            for (to, text, spec) in &http {
                let b = session.expose_http_at(*to, spec).await?;
                let name = b.subdomain().unwrap_or("@").to_string();
                let public = client.printable_route_url(
                    &name,
                    session.hello().domain.as_deref(),
                    b.public_url(),
                );
                if let Some(inspector) = &spec.inspector {
                    inspector.set_public_url(&name, &public);
                }
                if first {
                    println!("http {text} -> {public}");
                }
                out.push(b);
            }
            for (text, spec) in &tcp {
                let b = session.expose_tcp_with(spec).await?;
                if first {
                    println!(
                        "tcp {text} -> tcp://{}:{}",
                        client.public_base().1,
                        b.container_port()
                    );
                }
                out.push(b);
            }
            for (addr, text, remote) in &pulls {
                let b = session.pull(*addr, *remote).await?;
                if first {
                    println!("pull server 127.0.0.1:{} -> {text}", b.container_port());
                }
                out.push(b);
            }
            for f in &file.forward {
                let b = session.forward(f.port, f.remote_port).await?;
                if first {
                    let local = b.local_addr().map_or(0, |a| a.port());
                    println!(
                        "forward 127.0.0.1:{local} -> server 127.0.0.1:{}",
                        f.remote_port
                    );
                }
                out.push(b);
            }
            if let (true, Some(line)) = (first, &inspect_line) {
                println!("{line}");
            }
            Ok::<_, ClientError>(out)
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    drop(inspect);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let text = "server = \"ws://x\"\n\n[[http]]\nport = 3000\nsubdomian = \"demo\"\n";
        let err = ConfigFile::parse(text).unwrap_err();
        assert!(err.starts_with("line 5:"), "{err}");
        assert!(err.contains("subdomian"), "{err}");
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
server = "wss://proxy.example.com"
token = "t"
connections = 2
[[http]]
port = 3000
subdomain = "demo"
mode = "cluster"
[[tcp]]
port = 22
[[tcp]]
port = 25
to = "192.168.1.5:25"
proxy_protocol = "v2"
cidr_allow = ["10.0.0.0/8", "private"]
[[pull]]
port = 5432
remote_port = 15432
[[forward]]
port = 6000
remote_port = 6379
"#;
        let f = ConfigFile::parse(text).unwrap();
        assert_eq!(f.http.len(), 1);
        assert_eq!(f.tcp[0].proxy_protocol, None);
        assert_eq!(f.tcp[1].proxy_protocol, Some(crate::tcp::ProxyProtocol::V2));
        assert_eq!(f.tcp[1].to.as_deref(), Some("192.168.1.5:25"));
        assert_eq!(f.tcp[1].cidr_allow, ["10.0.0.0/8", "private"]);
        let err = ConfigFile::parse("[[tcp]]\nport = 22\nproxy_protocol = \"v3\"\n").unwrap_err();
        assert!(err.starts_with("line 3:") && err.contains("v3"), "{err}");
        assert_eq!(f.pull[0].remote_port, 15432);
        assert_eq!(f.forward[0].remote_port, 6379);
    }
}
