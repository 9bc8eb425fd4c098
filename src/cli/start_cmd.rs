//! `underpass start --config FILE`: every binding of a TOML file in one session.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// Connection flags; each overrides the file's key of the same name.
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    /// The request inspector (overrides the file's `inspect`).
    pub inspect: InspectArgs,
}

impl std::fmt::Debug for StartArgs {
    /// Written by hand so the secrets show as `<redacted>` (see `ClientArgs`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartArgs")
            .field("config", &self.config)
            .field("client", &self.client)
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
    /// `ws` or `quic`.
    pub transport: Option<TransportChoice>,
    /// wss and QUIC: the pinned SHA-256 of the server's certificate.
    pub server_cert_sha256: Option<String>,
    /// wss and QUIC: a PEM file of CA certificates (relative to the config file's directory).
    pub ca: Option<PathBuf>,
    /// HTTP proxy for ws/wss carriers, or `none`.
    pub proxy: Option<String>,
    /// Seconds without receiving on a carrier before it is pinged.
    #[serde(default, deserialize_with = "seconds")]
    pub ping_interval: Option<Duration>,
    /// Seconds to wait for the pong before a carrier is given up.
    #[serde(default, deserialize_with = "seconds")]
    pub pong_timeout: Option<Duration>,
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
            .field("transport", &self.transport)
            .field("server_cert_sha256", &self.server_cert_sha256)
            .field("ca", &self.ca)
            // A proxy URL may carry a password.
            .field("proxy", &crate::redact::Redacted::of(&self.proxy))
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
    /// The file's connection keys, as the fallback of the flags; a relative `ca` is taken from
    /// the file's directory `dir`.
    pub fn client(&self, dir: &Path) -> ClientArgs {
        ClientArgs {
            server: self.server.clone(),
            token: self.token.clone(),
            connections: self.connections,
            transport: self.transport,
            server_cert_sha256: self.server_cert_sha256.clone(),
            ca: self.ca.as_ref().map(|ca| dir.join(ca)),
            proxy: self.proxy.clone(),
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
        }
    }

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

/// A number of seconds in the file (`1`, `0.5`), checked like the flags.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let secs = f64::deserialize(d)?;
    super::parse::seconds(&secs.to_string())
        .map(Some)
        .map_err(serde::de::Error::custom)
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

/// What `start` binds on every session; a reconnect asks again for what the server gave the
/// first time (an assigned route name, the ports it picked).
#[derive(Clone, Default)]
struct Plan {
    http: Vec<(SocketAddr, String, HttpExpose)>,
    tcp: Vec<(String, TcpExpose)>,
    /// Where, what to print, server port.
    pulls: Vec<(SocketAddr, String, u16)>,
    /// Local port, server port.
    forwards: Vec<(u16, u16)>,
}

impl Plan {
    async fn from_file(file: &ConfigFile) -> Result<Plan, String> {
        let mut plan = Plan::default();
        for e in &file.http {
            let (to, text) = target(e.port, e.to.as_deref()).await?;
            plan.http.push((to, text, http_spec(e)?));
        }
        for t in &file.tcp {
            let (to, text) = target(t.port, t.to.as_deref()).await?;
            let mut spec = TcpExpose::at(to).remote_port(t.remote_port);
            spec.proxy_protocol = t.proxy_protocol;
            (spec.cidr_allow, spec.cidr_deny) = address_args::checked(&t.cidr_allow, &t.cidr_deny)?;
            plan.tcp.push((text, spec));
        }
        for p in &file.pull {
            let (to, text) = target(p.port, p.to.as_deref())
                .await
                .map_err(|e| format!("pull target: {e}"))?;
            plan.pulls.push((to, text, p.remote_port));
        }
        plan.forwards = file
            .forward
            .iter()
            .map(|f| (f.port, f.remote_port))
            .collect();
        Ok(plan)
    }

    fn is_empty(&self) -> bool {
        self.http.is_empty()
            && self.tcp.is_empty()
            && self.pulls.is_empty()
            && self.forwards.is_empty()
    }

    /// Binds everything on `session`; the plan then holds what the server gave.
    async fn bind(
        &mut self,
        session: &ClientSession,
        client: &ClientArgs,
        first: bool,
    ) -> Result<Vec<Binding>, ClientError> {
        let mut out: Vec<Binding> = Vec::new();
        for (to, text, spec) in &mut self.http {
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
            spec.subdomain = Some(name);
            out.push(b);
        }
        for (text, spec) in &mut self.tcp {
            let b = session.expose_tcp_with(spec).await?;
            if first {
                println!(
                    "tcp {text} -> tcp://{}:{}",
                    client.public_base().1,
                    b.container_port()
                );
            }
            spec.remote_port = b.container_port();
            out.push(b);
        }
        for (addr, text, remote) in &mut self.pulls {
            let b = session.pull(*addr, *remote).await?;
            if first {
                println!("pull server 127.0.0.1:{} -> {text}", b.container_port());
            }
            *remote = b.container_port();
            out.push(b);
        }
        for (local, remote) in &mut self.forwards {
            let b = session.forward(*local, *remote).await?;
            let port = b.local_addr().map_or(0, |a| a.port());
            if first {
                println!("forward 127.0.0.1:{port} -> server 127.0.0.1:{remote}");
            }
            *local = port;
            out.push(b);
        }
        Ok(out)
    }
}

/// Runs every binding of the file until Ctrl-C.
pub async fn run(args: StartArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))?;
    let file = ConfigFile::parse(&text).map_err(|e| format!("{}: {e}", args.config.display()))?;
    let dir = args.config.parent().unwrap_or(Path::new("."));
    let client = args.client.or(file.client(dir));
    let opts = client.options()?;
    let mut plan = Plan::from_file(&file).await?;
    if plan.is_empty() {
        return Err(format!(
            "{}: no bindings ([[http]], [[tcp]], [[pull]] or [[forward]])",
            args.config.display()
        ));
    }
    // The inspector sees HTTP only: without [[http]] there is nothing to show.
    let inspect = match plan.http.is_empty() {
        true => None,
        false => args.inspect.start(file.inspect.as_ref()).await?,
    };
    for (_, _, spec) in &mut plan.http {
        spec.inspector = inspect.as_ref().map(|i| i.inspector.clone());
    }
    let inspect_line = inspect.as_ref().map(|i| i.line());
    let plan = Arc::new(Mutex::new(plan));
    supervise::run(opts, move |session: ClientSession, first| {
        let plan = plan.clone();
        let client = client.clone();
        let inspect_line = inspect_line.clone();
        async move {
            // Bound on a copy: the lock is not held across the binds.
            let mut next = plan.lock().map(|p| p.clone()).unwrap_or_default();
            let bindings = next.bind(&session, &client, first).await?;
            if let Ok(mut p) = plan.lock() {
                *p = next;
            }
            if let (true, Some(line)) = (first, &inspect_line) {
                println!("{line}");
            }
            Ok::<_, ClientError>(bindings)
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
    fn keepalive_keys_are_seconds_checked_like_the_flags() {
        let file = ConfigFile::parse("ping_interval = 0.5\npong_timeout = 3\n").unwrap();
        let client = file.client(Path::new("."));
        assert_eq!(client.ping_interval, Some(Duration::from_millis(500)));
        assert_eq!(client.pong_timeout, Some(Duration::from_secs(3)));
        let err = ConfigFile::parse("server = \"ws://x\"\nping_interval = -1\n").unwrap_err();
        assert!(
            err.starts_with("line 2:") && err.contains("out of range"),
            "{err}"
        );
        // The flag wins over the file.
        let flags = ClientArgs {
            pong_timeout: Some(Duration::from_secs(9)),
            ..ClientArgs::default()
        };
        assert_eq!(flags.or(client).pong_timeout, Some(Duration::from_secs(9)));
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
