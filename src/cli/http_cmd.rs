//! `underpass http <port|host:port>`: publish an HTTP service of this side.

use std::sync::{Arc, Mutex};

use clap::{Args, ValueEnum};

use super::address_args::AddressArgs;
use super::client_args::ClientArgs;
use super::inspect_args::InspectArgs;
use super::supervise;
use crate::client::{ClientError, HttpExpose};
use crate::http::edge::routing::validate_route_name;
use crate::proto::RouteMode;

/// Route sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ModeArg {
    /// One client per route.
    #[default]
    Single,
    /// Clients share the route, round robin.
    Cluster,
}

/// Flags of `underpass http`.
#[derive(Clone, Args)]
pub struct HttpArgs {
    /// The HTTP service: a port on 127.0.0.1, or HOST:PORT of another machine this side
    /// reaches (a NAS, a router's page).
    #[arg(value_name = "PORT|HOST:PORT", value_parser = super::service_target::service_target)]
    pub target: String,
    /// Route name (a DNS label), or @ for the root domain; default: a server-assigned up-xxxxxxxxxx.
    #[arg(long, env = "UNDERPASS_SUBDOMAIN")]
    pub subdomain: Option<String>,
    /// single: refuse a second client; cluster: share the route round robin.
    #[arg(long, env = "UNDERPASS_MODE", value_enum, default_value_t = ModeArg::Single)]
    pub mode: ModeArg,
    /// Claim the route from its current holder.
    #[arg(long)]
    pub takeover: bool,
    /// Also serve on a dedicated server port (0 = any free port in the server's range).
    #[arg(long, value_parser = super::parse::port_or_zero)]
    pub port: Option<u16>,
    /// Basic Auth username (any username when unset).
    #[arg(long, env = "UNDERPASS_BASIC_AUTH_USERNAME")]
    pub basic_auth_username: Option<String>,
    /// Basic Auth password; enables Basic Auth.
    #[arg(long, env = "UNDERPASS_BASIC_AUTH_PASSWORD", hide_env_values = true)]
    pub basic_auth_password: Option<String>,
    #[command(flatten)]
    /// Which visitor addresses are admitted.
    pub addresses: AddressArgs,
    #[command(flatten)]
    /// Connection flags.
    pub client: ClientArgs,
    #[command(flatten)]
    /// The request inspector.
    pub inspect: InspectArgs,
}

impl std::fmt::Debug for HttpArgs {
    /// Written by hand so the secrets show as `<redacted>`; other fields are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpArgs")
            .field("target", &self.target)
            .field("subdomain", &self.subdomain)
            .field(
                "basic_auth_password",
                &crate::redact::Redacted::of(&self.basic_auth_password),
            )
            .finish_non_exhaustive()
    }
}

impl HttpArgs {
    /// The expose request these flags describe (validated before any connection).
    pub fn expose(&self) -> Result<HttpExpose, String> {
        let subdomain = match self.subdomain.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(validate_route_name(s).map_err(|e| e.to_string())?),
            None => None,
        };
        let password = self.basic_auth_password.clone().filter(|p| !p.is_empty());
        if password.is_none()
            && self
                .basic_auth_username
                .as_deref()
                .is_some_and(|u| !u.is_empty())
        {
            return Err("--basic-auth-username needs --basic-auth-password".into());
        }
        let (cidr_allow, cidr_deny) = self.addresses.checked()?;
        Ok(HttpExpose {
            subdomain,
            route: true,
            mode: match self.mode {
                ModeArg::Single => RouteMode::Single,
                ModeArg::Cluster => RouteMode::Cluster,
            },
            takeover: self.takeover,
            port: self.port,
            basic_auth_username: self.basic_auth_username.clone().filter(|u| !u.is_empty()),
            basic_auth_password: password,
            cidr_allow,
            cidr_deny,
            inspector: None,
        })
    }
}

/// Runs until Ctrl-C; reconnects keep the route (an assigned name is reused).
pub async fn run(args: HttpArgs) -> Result<(), String> {
    let mut spec = args.expose()?;
    let opts = args.client.options()?;
    let inspect = args.inspect.start(None).await?;
    spec.inspector = inspect.as_ref().map(|i| i.inspector.clone());
    let inspect_line = inspect.as_ref().map(|i| i.line());
    let spec = Arc::new(Mutex::new(spec));
    let client = args.client.clone();
    let to = super::service_target::resolve(&args.target).await?;
    supervise::run(opts, move |session, first| {
        let spec = spec.clone();
        let client = client.clone();
        let inspect_line = inspect_line.clone();
        async move {
            let request = spec.lock().map(|s| s.clone()).unwrap_or_default();
            let binding = session.expose_http_at(to, &request).await?;
            let name = binding.subdomain().unwrap_or("@").to_string();
            let public = client.printable_route_url(
                &name,
                session.hello().domain.as_deref(),
                binding.public_url(),
            );
            // Keep an assigned name for the life of the process.
            if let Ok(mut s) = spec.lock() {
                s.subdomain = Some(name.clone());
                if let Some(inspector) = &s.inspector {
                    inspector.set_public_url(&name, &public);
                }
            }
            if first {
                if name == "@" {
                    println!("route: root domain");
                } else {
                    println!("subdomain: {name}");
                }
                println!("public: {public}");
                if binding.container_port() != 0 {
                    if let Some(url) = binding.public_url() {
                        println!("port: {url}");
                    }
                }
                if let Some(line) = &inspect_line {
                    println!("{line}");
                }
                tracing::info!(local = %to, "forwarding");
            }
            Ok::<_, ClientError>(vec![binding])
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    drop(inspect);
    Ok(())
}
