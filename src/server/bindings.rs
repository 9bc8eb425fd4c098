//! BIND handling on the server: validate a request, claim its route or port, and answer BIND_OK
//! or BIND_ERR with the protocol's codes.

use std::sync::Arc;

use super::routes::{Holder, RouteGuard};
use super::sessions::{BindingRecord, SessionEntry};
use super::state::ServerState;
use crate::http::edge::address_policy::AddressPolicy;
use crate::http::edge::basic_auth::BasicAuthPolicy;
use crate::http::edge::routing::{random_route_name, validate_route_name};
use crate::mux::MuxStream;
use crate::proto::{
    Bind, BindErr, BindErrorCode, BindId, BindKind, BindMode, BindOk, BindRevoked, ErrorCode,
    Frame, RouteMode, StreamOpen,
};

/// A refused bind: code and message for BIND_ERR.
#[derive(Debug)]
pub struct Refusal {
    /// BIND_ERR code.
    pub code: BindErrorCode,
    /// Why, for the person at the client.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: BindErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What a successful bind reports.
struct Granted {
    container_port: u16,
    public_url: Option<String>,
    subdomain: Option<String>,
}

/// Answers one BIND frame.
pub async fn bind(state: &Arc<ServerState>, entry: &Arc<SessionEntry>, bind: Bind) -> Frame {
    if let Some(refused) = oversized_ref(&bind) {
        return refused;
    }
    let client_bind_ref = bind.client_bind_ref.clone();
    match try_bind(state, entry, bind).await {
        Ok((bind_id, granted)) => Frame::BindOk(BindOk {
            client_bind_ref,
            bind_id,
            container_port: granted.container_port,
            public_url: granted.public_url,
            subdomain: granted.subdomain,
        }),
        Err(r) => {
            entry.client.usage.refused_bind(r.code);
            tracing::info!(session = %entry.id, client = %entry.client.name, code = %r.code, message = %r.message, "bind refused");
            Frame::BindErr(BindErr {
                client_bind_ref,
                code: r.code,
                message: r.message,
            })
        }
    }
}

/// Longest `clientBindRef` echoed, as JSON. Other clients send short strings or numbers; a
/// reference as large as a frame would make every answer as large, and the answers to a peer
/// that does not read them pile up.
const MAX_CLIENT_BIND_REF: usize = 256;

/// BIND_ERR `INVALID_REF` (with a `null` reference) for a BIND whose reference is too long.
fn oversized_ref(bind: &Bind) -> Option<Frame> {
    let len = serde_json::to_vec(&bind.client_bind_ref).map_or(usize::MAX, |v| v.len());
    (len > MAX_CLIENT_BIND_REF).then(|| {
        Frame::BindErr(BindErr {
            client_bind_ref: serde_json::Value::Null,
            code: BindErrorCode::InvalidRef,
            message: format!(
                "clientBindRef is {len} bytes of JSON; at most {MAX_CLIENT_BIND_REF} are echoed"
            ),
        })
    })
}

async fn try_bind(
    state: &Arc<ServerState>,
    entry: &Arc<SessionEntry>,
    bind: Bind,
) -> Result<(BindId, Granted), Refusal> {
    // The client's scope as it is now: a reload may have changed it since the HELLO.
    let Some(client) = state.clients.current(&entry.client.name) else {
        return Err(Refusal::new(
            BindErrorCode::Internal,
            format!(
                "client '{}' is no longer known to the server",
                entry.client.name
            ),
        ));
    };
    let (cap, whose) = match client.scope.max_bindings {
        Some(n) => (n, "max_bindings of the client"),
        None => (state.config.limits.max_bindings_per_session, "server limit"),
    };
    if entry.bindings().len() >= cap {
        return Err(Refusal::new(
            BindErrorCode::BindCapExceeded,
            format!("this session already holds {cap} bindings ({whose})"),
        ));
    }
    client.scope.admit_bind(&client.name, &bind)?;
    if address_policy(&bind)?.is_some() && bind.mode != BindMode::Expose {
        return Err(Refusal::new(
            BindErrorCode::InvalidKind,
            "cidrAllow and cidrDeny apply to exposes; pull and forward listen on loopback only",
        ));
    }
    let bind_id = state.next_bind_id();
    match (bind.kind, bind.mode) {
        (BindKind::Http, BindMode::Expose) => bind_http(state, entry, bind_id, &bind).await,
        (kind, mode) => super::ports::bind_port(state, entry, bind_id, kind, mode, &bind).await,
    }
    .map(|granted| (bind_id, granted.into()))
}

/// Result of a port binding, shared with the port module.
pub struct PortGrant {
    /// Port the server listens on.
    pub container_port: u16,
    /// Public URL, when there is one.
    pub public_url: Option<String>,
    /// Host route, for an http expose that also has one.
    pub subdomain: Option<String>,
}

impl From<PortGrant> for Granted {
    fn from(p: PortGrant) -> Self {
        Granted {
            container_port: p.container_port,
            public_url: p.public_url,
            subdomain: p.subdomain,
        }
    }
}

fn route_public_url(state: &ServerState, route: &str) -> Option<String> {
    let port = state.local_addr.port();
    state.route_url(route, "http", (port != 80).then_some(port))
}

async fn bind_http(
    state: &Arc<ServerState>,
    entry: &Arc<SessionEntry>,
    bind_id: BindId,
    bind: &Bind,
) -> Result<PortGrant, Refusal> {
    let Some(route) = &bind.route else {
        // A plain hoody-style http expose: a dedicated public port.
        return super::ports::bind_port(
            state,
            entry,
            bind_id,
            BindKind::Http,
            BindMode::Expose,
            bind,
        )
        .await;
    };
    let guard = route_guard(bind)?;
    let takeover = bind.takeover.unwrap_or(false);
    let holder = Holder::new(entry, bind_id);
    let name = match &route.subdomain {
        Some(requested) => {
            let name = validate_route_name(requested)
                .map_err(|e| Refusal::new(BindErrorCode::InvalidName, e.to_string()))?;
            claim(state, &name, route.mode, guard, takeover, holder)?;
            name
        }
        None => {
            let mut claimed = None;
            for _ in 0..16 {
                let name = random_route_name();
                if state.routes.is_taken(&name) {
                    continue;
                }
                if claim(
                    state,
                    &name,
                    route.mode,
                    guard.clone(),
                    false,
                    holder.clone(),
                )
                .is_ok()
                {
                    claimed = Some(name);
                    break;
                }
            }
            claimed.ok_or_else(|| {
                Refusal::new(
                    BindErrorCode::Internal,
                    "could not find a free random route name",
                )
            })?
        }
    };
    // A route may come with a dedicated port as well.
    let mut grant = PortGrant {
        container_port: 0,
        public_url: route_public_url(state, &name),
        subdomain: Some(name.clone()),
    };
    if bind.container_port.is_some() {
        match super::ports::bind_port(
            state,
            entry,
            bind_id,
            BindKind::Http,
            BindMode::Expose,
            bind,
        )
        .await
        {
            Ok(p) => grant.container_port = p.container_port,
            Err(e) => {
                state.routes.release(&name, &entry.id, bind_id);
                return Err(e);
            }
        }
    } else {
        entry.bindings().insert(
            bind_id,
            BindingRecord {
                bind_id,
                kind: BindKind::Http,
                mode: BindMode::Expose,
                container_port: 0,
                route: Some(name.clone()),
                listener: None,
            },
        );
    }
    if let Some(rec) = entry.bindings().get_mut(&bind_id) {
        rec.route = Some(name);
    }
    Ok(grant)
}

/// Who may use what a bind publishes: its Basic Auth and its visitor allow list.
pub fn route_guard(bind: &Bind) -> Result<RouteGuard, Refusal> {
    Ok(RouteGuard {
        auth: auth_policy(bind),
        addresses: address_policy(bind)?,
    })
}

/// The visitor address policy a bind asks for; `None` admits everyone.
pub fn address_policy(bind: &Bind) -> Result<Option<AddressPolicy>, Refusal> {
    AddressPolicy::parse(
        bind.cidr_allow.as_deref().unwrap_or_default(),
        bind.cidr_deny.as_deref().unwrap_or_default(),
    )
    .map_err(|e| Refusal::new(BindErrorCode::InvalidPolicy, e))
}

/// The Basic Auth a bind asks for, as the edge checks it.
fn auth_policy(bind: &Bind) -> Option<BasicAuthPolicy> {
    bind.basic_auth
        .as_ref()
        .map(|a| BasicAuthPolicy::new(a.username.clone(), a.password.clone()))
}

fn claim(
    state: &Arc<ServerState>,
    name: &str,
    mode: RouteMode,
    guard: RouteGuard,
    takeover: bool,
    holder: Holder,
) -> Result<(), Refusal> {
    let previous = state
        .routes
        .claim(name, mode, guard, takeover, holder)
        .map_err(|e| Refusal::new(e.code, e.message))?;
    state.counters.takeovers(previous.len());
    for old in previous {
        revoke(state, old.session_id(), old.bind_id, "route taken over");
    }
    Ok(())
}

/// Tells a session that its binding was taken over, and forgets the binding.
pub fn revoke(state: &Arc<ServerState>, session_id: &str, bind_id: BindId, reason: &str) {
    revoke_with(state, session_id, bind_id, ErrorCode::BIND_TAKEOVER, reason)
}

/// Takes a binding away from a session: its streams are reset with `code`, then the session
/// gets BIND_REVOKED with `reason`.
pub fn revoke_with(
    state: &Arc<ServerState>,
    session_id: &str,
    bind_id: BindId,
    code: ErrorCode,
    reason: &str,
) {
    let Some(entry) = state.sessions.get(session_id) else {
        return;
    };
    let record = entry.bindings().remove(&bind_id);
    if let Some(record) = record {
        if let Some(route) = &record.route {
            state.routes.release(route, session_id, bind_id);
        }
        // The old holder's streams go first, then it learns the binding is gone.
        let session = entry.session();
        session.reset_binding(bind_id, code, reason);
        let _ = session.send_control(&Frame::BindRevoked(BindRevoked {
            bind_id,
            reason: reason.to_string(),
        }));
    }
}

/// Removes one binding of a session; `false` if it has no such binding.
pub fn unbind(state: &Arc<ServerState>, entry: &Arc<SessionEntry>, bind_id: BindId) -> bool {
    let Some(rec) = entry.bindings().remove(&bind_id) else {
        return false;
    };
    if let Some(route) = &rec.route {
        state.routes.release(route, &entry.id, bind_id);
    }
    entry
        .session()
        .reset_binding(bind_id, ErrorCode::CANCEL, "binding removed");
    true
}

/// Removes every binding of a session that is ending.
pub fn release_all(state: &Arc<ServerState>, entry: &Arc<SessionEntry>) {
    let records: Vec<BindingRecord> = entry.bindings().drain().map(|(_, r)| r).collect();
    for rec in records {
        if let Some(route) = &rec.route {
            state.routes.release(route, &entry.id, rec.bind_id);
        }
    }
}

/// Serves a stream the client opened: only `forward` bindings may do that.
pub fn serve_client_stream(
    state: &ServerState,
    entry: &Arc<SessionEntry>,
    mut stream: MuxStream,
    open: StreamOpen,
) {
    let target = {
        let bindings = entry.bindings();
        bindings
            .get(&open.bind_id)
            .filter(|r| r.mode == BindMode::Forward)
            .map(|r| r.container_port)
    };
    let Some(port) = target else {
        stream.reset(ErrorCode::REFUSED_STREAM, "no forward binding with that id");
        return;
    };
    // The connection is an open file like an accepted one: it needs a permit of the budget,
    // held until it closes, so rapid opens (and opens reset at once) cannot exhaust the fds.
    let Ok(permit) = state.admit_local_connection() else {
        stream.reset(
            ErrorCode::REFUSED_STREAM,
            "server connection budget exhausted (--fd-budget)",
        );
        return;
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let throttle = entry.client.usage.throttle().cloned();
    tokio::spawn(async move {
        let stream = stream;
        crate::tcp::connect_and_splice_with(
            addr,
            stream,
            "server-side port",
            bytes::Bytes::new(),
            throttle,
        )
        .await;
        drop(permit);
    });
}
