//! The session table: every authenticated client session, its carriers' join tickets and its
//! bindings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::mux::Session;
use crate::proto::{BindId, BindKind, BindMode, ProtocolVersion};

/// A join ticket handed out in HELLO_OK.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// Carrier index it admits.
    pub index: u32,
    /// Secret nonce.
    pub nonce: String,
    /// After this it is refused.
    pub expires: Instant,
    /// A ticket admits one carrier only.
    pub used: bool,
}

/// One binding a session holds.
#[derive(Debug)]
pub struct BindingRecord {
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
    /// Listener task of a dedicated port, aborted on unbind.
    pub listener: Option<tokio::task::AbortHandle>,
}

impl Drop for BindingRecord {
    fn drop(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
    }
}

/// One live session.
#[derive(Debug)]
pub struct SessionEntry {
    /// Session id.
    pub id: String,
    /// The mux.
    pub session: Session,
    /// Address of carrier 0's peer.
    pub peer: Option<SocketAddr>,
    /// v1 or v2.
    pub version: ProtocolVersion,
    /// Carriers granted.
    pub connections_granted: u32,
    /// Outstanding join tickets.
    pub tickets: Mutex<Vec<Ticket>>,
    /// Bindings by id.
    pub bindings: Mutex<HashMap<BindId, BindingRecord>>,
}

impl SessionEntry {
    /// Locks the bindings.
    pub fn bindings(&self) -> MutexGuard<'_, HashMap<BindId, BindingRecord>> {
        self.bindings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Consumes the ticket for `index` if `nonce` matches and it is fresh.
    pub fn redeem_ticket(&self, index: u32, nonce: &str, now: Instant) -> bool {
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        for t in tickets.iter_mut() {
            if t.index == index
                && !t.used
                && now < t.expires
                && crate::http::edge::token::tokens_equal(&t.nonce, nonce)
            {
                t.used = true;
                return true;
            }
        }
        false
    }
}

/// All sessions by id.
#[derive(Debug, Default)]
pub struct SessionTable {
    inner: Mutex<HashMap<String, Arc<SessionEntry>>>,
}

impl SessionTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<SessionEntry>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a session unless `limit` sessions exist already.
    pub fn insert(&self, entry: Arc<SessionEntry>, limit: usize) -> bool {
        let mut map = self.lock();
        if map.len() >= limit {
            return false;
        }
        map.insert(entry.id.clone(), entry);
        true
    }

    /// Looks a session up.
    pub fn get(&self, id: &str) -> Option<Arc<SessionEntry>> {
        self.lock().get(id).cloned()
    }

    /// Removes a session.
    pub fn remove(&self, id: &str) -> Option<Arc<SessionEntry>> {
        self.lock().remove(id)
    }

    /// Snapshot of every session.
    pub fn all(&self) -> Vec<Arc<SessionEntry>> {
        self.lock().values().cloned().collect()
    }

    /// Sessions now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
