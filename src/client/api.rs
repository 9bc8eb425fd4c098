//! Convenience binds for each direction, and `serve(handler)`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use serde_json::Value;

use super::error::ClientError;
use super::options::ClientOptions;
use super::session::{Binding, ClientSession, StreamHandler};
use crate::http::body::ProxyBody;
use crate::http::local::{Handler, LocalPort, LocalService};
use crate::inspect::{Inspector, TunnelInfo};
use crate::proto::{BasicAuth, Bind, BindKind, BindMode, RouteMode, RouteSpec};
use crate::tcp::ProxyProtocol;

/// An HTTP expose: where it is published and who answers.
#[derive(Clone, Default)]
pub struct HttpExpose {
    /// Host route: `Some("demo")`, `Some("@")` (root), or `None` for a server-assigned name.
    /// Ignored when `route` is false.
    pub subdomain: Option<String>,
    /// Publish a host route on the main listener.
    pub route: bool,
    /// Share the route (cluster) or hold it alone (single).
    pub mode: RouteMode,
    /// Claim the route/port from its holder.
    pub takeover: bool,
    /// Also (or only) a dedicated public port: `Some(0)` = any free port in the server's range.
    pub port: Option<u16>,
    /// Basic Auth username (any username when `None`).
    pub basic_auth_username: Option<String>,
    /// Basic Auth password (no auth when `None`).
    pub basic_auth_password: Option<String>,
    /// Visitor addresses admitted (IPs, CIDR ranges, `loopback`, `private`); empty = everyone.
    pub cidr_allow: Vec<String>,
    /// Visitor addresses refused (same forms), even inside `cidr_allow`.
    pub cidr_deny: Vec<String>,
    /// Capture every exchange in this request inspector (see [`crate::inspect`]).
    pub inspector: Option<Inspector>,
}

impl std::fmt::Debug for HttpExpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExpose")
            .field("subdomain", &self.subdomain)
            .field("route", &self.route)
            .field("mode", &self.mode)
            .field("takeover", &self.takeover)
            .field("port", &self.port)
            .field("basic_auth_username", &self.basic_auth_username)
            .field(
                "basic_auth_password",
                &crate::redact::Redacted::of(&self.basic_auth_password),
            )
            .field("cidr_allow", &self.cidr_allow)
            .field("cidr_deny", &self.cidr_deny)
            .finish()
    }
}

impl HttpExpose {
    /// A host route named `subdomain` (`None` = server-assigned).
    pub fn route(subdomain: Option<String>) -> Self {
        Self {
            subdomain,
            route: true,
            ..Self::default()
        }
    }

    /// A dedicated public port (0 = any free one).
    pub fn port(port: u16) -> Self {
        Self {
            port: Some(port),
            ..Self::default()
        }
    }

    fn to_bind(&self) -> Bind {
        Bind {
            client_bind_ref: Value::Null,
            kind: BindKind::Http,
            mode: BindMode::Expose,
            container_port: self.port,
            label: None,
            takeover: self.takeover.then_some(true),
            host: None,
            route: self.route.then(|| RouteSpec {
                subdomain: self.subdomain.clone(),
                mode: self.mode,
            }),
            basic_auth: self.basic_auth_password.as_ref().map(|p| BasicAuth {
                username: self.basic_auth_username.clone(),
                password: p.clone(),
            }),
            cidr_allow: cidr_list(&self.cidr_allow),
            cidr_deny: cidr_list(&self.cidr_deny),
        }
    }
}

/// The wire form of an address list: absent when empty (a plain bind, as other clients send).
fn cidr_list(entries: &[String]) -> Option<Vec<String>> {
    (!entries.is_empty()).then(|| entries.to_vec())
}

fn tcp_bind(mode: BindMode, port: u16) -> Bind {
    Bind {
        client_bind_ref: Value::Null,
        kind: BindKind::Tcp,
        mode,
        container_port: Some(port),
        label: None,
        takeover: None,
        host: None,
        route: None,
        basic_auth: None,
        cidr_allow: None,
        cidr_deny: None,
    }
}

/// A tcp expose: the service connections lead to, the public server port, and whether each
/// connection starts with a PROXY protocol header naming the visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpExpose {
    /// The service: `127.0.0.1:port`, or another machine the client reaches.
    pub to: SocketAddr,
    /// Public server port (0 = any free port in the server's expose range).
    pub remote_port: u16,
    /// Open each connection with this PROXY protocol header (for services that log or filter by
    /// client address); `None`: the visitor's bytes only.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Visitor addresses admitted (IPs, CIDR ranges, `loopback`, `private`); empty = everyone.
    pub cidr_allow: Vec<String>,
    /// Visitor addresses refused (same forms), even inside `cidr_allow`.
    pub cidr_deny: Vec<String>,
}

impl TcpExpose {
    /// `127.0.0.1:port`, any free server port, no header.
    pub fn local(port: u16) -> Self {
        Self::at(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The service at `to`, any free server port, no header.
    pub fn at(to: SocketAddr) -> Self {
        Self {
            to,
            remote_port: 0,
            proxy_protocol: None,
            cidr_allow: Vec::new(),
            cidr_deny: Vec::new(),
        }
    }

    /// Asks for server port `port` (0 = any free).
    pub fn remote_port(mut self, port: u16) -> Self {
        self.remote_port = port;
        self
    }

    /// Starts each connection with a PROXY protocol header of `version`.
    pub fn proxy_protocol(mut self, version: ProxyProtocol) -> Self {
        self.proxy_protocol = Some(version);
        self
    }
}

impl ClientSession {
    /// Publishes the local HTTP service on `127.0.0.1:local_port`.
    pub async fn expose_http(
        &self,
        local_port: u16,
        spec: &HttpExpose,
    ) -> Result<Binding, ClientError> {
        self.expose_http_at(SocketAddr::from(([127, 0, 0, 1], local_port)), spec)
            .await
    }

    /// Publishes the HTTP service at `to`: on this machine, or another one the client reaches
    /// (a NAS, a printer's web page), as `ngrok http 192.168.1.5:80` does.
    pub async fn expose_http_at(
        &self,
        to: SocketAddr,
        spec: &HttpExpose,
    ) -> Result<Binding, ClientError> {
        let service = LocalService::Port(LocalPort::at(to));
        self.bind_http(spec, service, format!("http://{to}")).await
    }

    /// Binds an http expose answered by `service`, registered with the spec's inspector.
    async fn bind_http(
        &self,
        spec: &HttpExpose,
        service: LocalService,
        addr: String,
    ) -> Result<Binding, ClientError> {
        let binding = self
            .bind(spec.to_bind(), StreamHandler::Http(service.clone()))
            .await?;
        if let Some(inspector) = &spec.inspector {
            let name = match (binding.subdomain(), binding.container_port()) {
                (Some(route), _) => route.to_string(),
                (None, 0) => "@".to_string(),
                (None, port) => format!("port-{port}"),
            };
            let info = TunnelInfo {
                name,
                public_url: binding.public_url().unwrap_or_default().to_string(),
                addr,
            };
            self.set_tap(&binding, Arc::new(inspector.attach(info, service)));
        }
        Ok(binding)
    }

    /// Publishes an in-process handler: requests reach it with no local socket.
    pub async fn expose_handler<F, Fut>(
        &self,
        spec: &HttpExpose,
        handler: F,
    ) -> Result<Binding, ClientError>
    where
        F: Fn(Request<ProxyBody>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        self.bind_http(spec, LocalService::Handler(handler), "handler".into())
            .await
    }

    /// Publishes raw TCP `127.0.0.1:local_port` on server port `remote_port` (0 = any free).
    pub async fn expose_tcp(
        &self,
        local_port: u16,
        remote_port: u16,
    ) -> Result<Binding, ClientError> {
        self.expose_tcp_with(&TcpExpose::local(local_port).remote_port(remote_port))
            .await
    }

    /// Publishes raw TCP as `spec` says: which service, which server port, which header.
    pub async fn expose_tcp_with(&self, spec: &TcpExpose) -> Result<Binding, ClientError> {
        let handler = match spec.proxy_protocol {
            Some(version) => StreamHandler::ProxiedTcp {
                to: spec.to,
                version,
            },
            None => StreamHandler::Tcp(spec.to),
        };
        let mut bind = tcp_bind(BindMode::Expose, spec.remote_port);
        bind.cidr_allow = cidr_list(&spec.cidr_allow);
        bind.cidr_deny = cidr_list(&spec.cidr_deny);
        self.bind(bind, handler).await
    }

    /// Server loopback port `remote_port` (0 = kernel-assigned) leads to `to` on this side.
    pub async fn pull(&self, to: SocketAddr, remote_port: u16) -> Result<Binding, ClientError> {
        self.bind(
            tcp_bind(BindMode::Pull, remote_port),
            StreamHandler::Tcp(to),
        )
        .await
    }

    /// Client loopback port `local_port` (0 = any) leads to server loopback port `remote_port`.
    pub async fn forward(&self, local_port: u16, remote_port: u16) -> Result<Binding, ClientError> {
        self.bind_with_local_port(
            tcp_bind(BindMode::Forward, remote_port),
            StreamHandler::Forward,
            local_port,
        )
        .await
    }
}

/// Connects and serves `handler` on a host route (or a dedicated port, per `spec`). The session
/// and binding live as long as the returned pair.
pub async fn serve<F, Fut>(
    opts: &ClientOptions,
    spec: &HttpExpose,
    handler: F,
) -> Result<(ClientSession, Binding), ClientError>
where
    F: Fn(Request<ProxyBody>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let session = ClientSession::connect(opts).await?;
    let binding = session.expose_handler(spec, handler).await?;
    Ok((session, binding))
}
