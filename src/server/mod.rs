//! The public server: one HTTP listener for public traffic, the WebSocket control endpoint and
//! health probes; a session table; host routes; port bindings.

mod address_cap;
mod admin;
mod admission;
mod auth_throttle;
mod bindings;
mod carrier_tickets;
pub mod clients;
pub mod config;
pub(crate) mod counters;
mod fd_budget;
mod handshake;
mod health;
mod listener;
mod ports;
#[cfg(feature = "quic")]
mod quic;
mod routes;
mod session_task;
mod sessions;
mod state;
mod visitor_rate;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[cfg(feature = "quic")]
pub use config::QuicListen;
pub use config::{Limits, ServerConfig};
pub use counters::{Counters, CountersSnapshot};
pub use listener::{CONTROL_PATH, RESERVED_PREFIX};
pub use state::ServerState;

use crate::mux::Session;

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
#[derive(Debug)]
pub struct Server {
    state: Arc<ServerState>,
    accept: JoinHandle<()>,
    control: Option<(SocketAddr, JoinHandle<()>)>,
    quic: Option<(SocketAddr, JoinHandle<()>)>,
    #[cfg(feature = "quic")]
    quic_pin: Option<[u8; 32]>,
}

impl Server {
    /// Binds the main listener and starts serving. A clients file that cannot be read or has
    /// an error fails the start, with the line in the message.
    pub async fn start(config: ServerConfig) -> io::Result<Self> {
        let clients = clients::ClientRegistry::load(
            config.token.as_deref(),
            config.admin_token.as_deref(),
            config.clients_file.as_deref(),
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
        })?;
        let local_addr = listener.local_addr()?;
        let control_listener =
            match config.control_listen {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
                })?),
                None => None,
            };
        #[cfg(feature = "quic")]
        let quic_listen = config.quic.clone();
        #[cfg(feature = "quic")]
        let quic_pin = quic_listen.as_ref().map(|q| q.cert.fingerprint_sha256());
        let state = Arc::new(ServerState::new(config, local_addr, clients));
        let accept = tokio::spawn(listener::accept_loop(
            state.clone(),
            listener,
            listener::ListenerKind::Main,
        ));
        let control = match control_listener {
            Some(l) => {
                let addr = l.local_addr()?;
                let task = tokio::spawn(listener::accept_loop(
                    state.clone(),
                    l,
                    listener::ListenerKind::Control,
                ));
                Some((addr, task))
            }
            None => None,
        };
        #[cfg(feature = "quic")]
        let quic = match quic_listen {
            Some(q) => Some(quic::start(state.clone(), q)?),
            None => None,
        };
        #[cfg(not(feature = "quic"))]
        let quic = None;
        Ok(Self {
            state,
            accept,
            control,
            quic,
            #[cfg(feature = "quic")]
            quic_pin,
        })
    }

    /// SHA-256 of the QUIC certificate, for clients to pin.
    #[cfg(feature = "quic")]
    pub fn quic_cert_sha256(&self) -> Option<[u8; 32]> {
        self.quic_pin
    }

    /// Address of the hoody-compatible control listener, when one runs.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control.as_ref().map(|(addr, _)| *addr)
    }

    /// Address of the QUIC listener, when one runs.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic.as_ref().map(|(addr, _)| *addr)
    }

    /// Address of the main listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.local_addr
    }

    /// Base URL clients dial (`ws://ADDR`).
    pub fn control_url(&self) -> String {
        format!("ws://{}", self.state.local_addr)
    }

    /// Shared state (sessions, routes), for embedders and tests.
    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// Reads the clients file again and applies it (what SIGHUP and `underpass admin reload`
    /// do): sessions of removed clients end, bindings outside a shrunk scope are revoked. A bad
    /// file changes nothing and the error says why.
    pub fn reload_clients(&self) -> Result<clients::ReloadReport, String> {
        clients::reload(&self.state)
    }

    /// The mux of every live session, by session id.
    pub fn sessions(&self) -> Vec<(String, Session)> {
        self.state
            .sessions
            .all()
            .into_iter()
            .map(|e| (e.id.clone(), e.session()))
            .collect()
    }

    /// Graceful stop: readiness turns 503, every session gets GOAWAY and opens no new streams,
    /// new visitors get 503, and running streams get up to `drain` to finish. Then every session
    /// is closed and the listeners stop.
    pub async fn shutdown_within(self, drain: std::time::Duration) {
        self.state.set_draining();
        for entry in self.state.sessions.all() {
            entry.forbid_parking();
        }
        for (_, session) in self.sessions() {
            session.go_away(crate::proto::ErrorCode::NO_ERROR, "server shutting down");
        }
        let deadline = tokio::time::Instant::now() + drain;
        while tokio::time::Instant::now() < deadline && self.streams_running() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.accept.abort();
        for (_, task) in self.quic.iter().chain(self.control.iter()) {
            task.abort();
        }
        for (_, session) in self.sessions() {
            session.close(crate::proto::ErrorCode::NO_ERROR, "server shut down");
        }
        for entry in self.state.sessions.all() {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), entry.session().closed())
                    .await;
        }
    }

    /// [`shutdown_within`](Self::shutdown_within) with no time for running streams.
    pub async fn shutdown(self) {
        self.shutdown_within(std::time::Duration::ZERO).await
    }

    fn streams_running(&self) -> bool {
        self.sessions()
            .iter()
            .any(|(_, s)| s.inspect(|st| st.stream_count()) > 0)
    }
}
