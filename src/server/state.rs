//! Shared state of a running server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use super::address_cap::AddressCap;
use super::auth_throttle::AuthThrottle;
use super::clients::ClientRegistry;
use super::config::ServerConfig;
use super::counters::Counters;
use super::fd_budget::FdBudget;
use super::routes::RouteTable;
use super::sessions::SessionTable;
use super::visitor_rate::VisitorRate;

/// Everything the server's tasks share.
#[derive(Debug)]
pub struct ServerState {
    /// Settings.
    pub config: ServerConfig,
    /// Address the main listener is bound to.
    pub local_addr: SocketAddr,
    /// The clients that may connect, and their scopes.
    pub clients: ClientRegistry,
    /// Live sessions.
    pub sessions: SessionTable,
    /// Host routes.
    pub routes: RouteTable,
    /// Permits for accepted connections.
    pub fd_budget: FdBudget,
    /// Event counters for metrics.
    pub counters: Counters,
    /// Per-visitor start rate, when limited.
    pub visitor_rate: Option<Arc<VisitorRate>>,
    /// Connections per visitor address (`--max-connections-per-ip`), when capped.
    pub address_cap: Option<AddressCap>,
    /// Wrong Basic Auth credentials per visitor address, when throttled.
    pub auth_throttle: Option<AuthThrottle>,
    next_bind_id: AtomicU32,
    draining: AtomicBool,
}

impl ServerState {
    /// Fresh state for a server bound at `local_addr`, admitting `clients`.
    pub fn new(config: ServerConfig, local_addr: SocketAddr, clients: ClientRegistry) -> Self {
        let fd_budget = FdBudget::new(config.limits.fd_budget);
        let visitor_rate = config
            .limits
            .visitor_rate
            .map(|r| Arc::new(VisitorRate::new(r)));
        let limits = &config.limits;
        let address_cap = (limits.max_connections_per_ip > 0)
            .then(|| AddressCap::new(limits.max_connections_per_ip));
        let auth_throttle =
            std::num::NonZeroU32::new(limits.basic_auth_failures_per_minute).map(AuthThrottle::new);
        Self {
            visitor_rate,
            address_cap,
            auth_throttle,
            config,
            local_addr,
            clients,
            sessions: SessionTable::default(),
            routes: RouteTable::default(),
            fd_budget,
            counters: Counters::default(),
            next_bind_id: AtomicU32::new(1),
            draining: AtomicBool::new(false),
        }
    }

    /// A server-wide unique binding id.
    pub fn next_bind_id(&self) -> u32 {
        self.next_bind_id.fetch_add(1, Ordering::Relaxed)
    }

    /// True while shutting down (readiness answers 503).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts draining.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Public URL of a route, as clients should print it.
    pub fn route_url(&self, route: &str, scheme: &str, port: Option<u16>) -> Option<String> {
        let domain = self.config.domain.as_deref()?;
        let host = if route == crate::http::edge::routing::ROOT_ROUTE {
            domain.to_string()
        } else {
            format!("{route}.{domain}")
        };
        Some(match port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        })
    }
}
