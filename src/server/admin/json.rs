//! The admin API's JSON bodies. Field names are the contract of PROTOCOL.md ("Listeners"), shared
//! with hoody-style dashboards: never rename one; new fields may be added (marked *underpass*).

use serde::Serialize;

use super::snapshot::{BindingView, SessionView};
use crate::mux::BindTraffic;
use crate::proto::{BindId, BindKind, BindMode, ProtocolVersion};

/// `GET /__underpass__/api/v1/health`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `ok`: the answer itself proves the process serves requests.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// *(underpass)* True while shutting down (readiness answers 503).
    pub draining: bool,
}

/// A binding in `tunnels`: `exposeBindings` / `pullBindings` entries.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelBinding {
    /// Binding id.
    pub bind_id: BindId,
    /// Server port (0 for a route-only http expose).
    pub container_port: u16,
    /// *(underpass)* `http` or `tcp`.
    pub kind: BindKind,
    /// *(underpass)* Host route, for an http expose with one.
    pub route: Option<String>,
}

/// A session in `tunnels`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSession {
    /// Session id.
    pub session_id: String,
    /// *(underpass)* The client it authenticated as (`default`: the shared token).
    pub client: String,
    /// Address of carrier 0's peer.
    pub peer_addr: Option<String>,
    /// `v1` or `v2`.
    pub protocol: &'static str,
    /// Carriers granted.
    pub connections_granted: u32,
    /// Streams open now.
    pub active_streams: usize,
    /// Expose bindings.
    pub expose_bindings: Vec<TunnelBinding>,
    /// Pull bindings.
    pub pull_bindings: Vec<TunnelBinding>,
    /// *(underpass)* Forward bindings (client loopback to server loopback).
    pub forward_bindings: Vec<TunnelBinding>,
}

/// `GET /__underpass__/api/v1/tunnels`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tunnels {
    /// Every session.
    pub sessions: Vec<TunnelSession>,
    /// Sessions without a live client: parked after a carrier loss, waiting for a resume.
    pub orphaned_sessions: usize,
    /// Streams open now, over every session.
    pub total_streams: usize,
    /// Bindings, over every session.
    pub total_bindings: usize,
    /// File descriptors the process may still open; `null` where that is unknown.
    pub fd_permits_available: Option<u64>,
}

/// A binding in `sessions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionBinding {
    /// Binding id.
    pub bind_id: BindId,
    /// Server port (0 for a route-only http expose).
    pub container_port: u16,
    /// `http` or `tcp`.
    pub kind: BindKind,
    /// `expose`, `pull` or `forward`.
    pub mode: BindMode,
    /// *(underpass)* Host route, for an http expose with one.
    pub route: Option<String>,
    /// *(underpass)* DATA bytes, streams of this binding.
    #[serde(flatten)]
    pub traffic: TrafficInfo,
}

/// *(underpass)* What a binding moved since it was made, as the server counts it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficInfo {
    /// DATA bytes the server sent to the client on the binding's streams (visitor to app).
    pub bytes_sent: u64,
    /// DATA bytes the server received from the client on them (app to visitor).
    pub bytes_received: u64,
    /// Streams of the binding opened by either side.
    pub streams_opened: u64,
}

impl From<BindTraffic> for TrafficInfo {
    fn from(t: BindTraffic) -> Self {
        Self {
            bytes_sent: t.bytes_sent,
            bytes_received: t.bytes_received,
            streams_opened: t.streams_opened,
        }
    }
}

/// A session in `sessions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// Session id.
    pub session_id: String,
    /// *(underpass)* The client it authenticated as (`default`: the shared token).
    pub client: String,
    /// Address of carrier 0's peer.
    pub peer_addr: Option<String>,
    /// Protocol v2 (striped carriers).
    pub is_v2: bool,
    /// Carriers granted.
    pub connections_granted: u32,
    /// Streams open now.
    pub active_streams: usize,
    /// Most streams open at once.
    pub max_streams: usize,
    /// Bindings.
    pub bindings: Vec<SessionBinding>,
    /// *(underpass)* Carriers alive now.
    pub carriers_active: usize,
    /// *(underpass)* DATA bytes sent to the client since the session started.
    pub bytes_sent: u64,
    /// *(underpass)* DATA bytes received from the client since the session started.
    pub bytes_received: u64,
    /// *(underpass)* Last round trip of each carrier in milliseconds (`null`: not measured yet).
    pub rtt_ms: Vec<Option<f64>>,
    /// *(underpass)* Waiting for the client to resume after a carrier loss.
    pub parked: bool,
    /// *(underpass)* Carriers up / granted, e.g. `3/4` while one is being re-dialled.
    pub carriers: String,
    /// *(underpass)* Carriers lost while the session ran (since it started, resumes included).
    pub carrier_losses: u64,
    /// *(underpass)* Carriers that re-joined in place of a lost one.
    pub carrier_rejoins: u64,
}

/// `GET /__underpass__/api/v1/sessions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sessions {
    /// Every session.
    pub sessions: Vec<SessionInfo>,
    /// How many.
    pub total: usize,
}

/// A binding in `bindings`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingInfo {
    /// Binding id.
    pub bind_id: BindId,
    /// `http` or `tcp`.
    pub kind: BindKind,
    /// `expose`, `pull` or `forward`.
    pub mode: BindMode,
    /// Server port (0 for a route-only http expose).
    pub port: u16,
    /// Session holding it.
    pub session_id: String,
    /// *(underpass)* The client of that session.
    pub client: String,
    /// *(underpass)* Host route, for an http expose with one.
    pub route: Option<String>,
    /// *(underpass)* DATA bytes, streams of this binding.
    #[serde(flatten)]
    pub traffic: TrafficInfo,
}

/// `GET /__underpass__/api/v1/bindings`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bindings {
    /// Every binding of every session.
    pub bindings: Vec<BindingInfo>,
    /// How many.
    pub total: usize,
}

/// `202` answer of `DELETE /__underpass__/api/v1/sessions/{id}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Killing {
    /// The session being closed.
    pub session_id: String,
    /// *(underpass)* Its client.
    pub client: String,
    /// Always `closing`.
    pub status: &'static str,
}

/// *(underpass)* `POST /__underpass__/api/v1/reload`: the clients file was read again and
/// applied.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reloaded {
    /// Always `reloaded`.
    pub status: &'static str,
    /// Clients in force now (`default` included when the shared token is on).
    pub clients: Vec<String>,
    /// Sessions ended because their client was removed or got a new token.
    pub ended_sessions: Vec<String>,
    /// Bindings revoked because they are outside their client's new scope.
    pub revoked_bindings: Vec<RevokedBinding>,
}

/// One binding a reload revoked.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokedBinding {
    /// Its session.
    pub session_id: String,
    /// The binding.
    pub bind_id: BindId,
    /// The reason its client was told.
    pub reason: String,
}

impl From<crate::server::clients::ReloadReport> for Reloaded {
    fn from(r: crate::server::clients::ReloadReport) -> Self {
        Self {
            status: "reloaded",
            clients: r.clients,
            ended_sessions: r.ended_sessions,
            revoked_bindings: r
                .revoked
                .into_iter()
                .map(|(session_id, bind_id, reason)| RevokedBinding {
                    session_id,
                    bind_id,
                    reason,
                })
                .collect(),
        }
    }
}

/// Body of every admin error answer.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// One line saying what went wrong and what to do.
    pub error: String,
}

fn tunnel_binding(b: &BindingView) -> TunnelBinding {
    TunnelBinding {
        bind_id: b.bind_id,
        container_port: b.container_port,
        kind: b.kind,
        route: b.route.clone(),
    }
}

/// The `tunnels` body.
pub fn tunnels(views: &[SessionView], fd_permits_available: Option<u64>) -> Tunnels {
    let sessions: Vec<TunnelSession> = views
        .iter()
        .map(|s| {
            let of_mode = |mode: BindMode| {
                s.bindings
                    .iter()
                    .filter(|b| b.mode == mode)
                    .map(tunnel_binding)
                    .collect()
            };
            TunnelSession {
                session_id: s.id.clone(),
                client: s.client.to_string(),
                peer_addr: s.peer.map(|p| p.to_string()),
                protocol: match s.version {
                    ProtocolVersion::V1 => "v1",
                    ProtocolVersion::V2 => "v2",
                },
                connections_granted: s.connections_granted,
                active_streams: s.active_streams,
                expose_bindings: of_mode(BindMode::Expose),
                pull_bindings: of_mode(BindMode::Pull),
                forward_bindings: of_mode(BindMode::Forward),
            }
        })
        .collect();
    Tunnels {
        total_streams: views.iter().map(|s| s.active_streams).sum(),
        total_bindings: views.iter().map(|s| s.bindings.len()).sum(),
        sessions,
        orphaned_sessions: views.iter().filter(|s| s.parked).count(),
        fd_permits_available,
    }
}

/// The `sessions` body.
pub fn sessions(views: &[SessionView]) -> Sessions {
    let sessions: Vec<SessionInfo> = views
        .iter()
        .map(|s| SessionInfo {
            session_id: s.id.clone(),
            client: s.client.to_string(),
            peer_addr: s.peer.map(|p| p.to_string()),
            is_v2: s.version == ProtocolVersion::V2,
            connections_granted: s.connections_granted,
            active_streams: s.active_streams,
            max_streams: s.max_streams,
            bindings: s
                .bindings
                .iter()
                .map(|b| SessionBinding {
                    bind_id: b.bind_id,
                    container_port: b.container_port,
                    kind: b.kind,
                    mode: b.mode,
                    route: b.route.clone(),
                    traffic: b.traffic.into(),
                })
                .collect(),
            carriers_active: s.carriers_alive(),
            bytes_sent: s.stats.data_bytes_sent,
            bytes_received: s.stats.data_bytes_received,
            rtt_ms: s
                .carriers
                .iter()
                .map(|c| c.rtt.map(|d| d.as_secs_f64() * 1000.0))
                .collect(),
            parked: s.parked,
            carriers: format!("{}/{}", s.carriers_alive(), s.connections_granted),
            carrier_losses: s.carrier_losses,
            carrier_rejoins: s.carrier_rejoins,
        })
        .collect();
    Sessions {
        total: sessions.len(),
        sessions,
    }
}

/// The `bindings` body, sorted by binding id.
pub fn bindings(views: &[SessionView]) -> Bindings {
    let mut bindings: Vec<BindingInfo> = views
        .iter()
        .flat_map(|s| {
            s.bindings.iter().map(|b| BindingInfo {
                bind_id: b.bind_id,
                kind: b.kind,
                mode: b.mode,
                port: b.container_port,
                session_id: s.id.clone(),
                client: s.client.to_string(),
                route: b.route.clone(),
                traffic: b.traffic.into(),
            })
        })
        .collect();
    bindings.sort_by_key(|b| b.bind_id);
    Bindings {
        total: bindings.len(),
        bindings,
    }
}
