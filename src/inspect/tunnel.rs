//! The tunnels an inspector captures: one per http binding, with its public URL and the local
//! service a replay goes to. A binding registers while it lives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};

use super::record::Watched;
use super::store::{Inspector, Shared};
use crate::http::local::LocalService;
use crate::http::tap::{Tap, Watch};
use crate::proto::StreamOpen;

/// One tunnel as `GET /api/tunnels` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Name: the route (`demo`, `up-k7m3q9t2ab`, `@`), or `port-N` for a port-only binding.
    pub name: String,
    /// Where visitors reach it.
    pub public_url: String,
    /// Where it leads: `http://127.0.0.1:3000`, or `handler` for an in-process handler.
    pub addr: String,
}

impl TunnelInfo {
    /// `https` or `http`, from the public URL.
    pub fn proto(&self) -> &'static str {
        if self.public_url.starts_with("https://") {
            "https"
        } else {
            "http"
        }
    }
}

pub(crate) struct TunnelEntry {
    key: u64,
    pub(crate) info: TunnelInfo,
    pub(crate) service: LocalService,
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A binding's registration: captures its exchanges while it lives, unregisters when dropped.
pub struct TunnelTap {
    shared: Arc<Shared>,
    key: u64,
    name: Arc<str>,
}

impl std::fmt::Debug for TunnelTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TunnelTap({})", self.name)
    }
}

impl Tap for TunnelTap {
    fn begin(&self, open: &StreamOpen) -> Option<Watch> {
        self.begin_shared(&Arc::new(open.clone()))
    }

    fn begin_shared(&self, open: &Arc<StreamOpen>) -> Option<Watch> {
        let inspector = Inspector {
            shared: self.shared.clone(),
        };
        Some(Arc::new(Watched(
            inspector.start(self.name.clone(), open.clone()),
        )))
    }
}

impl Drop for TunnelTap {
    fn drop(&mut self) {
        let key = self.key;
        Inspector::tunnels_of(&self.shared).retain(|t| t.key != key);
    }
}

impl Inspector {
    pub(crate) fn tunnels_of(shared: &Shared) -> MutexGuard<'_, Vec<TunnelEntry>> {
        shared.tunnels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a tunnel answered by `service`; its exchanges are captured through the
    /// returned tap for as long as it lives. A later tunnel with the same name replaces it in
    /// [`tunnels`](Self::tunnels) (a reconnect binds the same route again).
    pub fn attach(&self, info: TunnelInfo, service: LocalService) -> TunnelTap {
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let name: Arc<str> = info.name.as_str().into();
        let mut tunnels = Self::tunnels_of(&self.shared);
        tunnels.retain(|t| t.info.name != info.name);
        tunnels.push(TunnelEntry { key, info, service });
        TunnelTap {
            shared: self.shared.clone(),
            key,
            name,
        }
    }

    /// Sets the public URL shown for tunnel `name` (the command line knows it best: behind a
    /// TLS proxy it is `https://`, whatever the server's own listener is).
    pub fn set_public_url(&self, name: &str, url: &str) {
        for t in Self::tunnels_of(&self.shared).iter_mut() {
            if t.info.name == name {
                t.info.public_url = url.to_string();
            }
        }
    }

    /// The tunnels registered now, in the order they were made.
    pub fn tunnels(&self) -> Vec<TunnelInfo> {
        Self::tunnels_of(&self.shared)
            .iter()
            .map(|t| t.info.clone())
            .collect()
    }

    /// The service behind tunnel `name`.
    pub(crate) fn service_of(&self, name: &str) -> Option<LocalService> {
        Self::tunnels_of(&self.shared)
            .iter()
            .find(|t| t.info.name == name)
            .map(|t| t.service.clone())
    }
}
