//! HTTP listeners: the main one (control endpoint, health, host-routed public traffic) and the
//! dedicated per-binding HTTP ports. One hyper HTTP/1.1 connection per TCP connection, upgrades on.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::admin;
use super::admission::NotAdmitted;
use super::auth_throttle::basic_auth_gate;
use super::handshake;
use super::health;
use super::routes::RoutePick;
use super::state::ServerState;
use crate::http::body::{full, ProxyBody};
use crate::http::edge::request::EdgeRequest;
use crate::http::edge::routing::route_for;
use crate::http::edge::visitor_error;
use crate::http::interim_io::InterimIo;
use crate::http::visitor::{proxy, Target, Visitor};
use crate::proto::SUBPROTOCOLS;
use crate::tcp::Held;

/// Prefix of every path the server keeps for itself; never proxied.
pub const RESERVED_PREFIX: &str = "/__underpass__/";
/// WebSocket control endpoint.
pub const CONTROL_PATH: &str = "/__underpass__/control";

/// What a listener serves.
#[derive(Debug, Clone)]
pub enum ListenerKind {
    /// The main listener: reserved paths, then host routing.
    Main,
    /// A dedicated HTTP port of one binding.
    Dedicated(RoutePick),
    /// The hoody-compatible control listener: `/api/v1/tunnel/connect` and the admin API at
    /// `/api/v1/tunnel/...`; nothing is proxied there.
    Control,
}

/// Accepts connections until the task is aborted. Accept errors (EMFILE, ...) are logged and
/// retried after a pause instead of ending the listener. Boxed because a binding made over a
/// connection of this listener can start another listener (the future type would be recursive).
pub fn accept_loop(
    state: Arc<ServerState>,
    listener: TcpListener,
    kind: ListenerKind,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(accept_connections(state, listener, kind))
}

async fn accept_connections(state: Arc<ServerState>, listener: TcpListener, kind: ListenerKind) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let admitted = match state.admit_connection(peer.ip()) {
                    Ok(admitted) => admitted,
                    Err(refusal) => {
                        tokio::spawn(refuse(tcp, refusal));
                        continue;
                    }
                };
                crate::tcp::tune(&tcp);
                // The admission travels with the socket, through upgrades too.
                let tcp = Held::new(tcp, admitted);
                tokio::spawn(serve_connection(state.clone(), tcp, peer, kind.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers a connection that was not admitted (503 past the budget, 429 past the per-address
/// cap) without parsing anything, and closes it.
async fn refuse(mut tcp: tokio::net::TcpStream, refusal: NotAdmitted) {
    use tokio::io::AsyncWriteExt;
    let resp = match refusal {
        NotAdmitted::OverBudget => {
            tracing::warn!("connection budget exhausted; answering 503");
            visitor_error::over_budget()
        }
        NotAdmitted::OverAddressCap => {
            // Debug, not warn: one address hammering would otherwise flood the log.
            tracing::debug!("connection cap of one address reached; answering 429");
            visitor_error::too_many_connections()
        }
    };
    let resp = visitor_error::to_http1_bytes(&resp);
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.write_all(&resp)).await;
    let _ = tcp.shutdown().await;
}

async fn serve_connection(
    state: Arc<ServerState>,
    tcp: Held<tokio::net::TcpStream>,
    peer: SocketAddr,
    kind: ListenerKind,
) {
    // A trusted reverse proxy keeps idle upstream connections pooled for longer than our
    // timeout (Caddy 2 min, nginx 60 s) and guards against slow clients itself; closing its idle
    // connections would only race its reuse of them and turn into sporadic 502s.
    let header_timeout = Some(state.config.limits.header_timeout)
        .filter(|t| !t.is_zero() && !state.config.trusted_proxies.is_trusted(peer.ip()));
    // Each request carries the connection's interim writer so the proxy can relay 1xx heads.
    let (io, interim) = InterimIo::new(tcp);
    let svc = service_fn(move |mut req: Request<Incoming>| {
        let state = state.clone();
        let kind = kind.clone();
        req.extensions_mut().insert(interim.clone());
        async move { Ok::<_, Infallible>(handle(state, peer, kind, req).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

async fn handle(
    state: Arc<ServerState>,
    peer: SocketAddr,
    kind: ListenerKind,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // Everything later decides from this one view of the request (host, visitor).
    let edge = EdgeRequest::new(peer, &req, &state.config.trusted_proxies);
    let host = edge
        .as_ref()
        .ok()
        .and_then(EdgeRequest::public_host)
        .map(ToString::to_string);
    let resp = match (&kind, edge) {
        (_, Err(e)) => visitor_error::bad_host(e).map(full),
        (ListenerKind::Main, Ok(_)) if path.starts_with(RESERVED_PREFIX) => {
            reserved(&state, peer, req).await
        }
        (ListenerKind::Control, Ok(_)) => control(&state, peer, req).await,
        _ if state.is_draining() => visitor_error::shutting_down().map(full),
        (_, Ok(edge)) if over_visitor_rate(&state, &edge) => {
            visitor_error::too_many_requests().map(full)
        }
        (ListenerKind::Main, Ok(edge)) => routed(&state, &edge, req).await,
        (ListenerKind::Dedicated(pick), Ok(edge)) => forward(&state, &edge, pick, req).await,
    };
    if !path.starts_with(RESERVED_PREFIX) && !matches!(kind, ListenerKind::Control) {
        state.counters.request(resp.status().as_u16());
        let client = resp.extensions().get::<ServedBy>().map(|c| c.0.clone());
        tracing::info!(
            client = %client.as_deref().unwrap_or("-"),
            %method,
            host = host.as_deref().unwrap_or("-"),
            path = %path,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
    }
    resp
}

/// Whether the visitor (as the edge believes it, after trusted proxies) has started more
/// requests this second than `--visitor-rate` allows.
fn over_visitor_rate(state: &ServerState, edge: &EdgeRequest) -> bool {
    state
        .visitor_rate
        .as_ref()
        .is_some_and(|rate| !rate.admit(edge.client.client_ip))
}

async fn routed(
    state: &Arc<ServerState>,
    edge: &EdgeRequest,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let Some(host) = edge.public_host() else {
        return visitor_error::missing_host().map(full);
    };
    let Some(route) = route_for(host, state.config.domain.as_deref()) else {
        return visitor_error::no_route(&host.to_string()).map(full);
    };
    let Some(pick) = state.routes.pick(&route) else {
        return visitor_error::no_route(&host.to_string()).map(full);
    };
    forward(state, edge, &pick, req).await
}

/// Serves a request with the binding `pick`; the answer, refusals included, names the binding's
/// client for the access log.
async fn forward(
    state: &Arc<ServerState>,
    edge: &EdgeRequest,
    pick: &RoutePick,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let mut resp = guarded_proxy(state, edge, pick, req).await;
    resp.extensions_mut()
        .insert(ServedBy(pick.holder.entry.client.name.clone()));
    resp
}

async fn guarded_proxy(
    state: &Arc<ServerState>,
    edge: &EdgeRequest,
    pick: &RoutePick,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if let Some(policy) = &pick.guard.addresses {
        // The visitor as the edge believes it: behind a trusted proxy, its forwarded address.
        let visitor = edge.client.client_ip;
        if !policy.admits(visitor) {
            return visitor_error::not_allowed(visitor).map(full);
        }
    }
    if let Some(policy) = &pick.guard.auth {
        let throttle = state.auth_throttle.as_ref();
        if let Some(refused) =
            basic_auth_gate(throttle, policy, edge.client.client_ip, req.headers())
        {
            return refused.map(full);
        }
    }
    let session = pick.holder.session();
    let client = &pick.holder.entry.client;
    let target = Target {
        session: &session,
        bind_id: pick.holder.bind_id,
        checked_auth: pick.guard.auth.is_some(),
        throttle: client.usage.throttle(),
    };
    let visitor = Visitor {
        edge,
        response_timeout: state.config.limits.response_timeout,
    };
    proxy(req, target, visitor).await
}

/// The client whose binding answered a request, for the access log line.
#[derive(Clone)]
struct ServedBy(Arc<str>);

async fn reserved(
    state: &Arc<ServerState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let path = req.uri().path().to_string();
    if path == CONTROL_PATH {
        return accept_carrier(state, peer, req);
    }
    if let Some(resp) = admin::answer(state, &req) {
        return resp;
    }
    if let Some(resp) = health::answer(state, &req) {
        return resp;
    }
    visitor_error::no_endpoint("").map(full)
}

/// Path of the WebSocket control endpoint on the control listener (PROTOCOL.md).
pub const HOODY_CONNECT_PATH: &str = "/api/v1/tunnel/connect";

async fn control(
    state: &Arc<ServerState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if req.uri().path() == HOODY_CONNECT_PATH {
        return accept_carrier(state, peer, req);
    }
    if let Some(resp) = admin::answer_hoody(state, &req) {
        return resp;
    }
    visitor_error::no_endpoint(" on the control listener").map(full)
}

/// Answers a WebSocket upgrade for a carrier and hands the carrier to the handshake.
fn accept_carrier(
    state: &Arc<ServerState>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    match underpass_transports::ws::accept_upgrade(&mut req, &SUBPROTOCOLS, Some(peer)) {
        Ok((resp, pending)) => {
            let state = state.clone();
            tokio::spawn(async move {
                match pending.upgrade().await {
                    Ok(carrier) => handshake::accept_carrier(state, carrier).await,
                    Err(e) => tracing::debug!(error = %e, "control upgrade failed"),
                }
            });
            resp.map(|b| b.map_err(|never| match never {}).boxed())
        }
        Err(rejection) => rejection
            .into_response()
            .map(|b| b.map_err(|never| match never {}).boxed()),
    }
}
