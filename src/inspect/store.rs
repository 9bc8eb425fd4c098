//! The capture store: a ring of the last N exchanges, the tunnels they come through, and a
//! broadcast of every change for the web UI and for embedding programs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::record::{Exchange, NewRecord, NewRequest, Record};
use super::tunnel::TunnelEntry;
use crate::proto::StreamOpen;

/// Limits of the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectConfig {
    /// Bytes kept of each request body and each response body; the rest is counted only.
    pub body_cap: usize,
    /// Exchanges kept; the oldest goes first.
    pub max_exchanges: usize,
}

impl InspectConfig {
    /// Default body cap: 1 MiB.
    pub const DEFAULT_BODY_CAP: usize = 1024 * 1024;
    /// Default number of exchanges kept: 500.
    pub const DEFAULT_MAX_EXCHANGES: usize = 500;
}

impl Default for InspectConfig {
    fn default() -> Self {
        Self {
            body_cap: Self::DEFAULT_BODY_CAP,
            max_exchanges: Self::DEFAULT_MAX_EXCHANGES,
        }
    }
}

/// A change in the store. Subscribers that fall more than [`EVENT_BACKLOG`] events behind get
/// `RecvError::Lagged` and should re-read [`Inspector::exchanges`].
#[derive(Debug, Clone)]
pub enum InspectEvent {
    /// A request arrived (its body may still be streaming in).
    Started(Exchange),
    /// Its response head arrived.
    Responded(Exchange),
    /// It is over: final timings, bodies as captured. Sent again when a request body the app
    /// did not read ends after the response (the inspector reads it anyway, up to its cap).
    Completed(Exchange),
    /// Every exchange was deleted.
    Cleared,
}

/// Events a subscriber may fall behind by before it loses some.
pub const EVENT_BACKLOG: usize = 1024;

pub(crate) struct Shared {
    pub(crate) config: InspectConfig,
    ring: Mutex<VecDeque<Exchange>>,
    next_id: AtomicU64,
    id_prefix: u32,
    pub(crate) events: broadcast::Sender<InspectEvent>,
    pub(crate) tunnels: Mutex<Vec<TunnelEntry>>,
}

/// The request inspector's capture: attach it to http exposes
/// ([`HttpExpose::inspector`](crate::client::HttpExpose::inspector)), then read, subscribe,
/// replay or clear. Clones share it. Serve it to a browser with [`serve`](super::serve).
#[derive(Clone)]
pub struct Inspector {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Inspector {
    /// An empty capture with these limits.
    pub fn new(config: InspectConfig) -> Self {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        Self {
            shared: Arc::new(Shared {
                config,
                ring: Mutex::new(VecDeque::new()),
                next_id: AtomicU64::new(1),
                id_prefix: rand::random(),
                events,
                tunnels: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Its limits.
    pub fn config(&self) -> InspectConfig {
        self.shared.config
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<InspectEvent> {
        self.shared.events.subscribe()
    }

    fn ring(&self) -> MutexGuard<'_, VecDeque<Exchange>> {
        self.shared.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exchanges kept, newest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.ring().iter().rev().cloned().collect()
    }

    /// The exchange with this id, if it is still kept.
    pub fn get(&self, id: &str) -> Option<Exchange> {
        self.ring().iter().find(|e| e.id() == id).cloned()
    }

    /// Deletes every exchange (those still running are no longer reported either).
    pub fn clear(&self) {
        for e in self.ring().drain(..) {
            e.0.forget();
        }
        let _ = self.shared.events.send(InspectEvent::Cleared);
    }

    /// The next id: the prefix and a counter, 8 hex digits each (written digit by digit: one
    /// is made for every request).
    fn next_id(&self) -> String {
        let n = self.shared.next_id.fetch_add(1, Ordering::Relaxed) as u32;
        let both = (u64::from(self.shared.id_prefix) << 32) | u64::from(n);
        (0..16)
            .rev()
            .map(|i| char::from(b"0123456789abcdef"[((both >> (i * 4)) & 0xf) as usize]))
            .collect()
    }

    /// Records a request from the tunnel (shared with the data path, not copied); the data
    /// path then feeds the returned record.
    pub(crate) fn start(&self, tunnel: Arc<str>, open: Arc<StreamOpen>) -> Arc<Record> {
        self.insert(tunnel, NewRequest::Open(open), None, None)
    }

    /// Records a new exchange (a tunnel request, or a replay with its whole body).
    pub(crate) fn insert(
        &self,
        tunnel: Arc<str>,
        request: NewRequest,
        replay_of: Option<String>,
        body: Option<bytes::Bytes>,
    ) -> Arc<Record> {
        let record = Arc::new(Record::new(
            NewRecord {
                id: self.next_id(),
                tunnel,
                request,
                replay_of,
                body,
                cap: self.shared.config.body_cap,
            },
            self.shared.events.clone(),
        ));
        {
            let mut ring = self.ring();
            ring.push_back(Exchange(record.clone()));
            while ring.len() > self.shared.config.max_exchanges {
                if let Some(old) = ring.pop_front() {
                    old.0.forget();
                }
            }
        }
        record.announce(InspectEvent::Started);
        record
    }
}
