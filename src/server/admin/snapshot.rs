//! One pass over the session table that both the JSON endpoints and the metrics read. Each
//! session's locks are taken one at a time and released before anything is encoded, so a slow
//! scrape never holds up the data path.

use std::net::SocketAddr;
use std::time::Duration;

use crate::mux::{BindTraffic, MuxStats};
use crate::proto::{BindId, BindKind, BindMode, ProtocolVersion};
use crate::server::state::ServerState;

/// One binding of a session, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct BindingView {
    /// Id given in BIND_OK.
    pub bind_id: BindId,
    /// `http` or `tcp`.
    pub kind: BindKind,
    /// `expose`, `pull` or `forward`.
    pub mode: BindMode,
    /// Server port (0 for a route-only http expose).
    pub container_port: u16,
    /// Host route, for an http expose with one.
    pub route: Option<String>,
    /// Bytes and streams of this binding since it was made.
    pub traffic: BindTraffic,
}

/// One carrier slot of a session.
#[derive(Debug, Clone)]
pub struct CarrierView {
    /// Carrier index (0 carries control frames).
    pub index: usize,
    /// False once the carrier dropped.
    pub alive: bool,
    /// Last measured round trip, once a PING was answered.
    pub rtt: Option<Duration>,
}

/// One session, read at one moment.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// The client it authenticated as.
    pub client: std::sync::Arc<str>,
    /// Address of carrier 0's peer.
    pub peer: Option<SocketAddr>,
    /// v1 or v2.
    pub version: ProtocolVersion,
    /// Carriers granted in HELLO_OK.
    pub connections_granted: u32,
    /// Streams open now.
    pub active_streams: usize,
    /// Most streams open at once.
    pub max_streams: usize,
    /// Every carrier slot, alive or not.
    pub carriers: Vec<CarrierView>,
    /// The mux counters since the session started.
    pub stats: MuxStats,
    /// Bindings, by id.
    pub bindings: Vec<BindingView>,
    /// Carrier 0 dropped and the session waits for the client to resume it.
    pub parked: bool,
    /// Carriers lost while the session ran, over its whole life.
    pub carrier_losses: u64,
    /// Carriers that re-joined in place of a lost one.
    pub carrier_rejoins: u64,
}

impl SessionView {
    /// Carriers still alive.
    pub fn carriers_alive(&self) -> usize {
        self.carriers.iter().filter(|c| c.alive).count()
    }
}

/// Every session of the table, sorted by id so listings are stable between calls.
pub fn sessions(state: &ServerState) -> Vec<SessionView> {
    let mut out: Vec<SessionView> = state
        .sessions
        .all()
        .into_iter()
        .map(|entry| {
            // One short lock of the mux state for every number it holds.
            let (active_streams, max_streams, carriers, stats, traffic) =
                entry.session().inspect(|st| {
                    let carriers = (0..st.carrier_count())
                        .map(|index| CarrierView {
                            index,
                            alive: st.carrier_alive(index),
                            rtt: st.rtt(index),
                        })
                        .collect();
                    (
                        st.stream_count(),
                        st.config().max_streams,
                        carriers,
                        st.stats().clone(),
                        st.traffic_by_binding().clone(),
                    )
                });
            let mut bindings: Vec<BindingView> = entry
                .bindings()
                .values()
                .map(|b| BindingView {
                    bind_id: b.bind_id,
                    kind: b.kind,
                    mode: b.mode,
                    container_port: b.container_port,
                    route: b.route.clone(),
                    traffic: traffic.get(b.bind_id),
                })
                .collect();
            bindings.sort_by_key(|b| b.bind_id);
            SessionView {
                id: entry.id.clone(),
                client: entry.client.name.clone(),
                peer: entry.peer,
                version: entry.version,
                connections_granted: entry.connections_granted(),
                active_streams,
                max_streams,
                carriers,
                stats,
                bindings,
                parked: entry.is_parked(),
                carrier_losses: entry.carrier_counts.lost(),
                carrier_rejoins: entry.carrier_counts.rejoined(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// One client's numbers for the metrics.
#[derive(Debug, Clone, Default)]
pub struct ClientFacts {
    /// Its name.
    pub name: String,
    /// Its sessions now (live or parked).
    pub sessions: usize,
    /// Bindings over its sessions now.
    pub bindings: usize,
    /// DATA bytes sent to its sessions since it appeared (ended sessions included).
    pub bytes_sent: u64,
    /// DATA bytes received from its sessions since it appeared.
    pub bytes_received: u64,
    /// Its refused binds, by BIND_ERR code.
    pub refused_binds: std::collections::BTreeMap<&'static str, u64>,
}

/// Every client in force, with the sessions of `views` that are its own.
pub fn clients(state: &ServerState, views: &[SessionView]) -> Vec<ClientFacts> {
    state
        .clients
        .all()
        .iter()
        .map(|c| {
            let own = views.iter().filter(|v| v.client == c.name);
            let (mut sessions, mut bindings, mut sent, mut received) = (0, 0, 0, 0);
            for v in own {
                sessions += 1;
                bindings += v.bindings.len();
                sent += v.stats.data_bytes_sent;
                received += v.stats.data_bytes_received;
            }
            let (bytes_sent, bytes_received) = c.usage.bytes((sent, received));
            ClientFacts {
                name: c.name.to_string(),
                sessions,
                bindings,
                bytes_sent,
                bytes_received,
                refused_binds: c.usage.refused_binds(),
            }
        })
        .collect()
}
