//! The session table: every authenticated client session, its carriers' join tickets and its
//! bindings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;

use tokio::sync::Notify;

use super::clients::Client;
use crate::mux::Session;
use crate::proto::{BindId, BindKind, BindMode, ProtocolVersion};

/// A join ticket handed out in HELLO_OK.
#[derive(Clone)]
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

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("index", &self.index)
            .field("nonce", &crate::redact::REDACTED)
            .field("expires", &self.expires)
            .field("used", &self.used)
            .finish()
    }
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

/// The mux currently serving a session, and whether the session is parked.
#[derive(Debug)]
struct Current {
    session: Session,
    /// Bumped by every resume, so a task can tell that its mux was replaced.
    generation: u64,
    /// Set while the session waits for a resume after losing carrier 0.
    parked_until: Option<Instant>,
}

/// One session: live, or parked for resume. Its mux may be replaced by a resume; its id,
/// bindings and routes stay.
#[derive(Debug)]
pub struct SessionEntry {
    /// Session id.
    pub id: String,
    /// The client it authenticated as (its scope is looked up anew at each decision).
    pub client: Arc<Client>,
    /// Address of carrier 0's peer (of the first connection).
    pub peer: Option<SocketAddr>,
    /// v1 or v2.
    pub version: ProtocolVersion,
    /// Carriers granted by the latest HELLO_OK (a resume may grant another number).
    connections_granted: AtomicU32,
    /// Outstanding join tickets.
    pub tickets: Mutex<Vec<Ticket>>,
    /// Bindings by id.
    pub bindings: Mutex<HashMap<BindId, BindingRecord>>,
    /// Carriers lost and re-joined over the session's life.
    pub carrier_counts: super::carrier_tickets::CarrierCounts,
    current: Mutex<Current>,
    resumed: Notify,
    no_park: AtomicBool,
}

impl SessionEntry {
    /// A session of `client` served by `session`.
    pub fn new(
        id: String,
        client: Arc<Client>,
        session: Session,
        peer: Option<SocketAddr>,
        version: ProtocolVersion,
        connections_granted: u32,
        tickets: Vec<Ticket>,
    ) -> Self {
        Self {
            id,
            client,
            peer,
            version,
            connections_granted: AtomicU32::new(connections_granted),
            tickets: Mutex::new(tickets),
            bindings: Mutex::new(HashMap::new()),
            carrier_counts: Default::default(),
            current: Mutex::new(Current {
                session,
                generation: 0,
                parked_until: None,
            }),
            resumed: Notify::new(),
            no_park: AtomicBool::new(false),
        }
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The mux serving this session now.
    pub fn session(&self) -> Session {
        self.current().session.clone()
    }

    /// The mux and its generation (see [`resume_with`](Self::resume_with)).
    pub fn session_and_generation(&self) -> (Session, u64) {
        let c = self.current();
        (c.session.clone(), c.generation)
    }

    /// Current generation: it changes when a resume replaces the mux.
    pub fn generation(&self) -> u64 {
        self.current().generation
    }

    /// Carriers granted to the session's current connection: at most this many live at once.
    pub fn connections_granted(&self) -> u32 {
        self.connections_granted.load(Ordering::Relaxed)
    }

    /// A resume's HELLO_OK granted `granted` carriers: tickets and listings follow it.
    pub fn set_connections_granted(&self, granted: u32) {
        self.connections_granted.store(granted, Ordering::Relaxed);
    }

    /// True while parked, waiting for a resume.
    pub fn is_parked(&self) -> bool {
        self.current().parked_until.is_some()
    }

    /// Parks the session until `until` unless a resume already replaced generation `gen`.
    pub fn park(&self, generation: u64, until: Instant) -> bool {
        let mut c = self.current();
        if c.generation != generation {
            return false;
        }
        c.parked_until = Some(until);
        true
    }

    /// Waits until a resume replaces the mux or parking is forbidden.
    pub async fn resumed(&self) {
        self.resumed.notified().await
    }

    /// Ends the session for good when it next loses its mux (admin kill, shutdown); a session
    /// already parked stops waiting for a resume.
    pub fn forbid_parking(&self) {
        self.no_park.store(true, Ordering::Relaxed);
        self.resumed.notify_one();
    }

    /// True when the session may be parked.
    pub fn may_park(&self) -> bool {
        !self.no_park.load(Ordering::Relaxed)
    }

    /// Replaces the mux after a HELLO that resumes this session. Accepted while parked within
    /// the grace period, or while the old mux is already dead or half-open (the client knows
    /// better than we do that its connection is gone): the old mux is closed then.
    /// Returns false (and changes nothing) when the grace period ran out or the session was
    /// closed on purpose.
    pub fn resume_with(&self, session: Session, now: Instant) -> bool {
        let old = {
            let mut c = self.current();
            if !Self::resumable(&c, now) || !self.may_park() {
                return false;
            }
            c.parked_until = None;
            c.generation += 1;
            std::mem::replace(&mut c.session, session)
        };
        old.close(
            crate::proto::ErrorCode::CANCEL,
            "session resumed on a new connection",
        );
        // The client's totals keep what the old connection carried.
        self.client
            .usage
            .retire(&old.inspect(|st| st.stats().clone()));
        self.resumed.notify_one();
        true
    }

    /// True if a resume at `now` would be accepted.
    pub fn can_resume(&self, now: Instant) -> bool {
        self.may_park() && Self::resumable(&self.current(), now)
    }

    /// Parked within the grace period, or not parked at all (the old mux is dead or half-open).
    fn resumable(c: &Current, now: Instant) -> bool {
        !matches!(c.parked_until, Some(t) if now >= t)
    }

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

    /// Adds a session unless `limit` sessions exist already, or its client already has as
    /// many as its scope allows.
    pub fn insert(&self, entry: Arc<SessionEntry>, limit: usize) -> bool {
        let mut map = self.lock();
        let of_client = entry.client.scope.max_sessions.map(|max| {
            let n = map
                .values()
                .filter(|e| e.client.same_as(&entry.client))
                .count();
            n >= max
        });
        if map.len() >= limit || of_client == Some(true) {
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

    /// Sessions of `client` now (live or parked).
    pub fn count_of(&self, client: &Client) -> usize {
        self.lock()
            .values()
            .filter(|e| e.client.same_as(client))
            .count()
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
