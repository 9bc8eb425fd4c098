//! Port bindings: dedicated public ports (http and tcp expose), loopback pull listeners, and
//! forward permissions. Port rules and BIND_ERR codes follow PROTOCOL.md.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use tokio::net::TcpListener;

use super::admission::NotAdmitted;
use super::bindings::{address_policy, revoke, route_guard, PortGrant, Refusal};
use super::listener::{accept_loop, ListenerKind};
use super::routes::{Holder, RoutePick};
use super::sessions::{BindingRecord, SessionEntry};
use super::state::ServerState;
use super::visitor_rate::VisitorRate;
use crate::http::edge::address_policy::AddressPolicy;
use crate::proto::{Bind, BindErrorCode, BindId, BindKind, BindMode, StreamOpen};

/// Opens the port side of a binding.
pub async fn bind_port(
    state: &Arc<ServerState>,
    entry: &Arc<SessionEntry>,
    bind_id: BindId,
    kind: BindKind,
    mode: BindMode,
    bind: &Bind,
) -> Result<PortGrant, Refusal> {
    match (kind, mode) {
        (BindKind::Http | BindKind::Tcp, BindMode::Expose) => {
            expose(state, entry, bind_id, kind, bind).await
        }
        (BindKind::Tcp, BindMode::Pull) => pull(state, entry, bind_id, bind).await,
        (BindKind::Tcp, BindMode::Forward) => forward(state, entry, bind_id, bind),
        _ => Err(Refusal::new(
            BindErrorCode::InvalidKind,
            "unsupported kind/mode; supported: http+expose, tcp+expose, tcp+pull, tcp+forward",
        )),
    }
}

/// Port rules every requested (non-zero) port follows.
fn check_port(state: &ServerState, port: u16) -> Result<(), Refusal> {
    if port < 80 {
        return Err(Refusal::new(
            BindErrorCode::PrivilegedPort,
            format!("port {port} is refused: ports below 80 are never bound"),
        ));
    }
    if port < 1024 && !state.config.allow_privileged_ports {
        return Err(Refusal::new(
            BindErrorCode::PrivilegedPort,
            format!("port {port} is privileged; the server needs --allow-privileged-ports"),
        ));
    }
    if port == state.local_addr.port() {
        return Err(Refusal::new(
            BindErrorCode::ReservedPort,
            format!("port {port} is the server's own listener"),
        ));
    }
    Ok(())
}

/// The session and binding holding an expose on `port`, if any.
fn port_holder(state: &ServerState, port: u16) -> Option<(Arc<SessionEntry>, BindId)> {
    state.sessions.all().into_iter().find_map(|s| {
        let bind_id = s
            .bindings()
            .values()
            .find(|b| b.container_port == port && b.mode == BindMode::Expose)
            .map(|b| b.bind_id)?;
        Some((s, bind_id))
    })
}

fn in_use(port: u16) -> Refusal {
    Refusal::new(
        BindErrorCode::PortInUse,
        format!("port {port} is already in use on the server"),
    )
}

async fn listen_exact(ip: IpAddr, port: u16) -> Result<TcpListener, Refusal> {
    // A listener just revoked by a takeover is released when its task is next polled, so a
    // few short retries cover that gap.
    for attempt in 0..20 {
        match TcpListener::bind(SocketAddr::new(ip, port)).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < 19 => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(in_use(port)),
            Err(e) => {
                return Err(Refusal::new(
                    BindErrorCode::Internal,
                    format!("cannot listen on {ip}:{port}: {e}"),
                ))
            }
        }
    }
    Err(in_use(port))
}

/// A free port picked by the server: from the client's own ports when its scope lists them,
/// else from the expose range.
async fn listen_in_range(
    state: &ServerState,
    ip: IpAddr,
    pool: Option<&[RangeInclusive<u16>]>,
) -> Result<TcpListener, Refusal> {
    let expose = [state.config.expose_ports.clone()];
    let ranges = pool.unwrap_or(&expose);
    for port in candidates(ranges) {
        if check_port(state, port).is_err() || port_holder(state, port).is_some() {
            continue;
        }
        if let Ok(l) = TcpListener::bind(SocketAddr::new(ip, port)).await {
            return Ok(l);
        }
    }
    let what = match pool {
        Some(_) => "among the client's ports",
        None => "in the expose range",
    };
    let listed: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.start(), r.end()))
        .collect();
    Err(Refusal::new(
        BindErrorCode::PortInUse,
        format!("no free port found {what} {}", listed.join(", ")),
    ))
}

/// Up to 64 ports to try: every port in random order when the ranges are that small, else 64
/// random picks spread over them by size.
fn candidates(ranges: &[RangeInclusive<u16>]) -> Vec<u16> {
    let size = |r: &RangeInclusive<u16>| usize::from(r.end() - r.start()) + 1;
    let total: usize = ranges.iter().map(size).sum();
    let mut rng = rand::rng();
    if total <= 64 {
        let mut all: Vec<u16> = ranges.iter().flat_map(|r| r.clone()).collect();
        all.shuffle(&mut rng);
        return all;
    }
    (0..64)
        .filter_map(|_| {
            let mut i = rng.random_range(0..total);
            ranges.iter().find_map(|r| {
                let n = size(r);
                if i < n {
                    Some(r.start() + i as u16)
                } else {
                    i -= n;
                    None
                }
            })
        })
        .collect()
}

fn public_host(state: &ServerState) -> String {
    if let Some(d) = &state.config.domain {
        return d.clone();
    }
    match state.local_addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

async fn expose(
    state: &Arc<ServerState>,
    entry: &Arc<SessionEntry>,
    bind_id: BindId,
    kind: BindKind,
    bind: &Bind,
) -> Result<PortGrant, Refusal> {
    let ip = state.local_addr.ip();
    let requested = bind.container_port.unwrap_or(0);
    let listener = if requested == 0 {
        let client = state.clients.current(&entry.client.name);
        let pool = client.as_ref().and_then(|c| c.scope.port_pool());
        listen_in_range(state, ip, pool).await?
    } else {
        check_port(state, requested)?;
        if let Some((holder, old)) = port_holder(state, requested) {
            if !holder.client.same_as(&entry.client) {
                return Err(Refusal::new(
                    BindErrorCode::PortInUse,
                    format!(
                        "port {requested} is held by another client; takeover works only between sessions of the same client"
                    ),
                ));
            }
            if !bind.takeover.unwrap_or(false) {
                return Err(Refusal::new(
                    BindErrorCode::PortInUse,
                    format!(
                        "port {requested} is held by another session (takeover: true claims it)"
                    ),
                ));
            }
            revoke(state, &holder.id, old, "port taken over");
            state.counters.takeovers(1);
        }
        listen_exact(ip, requested).await?
    };
    let port = listener
        .local_addr()
        .map_err(|e| Refusal::new(BindErrorCode::Internal, e.to_string()))?
        .port();
    let host = public_host(state);
    let (task, public_url) = match kind {
        BindKind::Http => {
            let pick = RoutePick {
                holder: Holder::new(entry, bind_id),
                guard: route_guard(bind)?,
            };
            let task = tokio::spawn(accept_loop(
                state.clone(),
                listener,
                ListenerKind::Dedicated(pick),
            ));
            let url = state
                .config
                .public_url_template
                .replace("{host}", &host)
                .replace("{port}", &port.to_string());
            (task, url)
        }
        _ => {
            let task = tokio::spawn(tcp_accept_loop(
                listener,
                entry.clone(),
                bind_id,
                state.clone(),
                ConnectionGate {
                    addresses: address_policy(bind)?,
                    rate: state.visitor_rate.clone(),
                    public: true,
                },
            ));
            (task, format!("tcp://{host}:{port}"))
        }
    };
    record(
        entry,
        bind_id,
        kind,
        BindMode::Expose,
        port,
        task.abort_handle(),
    );
    Ok(PortGrant {
        container_port: port,
        public_url: Some(public_url),
        subdomain: None,
    })
}

fn record(
    entry: &SessionEntry,
    bind_id: BindId,
    kind: BindKind,
    mode: BindMode,
    port: u16,
    listener: tokio::task::AbortHandle,
) {
    entry.bindings().insert(
        bind_id,
        BindingRecord {
            bind_id,
            kind,
            mode,
            container_port: port,
            route: None,
            listener: Some(listener),
        },
    );
}

async fn pull(
    state: &Arc<ServerState>,
    entry: &Arc<SessionEntry>,
    bind_id: BindId,
    bind: &Bind,
) -> Result<PortGrant, Refusal> {
    if bind.takeover.unwrap_or(false) {
        return Err(Refusal::new(
            BindErrorCode::InvalidKind,
            "takeover applies to expose bindings only",
        ));
    }
    let host = bind.host.as_deref().unwrap_or("127.0.0.1");
    let ip: IpAddr = match host {
        "127.0.0.1" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "::1" | "[::1]" => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        other => {
            return Err(Refusal::new(
                BindErrorCode::InvalidHost,
                format!("pull host {other:?} is not allowed; use 127.0.0.1 or ::1"),
            ))
        }
    };
    let requested = bind.container_port.unwrap_or(0);
    let listener = if requested == 0 {
        listen_exact(ip, 0).await?
    } else {
        check_port(state, requested)?;
        listen_exact(ip, requested).await?
    };
    let port = listener
        .local_addr()
        .map_err(|e| Refusal::new(BindErrorCode::Internal, e.to_string()))?
        .port();
    let task = tokio::spawn(tcp_accept_loop(
        listener,
        entry.clone(),
        bind_id,
        state.clone(),
        // Pull listens on loopback for server-side code: nobody to keep out.
        ConnectionGate::default(),
    ));
    record(
        entry,
        bind_id,
        BindKind::Tcp,
        BindMode::Pull,
        port,
        task.abort_handle(),
    );
    Ok(PortGrant {
        container_port: port,
        public_url: None,
        subdomain: None,
    })
}

fn forward(
    state: &Arc<ServerState>,
    entry: &Arc<SessionEntry>,
    bind_id: BindId,
    bind: &Bind,
) -> Result<PortGrant, Refusal> {
    let port = bind.container_port.unwrap_or(0);
    let allowed = port != 0 && state.config.allow_forward.iter().any(|r| r.contains(&port));
    if !allowed {
        return Err(Refusal::new(
            BindErrorCode::ForbiddenPort,
            format!("the server does not allow forwarding to port {port} (see --allow-forward)"),
        ));
    }
    entry.bindings().insert(
        bind_id,
        BindingRecord {
            bind_id,
            kind: BindKind::Tcp,
            mode: BindMode::Forward,
            container_port: port,
            route: None,
            listener: None,
        },
    );
    Ok(PortGrant {
        container_port: port,
        public_url: None,
        subdomain: None,
    })
}

/// Each accepted connection becomes a stream to the client. While the session is parked for
/// resume (or full), new connections are dropped but the port stays bound.
/// Who may open a connection through a public TCP port: the binding's address policy and the
/// server's per-visitor rate; `public` ports also count against `--max-connections-per-ip`.
#[derive(Default)]
struct ConnectionGate {
    addresses: Option<AddressPolicy>,
    rate: Option<Arc<VisitorRate>>,
    public: bool,
}

impl ConnectionGate {
    /// Why a connection from `ip` is refused, if it is (an admitted one counts against the rate).
    fn refusal(&self, ip: std::net::IpAddr) -> Option<&'static str> {
        if self.addresses.as_ref().is_some_and(|a| !a.admits(ip)) {
            return Some("visitor refused by --cidr-allow/--cidr-deny");
        }
        if self.rate.as_ref().is_some_and(|r| !r.admit(ip)) {
            return Some("visitor over --visitor-rate");
        }
        None
    }
}

async fn tcp_accept_loop(
    listener: TcpListener,
    entry: Arc<SessionEntry>,
    bind_id: BindId,
    state: Arc<ServerState>,
    gate: ConnectionGate,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Some(why) = gate.refusal(peer.ip()) {
            // Debug, not info: a flood would otherwise become a flood of log lines.
            tracing::debug!(%peer, bind_id, "{why}; connection closed");
            continue;
        }
        let admitted = if gate.public {
            state.admit_connection(peer.ip())
        } else {
            state.admit_local_connection()
        };
        let permit = match admitted {
            Ok(admitted) => admitted,
            Err(NotAdmitted::OverBudget) => {
                tracing::warn!(%peer, "connection budget exhausted; dropping tcp connection");
                continue;
            }
            Err(NotAdmitted::OverAddressCap) => {
                tracing::debug!(%peer, bind_id, "connection cap of the address reached; connection closed");
                continue;
            }
        };
        crate::tcp::tune(&tcp);
        let open = StreamOpen::tcp(bind_id).from_connection(peer, tcp.local_addr().ok());
        match entry.session().open(&open) {
            Ok(stream) => {
                let client = entry.client.name.clone();
                let throttle = entry.client.usage.throttle().cloned();
                tokio::spawn(async move {
                    let _permit = permit;
                    match crate::tcp::splice_with(tcp, stream, throttle).await {
                        Ok((up, down)) => {
                            tracing::debug!(%peer, %client, bind_id, up, down, "tcp connection done")
                        }
                        Err(e) => {
                            tracing::debug!(%peer, %client, bind_id, error = %e, "tcp connection ended")
                        }
                    }
                });
            }
            Err(e) => tracing::info!(%peer, error = %e, "tcp connection dropped"),
        }
    }
}
