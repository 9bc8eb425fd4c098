//! `GET /__underpass__/metrics`: Prometheus / OpenMetrics text, gathered on each scrape from the
//! session table (no metric registry on the data path).
//!
//! Built with `prometheus-client`: a fresh registry per scrape holds the values read from the
//! [`SessionView`]s, and the crate does the text format (escaping, `_total` suffixes, `# EOF`).
//!
//! The byte, stall and stream-open counters live in each session's mux, so they are exported per
//! session (`{session="..."}`), and per binding (`{session, bind_id, ...}`): each series only
//! grows, and it vanishes when its session (or binding) ends.
//! `sum(rate(underpass_bytes_sent_total[5m]))` is then the server's throughput; a plain sum
//! over sessions would drop whenever a session ends and Prometheus would take that for a counter
//! reset.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::snapshot::{BindingView, ClientFacts, SessionView};
use crate::mux::BindTraffic;
use crate::proto::{BindKind, BindMode};
use crate::server::counters::CountersSnapshot;

/// Content type of the answer (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label set of the per-session and per-binding families.
type Labels = Vec<(&'static str, String)>;

/// Server-wide facts the session table does not hold.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// Host routes with at least one holder.
    pub routes: usize,
    /// File descriptors the process may still open, when known.
    pub fd_permits_available: Option<u64>,
    /// True while shutting down.
    pub draining: bool,
    /// Event counters since start.
    pub counters: CountersSnapshot,
    /// Connections refused because the connection budget was spent.
    pub over_budget: u64,
    /// Every client in force.
    pub clients: Vec<ClientFacts>,
}

/// Every `(kind, mode)` pair a binding can have, so dashboards see 0 rather than no series.
const BINDING_KINDS: [(BindKind, BindMode); 4] = [
    (BindKind::Http, BindMode::Expose),
    (BindKind::Tcp, BindMode::Expose),
    (BindKind::Tcp, BindMode::Pull),
    (BindKind::Tcp, BindMode::Forward),
];

fn kind_name(kind: BindKind) -> &'static str {
    match kind {
        BindKind::Http => "http",
        BindKind::Tcp => "tcp",
        BindKind::Unknown => "unknown",
    }
}

fn mode_name(mode: BindMode) -> &'static str {
    match mode {
        BindMode::Expose => "expose",
        BindMode::Pull => "pull",
        BindMode::Forward => "forward",
        BindMode::Unknown => "unknown",
    }
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn as_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Renders the exposition for `views` and `facts`.
pub fn render(views: &[SessionView], facts: ServerFacts) -> String {
    let mut registry = Registry::default();

    // The names dashboards built on the hoody-tunnel protocol expect (PROTOCOL.md, Listeners).
    let sessions = as_i64(views.len());
    gauge(
        &mut registry,
        "hoody_tunnel_sessions_active",
        "Sessions in the session table",
        sessions,
    );
    let bindings: Family<Labels, Gauge> = Family::default();
    for (kind, mode) in BINDING_KINDS {
        bindings.get_or_create(&kind_mode(kind, mode)).set(0);
    }
    for b in views.iter().flat_map(|s| &s.bindings) {
        bindings.get_or_create(&kind_mode(b.kind, b.mode)).inc();
    }
    registry.register(
        "hoody_tunnel_bindings_active",
        "Bindings by kind and mode",
        bindings,
    );
    if let Some(fds) = facts.fd_permits_available {
        gauge(
            &mut registry,
            "hoody_tunnel_fd_permits_available",
            "File descriptors the server process may still open (soft limit minus open)",
            as_i64(fds),
        );
    }

    gauge(
        &mut registry,
        "underpass_sessions_active",
        "Sessions in the session table",
        sessions,
    );
    gauge(
        &mut registry,
        "underpass_sessions_parked",
        "Sessions waiting for their client to resume after a carrier loss",
        as_i64(views.iter().filter(|s| s.parked).count()),
    );
    gauge(
        &mut registry,
        "underpass_carriers_active",
        "Live carriers over every session",
        as_i64(views.iter().map(SessionView::carriers_alive).sum::<usize>()),
    );
    gauge(
        &mut registry,
        "underpass_streams_active",
        "Open streams over every session",
        as_i64(views.iter().map(|s| s.active_streams).sum::<usize>()),
    );
    gauge(
        &mut registry,
        "underpass_routes_active",
        "Host routes with at least one holder",
        as_i64(facts.routes),
    );
    gauge(
        &mut registry,
        "underpass_draining",
        "1 while the server shuts down",
        i64::from(facts.draining),
    );

    let per_session_gauge = |pick: fn(&SessionView) -> i64| {
        let family: Family<Labels, Gauge> = Family::default();
        for s in views {
            family
                .get_or_create(&vec![("session", s.id.clone())])
                .set(pick(s));
        }
        family
    };
    registry.register(
        "underpass_session_carriers",
        "Live carriers of each session",
        per_session_gauge(|s| as_i64(s.carriers_alive())),
    );
    registry.register(
        "underpass_session_carriers_granted",
        "Carriers granted to each session",
        per_session_gauge(|s| i64::from(s.connections_granted)),
    );

    // Counters per session: see the module comment for why they are not summed.
    let per_session = |pick: fn(&SessionView) -> u64| {
        let family: Family<Labels, Counter> = Family::default();
        for s in views {
            family
                .get_or_create(&vec![("session", s.id.clone())])
                .inc_by(pick(s));
        }
        family
    };
    registry.register(
        "underpass_bytes_sent",
        "DATA bytes the server sent to the client, per session, since the session started",
        per_session(|s| s.stats.data_bytes_sent),
    );
    registry.register(
        "underpass_bytes_received",
        "DATA bytes the server received from the client, per session, since the session started",
        per_session(|s| s.stats.data_bytes_received),
    );
    registry.register(
        "underpass_flow_control_stalls",
        "Times a writer waited for flow-control credit, per session",
        per_session(|s| s.stats.flow_control_stalls),
    );
    registry.register(
        "underpass_streams_opened",
        "Streams opened by either side, per session",
        per_session(|s| s.stats.streams_opened),
    );

    // The same counters per binding; a series ends with its binding.
    let per_binding = |pick: fn(&BindTraffic) -> u64| {
        let family: Family<Labels, Counter> = Family::default();
        for s in views {
            for b in &s.bindings {
                family
                    .get_or_create(&binding_labels(&s.id, b))
                    .inc_by(pick(&b.traffic));
            }
        }
        family
    };
    registry.register(
        "underpass_binding_bytes_sent",
        "DATA bytes the server sent to the client on one binding's streams (visitor to app)",
        per_binding(|t| t.bytes_sent),
    );
    registry.register(
        "underpass_binding_bytes_received",
        "DATA bytes the server received from the client on one binding's streams (app to visitor)",
        per_binding(|t| t.bytes_received),
    );
    registry.register(
        "underpass_binding_streams_opened",
        "Streams of one binding opened by either side",
        per_binding(|t| t.streams_opened),
    );

    let rtt: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
    for s in views {
        for c in s.carriers.iter().filter(|c| c.alive) {
            if let Some(d) = c.rtt {
                rtt.get_or_create(&vec![
                    ("session", s.id.clone()),
                    ("carrier", c.index.to_string()),
                ])
                .set(d.as_secs_f64());
            }
        }
    }
    registry.register(
        "underpass_carrier_rtt_seconds",
        "Last measured PING round trip of each live carrier",
        rtt,
    );

    let c = &facts.counters;
    let by = |label: &'static str, map: &std::collections::BTreeMap<u16, u64>| {
        let family: Family<Labels, Counter> = Family::default();
        for (k, v) in map {
            family
                .get_or_create(&vec![(label, k.to_string())])
                .inc_by(*v);
        }
        family
    };
    registry.register(
        "underpass_http_requests",
        "Public HTTP requests answered, by status (edge errors included)",
        by("status", &c.requests_by_status),
    );
    registry.register(
        "underpass_handshake_refusals",
        "Carriers refused at HELLO/JOIN, by GOAWAY code (11 = bad token)",
        by("code", &c.refusals_by_code),
    );
    let counter = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        let k: Counter = Counter::default();
        k.inc_by(v);
        registry.register(name, help, k);
    };
    counter(
        &mut registry,
        "underpass_resumes",
        "Sessions resumed after a connection drop",
        c.resumes,
    );
    counter(
        &mut registry,
        "underpass_carrier_lost",
        "Carriers that went away while their session ran (carrier 0 included)",
        c.carriers_lost,
    );
    counter(
        &mut registry,
        "underpass_carrier_rejoined",
        "Carriers that re-joined their session in place of a lost one",
        c.carriers_rejoined,
    );
    counter(
        &mut registry,
        "underpass_takeovers",
        "Routes or ports claimed from another session",
        c.takeovers,
    );
    counter(
        &mut registry,
        "underpass_protocol_errors",
        "Sessions ended because the peer broke the protocol",
        c.protocol_errors,
    );
    counter(
        &mut registry,
        "underpass_connections_over_budget",
        "Connections refused because the connection budget was spent",
        facts.over_budget,
    );

    render_clients(&mut registry, &facts.clients);

    registry.register(
        "underpass_build",
        "Version of the running server",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]),
    );

    let mut out = String::new();
    // Writing into a String cannot fail, and every name and label above is valid.
    if encode(&mut out, &registry).is_err() {
        out = "# EOF\n".into();
    }
    out
}

/// The `underpass_client_*` families, one series per client (and per refusal code).
fn render_clients(registry: &mut Registry, clients: &[ClientFacts]) {
    let label = |c: &ClientFacts| vec![("client", c.name.clone())];
    let gauges = |pick: fn(&ClientFacts) -> usize| {
        let family: Family<Labels, Gauge> = Family::default();
        for c in clients {
            family.get_or_create(&label(c)).set(as_i64(pick(c)));
        }
        family
    };
    let counters = |pick: fn(&ClientFacts) -> u64| {
        let family: Family<Labels, Counter> = Family::default();
        for c in clients {
            family.get_or_create(&label(c)).inc_by(pick(c));
        }
        family
    };
    registry.register(
        "underpass_client_sessions",
        "Sessions of each client (live or waiting for a resume)",
        gauges(|c| c.sessions),
    );
    registry.register(
        "underpass_client_bindings",
        "Bindings over each client's sessions",
        gauges(|c| c.bindings),
    );
    registry.register(
        "underpass_client_bytes_sent",
        "DATA bytes the server sent to each client's sessions (visitor to app), ended sessions included",
        counters(|c| c.bytes_sent),
    );
    registry.register(
        "underpass_client_bytes_received",
        "DATA bytes the server received from each client's sessions (app to visitor), ended sessions included",
        counters(|c| c.bytes_received),
    );
    let refused: Family<Labels, Counter> = Family::default();
    for c in clients {
        for (code, n) in &c.refused_binds {
            let mut labels = label(c);
            labels.push(("code", code.to_string()));
            refused.get_or_create(&labels).inc_by(*n);
        }
    }
    registry.register(
        "underpass_client_refused_binds",
        "Binds of each client the server refused, by BIND_ERR code",
        refused,
    );
}

/// Labels of one binding's series: its session and id, what it is, and where it listens
/// (`route` empty for a port binding, `port` 0 for a route-only http expose).
fn binding_labels(session: &str, b: &BindingView) -> Labels {
    let mut labels = vec![
        ("session", session.to_string()),
        ("bind_id", b.bind_id.to_string()),
    ];
    labels.extend(kind_mode(b.kind, b.mode));
    labels.push(("route", b.route.clone().unwrap_or_default()));
    labels.push(("port", b.container_port.to_string()));
    labels
}

fn kind_mode(kind: BindKind, mode: BindMode) -> Labels {
    vec![
        ("kind", kind_name(kind).to_string()),
        ("mode", mode_name(mode).to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mux::{BindTraffic, MuxStats};
    use crate::proto::ProtocolVersion;
    use crate::server::admin::snapshot::{BindingView, CarrierView};

    fn view() -> SessionView {
        SessionView {
            id: "s_abc".into(),
            client: "alice".into(),
            peer: None,
            version: ProtocolVersion::V2,
            connections_granted: 2,
            active_streams: 3,
            max_streams: 1024,
            carriers: vec![
                CarrierView {
                    index: 0,
                    alive: true,
                    rtt: Some(Duration::from_millis(2)),
                },
                CarrierView {
                    index: 1,
                    alive: false,
                    rtt: Some(Duration::from_millis(9)),
                },
            ],
            stats: MuxStats {
                data_bytes_sent: 100,
                data_bytes_received: 7,
                flow_control_stalls: 1,
                streams_opened: 5,
            },
            bindings: vec![BindingView {
                bind_id: 1,
                kind: BindKind::Tcp,
                mode: BindMode::Pull,
                container_port: 15432,
                route: None,
                traffic: BindTraffic {
                    bytes_sent: 40,
                    bytes_received: 6,
                    streams_opened: 2,
                },
            }],
            parked: false,
            carrier_losses: 3,
            carrier_rejoins: 2,
        }
    }

    #[test]
    fn exposition_has_every_family() {
        let facts = ServerFacts {
            routes: 0,
            fd_permits_available: Some(1000),
            draining: false,
            counters: CountersSnapshot {
                requests_by_status: [(200, 7), (404, 1)].into_iter().collect(),
                refusals_by_code: [(11, 2)].into_iter().collect(),
                resumes: 3,
                takeovers: 1,
                protocol_errors: 0,
                carriers_lost: 5,
                carriers_rejoined: 4,
            },
            over_budget: 4,
            clients: vec![ClientFacts {
                name: "alice".into(),
                sessions: 1,
                bindings: 1,
                bytes_sent: 150,
                bytes_received: 9,
                refused_binds: [("FORBIDDEN_ROUTE", 2)].into_iter().collect(),
            }],
        };
        let text = render(&[view()], facts);
        for line in [
            "hoody_tunnel_sessions_active 1",
            "hoody_tunnel_bindings_active{kind=\"tcp\",mode=\"pull\"} 1",
            "hoody_tunnel_bindings_active{kind=\"http\",mode=\"expose\"} 0",
            "hoody_tunnel_fd_permits_available 1000",
            "underpass_http_requests_total{status=\"200\"} 7",
            "underpass_handshake_refusals_total{code=\"11\"} 2",
            "underpass_resumes_total 3",
            "underpass_takeovers_total 1",
            "underpass_connections_over_budget_total 4",
            "underpass_sessions_active 1",
            "underpass_carriers_active 1",
            "underpass_session_carriers{session=\"s_abc\"} 1",
            "underpass_session_carriers_granted{session=\"s_abc\"} 2",
            "underpass_carrier_lost_total 5",
            "underpass_carrier_rejoined_total 4",
            "underpass_streams_active 3",
            "underpass_bytes_sent_total{session=\"s_abc\"} 100",
            "underpass_bytes_received_total{session=\"s_abc\"} 7",
            "underpass_flow_control_stalls_total{session=\"s_abc\"} 1",
            "underpass_streams_opened_total{session=\"s_abc\"} 5",
            "underpass_carrier_rtt_seconds{session=\"s_abc\",carrier=\"0\"} 0.002",
            "underpass_binding_bytes_sent_total{session=\"s_abc\",bind_id=\"1\",kind=\"tcp\",mode=\"pull\",route=\"\",port=\"15432\"} 40",
            "underpass_binding_bytes_received_total{session=\"s_abc\",bind_id=\"1\",kind=\"tcp\",mode=\"pull\",route=\"\",port=\"15432\"} 6",
            "underpass_binding_streams_opened_total{session=\"s_abc\",bind_id=\"1\",kind=\"tcp\",mode=\"pull\",route=\"\",port=\"15432\"} 2",
            "underpass_build_info{version=\"",
            "underpass_client_sessions{client=\"alice\"} 1",
            "underpass_client_bindings{client=\"alice\"} 1",
            "underpass_client_bytes_sent_total{client=\"alice\"} 150",
            "underpass_client_bytes_received_total{client=\"alice\"} 9",
            "underpass_client_refused_binds_total{client=\"alice\",code=\"FORBIDDEN_ROUTE\"} 2",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // A dead carrier's last RTT is stale: no series for it.
        assert!(!text.contains("carrier=\"1\""), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn empty_server_still_reports_totals() {
        let facts = ServerFacts {
            routes: 0,
            fd_permits_available: None,
            draining: true,
            counters: CountersSnapshot::default(),
            over_budget: 0,
            clients: Vec::new(),
        };
        let text = render(&[], facts);
        assert!(text.contains("hoody_tunnel_sessions_active 0"), "{text}");
        assert!(text.contains("underpass_draining 1"), "{text}");
        assert!(
            !text.contains("hoody_tunnel_fd_permits_available"),
            "{text}"
        );
    }
}
