//! `underpass tcp`, `pull` and `forward`: raw TCP in each direction.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use clap::Args;

use super::address_args::AddressArgs;
use super::client_args::ClientArgs;
use super::supervise;
use crate::client::{ClientError, TcpExpose};
use crate::tcp::ProxyProtocol;

/// Flags of `underpass tcp`.
#[derive(Debug, Clone, Args)]
pub struct TcpArgs {
    /// The TCP service: a port on 127.0.0.1, or HOST:PORT of another machine this side reaches.
    #[arg(value_name = "PORT|HOST:PORT", value_parser = super::service_target::service_target)]
    pub target: String,
    /// Public server port (0 or absent = any free port in the server's range).
    #[arg(long, value_parser = super::parse::port_or_zero)]
    pub port: Option<u16>,
    /// Start each connection to the local service with a PROXY protocol header (v1 or v2)
    /// naming the visitor, for services that log or filter by client address.
    #[arg(long, value_name = "VERSION")]
    pub proxy_protocol: Option<ProxyProtocol>,
    #[command(flatten)]
    /// Which visitor addresses are admitted.
    pub addresses: AddressArgs,
    #[command(flatten)]
    /// Connection flags.
    pub client: ClientArgs,
}

/// Flags of `underpass pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Local port of the service the server side should reach (127.0.0.1:PORT unless --to).
    #[arg(value_parser = super::parse::port)]
    pub local_port: u16,
    /// Server loopback port to listen on (0 or absent = any free port).
    #[arg(long, value_parser = super::parse::port_or_zero)]
    pub remote_port: Option<u16>,
    /// Where connections lead on this side, HOST:PORT (default 127.0.0.1:<port>).
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    /// Connection flags.
    pub client: ClientArgs,
}

/// Flags of `underpass forward`.
#[derive(Debug, Clone, Args)]
pub struct ForwardArgs {
    /// Loopback port to listen on here (0 = any free port).
    #[arg(value_parser = super::parse::port_or_zero)]
    pub local_port: u16,
    /// Server loopback port connections lead to (default: the same number).
    #[arg(long, value_parser = super::parse::port)]
    pub remote_port: Option<u16>,
    #[command(flatten)]
    /// Connection flags.
    pub client: ClientArgs,
}

fn server_host(client: &ClientArgs) -> String {
    client.public_base().1
}

/// The port a binding got, so a reconnect asks for the same one again.
fn remembered(initial: u16) -> Arc<AtomicU16> {
    Arc::new(AtomicU16::new(initial))
}

/// Runs `tcp` until Ctrl-C.
pub async fn run_tcp(args: TcpArgs) -> Result<(), String> {
    let opts = args.client.options()?;
    let host = server_host(&args.client);
    let remote = remembered(args.port.unwrap_or(0));
    let (cidr_allow, cidr_deny) = args.addresses.checked()?;
    let to = super::service_target::resolve(&args.target).await?;
    let proxy_protocol = args.proxy_protocol;
    supervise::run(opts, move |session, first| {
        let host = host.clone();
        let remote = remote.clone();
        let cidr_allow = cidr_allow.clone();
        let cidr_deny = cidr_deny.clone();
        async move {
            let mut spec = TcpExpose::at(to).remote_port(remote.load(Ordering::Relaxed));
            spec.proxy_protocol = proxy_protocol;
            spec.cidr_allow = cidr_allow;
            spec.cidr_deny = cidr_deny;
            let b = session.expose_tcp_with(&spec).await?;
            remote.store(b.container_port(), Ordering::Relaxed);
            if first {
                println!("public: tcp://{host}:{}", b.container_port());
                println!("local: {to}");
            }
            Ok::<_, ClientError>(vec![b])
        }
    })
    .await
    .map_err(|e| e.to_string())
}

/// Runs `pull` until Ctrl-C.
pub async fn run_pull(args: PullArgs) -> Result<(), String> {
    let opts = args.client.options()?;
    let to_text = args
        .to
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{}", args.local_port));
    let to: SocketAddr = super::service_target::resolve(&to_text)
        .await
        .map_err(|e| format!("--to: {e}"))?;
    let remote = remembered(args.remote_port.unwrap_or(0));
    supervise::run(opts, move |session, first| {
        let remote = remote.clone();
        let to_text = to_text.clone();
        async move {
            let b = session.pull(to, remote.load(Ordering::Relaxed)).await?;
            remote.store(b.container_port(), Ordering::Relaxed);
            if first {
                println!("server: 127.0.0.1:{}", b.container_port());
                println!("leads to: {to_text}");
            }
            Ok::<_, ClientError>(vec![b])
        }
    })
    .await
    .map_err(|e| e.to_string())
}

/// Runs `forward` until Ctrl-C.
pub async fn run_forward(args: ForwardArgs) -> Result<(), String> {
    let opts = args.client.options()?;
    let remote = match (args.remote_port, args.local_port) {
        (Some(r), _) => r,
        (None, 0) => return Err("--remote-port is required when the local port is 0".into()),
        (None, l) => l,
    };
    let local = remembered(args.local_port);
    supervise::run(opts, move |session, first| {
        let local = local.clone();
        async move {
            let b = session
                .forward(local.load(Ordering::Relaxed), remote)
                .await?;
            let port = b.local_addr().map_or(0, |a| a.port());
            local.store(port, Ordering::Relaxed);
            if first {
                println!("local: 127.0.0.1:{port}");
                println!("leads to: server 127.0.0.1:{remote}");
            }
            Ok::<_, ClientError>(vec![b])
        }
    })
    .await
    .map_err(|e| e.to_string())
}
