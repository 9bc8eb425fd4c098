//! Host routes: route name -> the http bindings that serve it, with single/cluster semantics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::sessions::SessionEntry;

use crate::http::edge::address_policy::AddressPolicy;
use crate::http::edge::basic_auth::{same_policy, BasicAuthPolicy};
use crate::mux::Session;
use crate::proto::{BindErrorCode, BindId, RouteMode};

/// One binding serving a route (or a dedicated port).
#[derive(Debug, Clone)]
pub struct Holder {
    /// Its binding id.
    pub bind_id: BindId,
    /// The session; its mux can change when the client resumes.
    pub entry: Arc<SessionEntry>,
}

impl Holder {
    /// Binding `bind_id` of `entry`.
    pub fn new(entry: &Arc<SessionEntry>, bind_id: BindId) -> Self {
        Self {
            bind_id,
            entry: entry.clone(),
        }
    }

    /// Id of the session holding the binding.
    pub fn session_id(&self) -> &str {
        &self.entry.id
    }

    /// The mux to open streams on now.
    pub fn session(&self) -> Session {
        self.entry.session()
    }
}

/// Who may use a route or a dedicated port: its Basic Auth and its visitor address policy.
/// Cluster holders of one route must agree on both.
#[derive(Debug, Clone, Default)]
pub struct RouteGuard {
    /// Basic Auth to check first.
    pub auth: Option<BasicAuthPolicy>,
    /// Visitor addresses admitted; `None`: everyone.
    pub addresses: Option<AddressPolicy>,
}

/// A route and its holders.
#[derive(Debug)]
struct RouteEntry {
    mode: RouteMode,
    guard: RouteGuard,
    holders: Vec<Holder>,
    next: usize,
}

/// What a request for a route gets: the holder to use and the route's guard.
#[derive(Debug, Clone)]
pub struct RoutePick {
    /// Binding that serves this request.
    pub holder: Holder,
    /// Checks before the request is proxied.
    pub guard: RouteGuard,
}

/// Why a route claim failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimError {
    /// BIND_ERR code.
    pub code: BindErrorCode,
    /// Message for the client.
    pub message: String,
}

/// Every host route of the server.
#[derive(Debug, Default)]
pub struct RouteTable {
    inner: Mutex<HashMap<String, RouteEntry>>,
}

impl RouteTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, RouteEntry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True if the route has at least one holder.
    pub fn is_taken(&self, name: &str) -> bool {
        self.lock().get(name).is_some_and(|r| !r.holders.is_empty())
    }

    /// Claims `name` for `holder`. Single mode refuses a second holder unless `takeover`, in
    /// which case the previous holders are returned so the caller can revoke them; cluster
    /// holders must agree on mode, Basic Auth and address policy. Takeover and cluster work
    /// only between sessions of one client: another client's route is refused either way.
    pub fn claim(
        &self,
        name: &str,
        mode: RouteMode,
        guard: RouteGuard,
        takeover: bool,
        holder: Holder,
    ) -> Result<Vec<Holder>, ClaimError> {
        let mut map = self.lock();
        let entry = map.entry(name.to_string()).or_insert_with(|| RouteEntry {
            mode,
            guard: guard.clone(),
            holders: Vec::new(),
            next: 0,
        });
        // The other client's name is not told: clients need not know who else uses the server.
        if entry
            .holders
            .iter()
            .any(|h| !h.entry.client.same_as(&holder.entry.client))
        {
            return Err(ClaimError {
                code: BindErrorCode::RouteTaken,
                message: format!(
                    "route '{name}' is held by another client; takeover and cluster mode work only between sessions of the same client"
                ),
            });
        }
        if entry.holders.is_empty() || takeover {
            let previous = std::mem::take(&mut entry.holders);
            entry.mode = mode;
            entry.guard = guard;
            entry.holders.push(holder);
            return Ok(previous);
        }
        if entry.mode != mode {
            return Err(ClaimError {
                code: BindErrorCode::ModeMismatch,
                message: format!(
                    "route '{name}' is held in {} mode; all clients of a route must use the same mode",
                    mode_name(entry.mode)
                ),
            });
        }
        if mode == RouteMode::Single {
            return Err(ClaimError {
                code: BindErrorCode::RouteTaken,
                message: format!(
                    "route '{name}' is already held by another client (use --mode cluster to share it or --takeover to claim it)"
                ),
            });
        }
        if !same_policy(entry.guard.auth.as_ref(), guard.auth.as_ref()) {
            return Err(ClaimError {
                code: BindErrorCode::ModeMismatch,
                message: format!(
                    "route '{name}' is held with different Basic Auth settings; cluster clients must agree"
                ),
            });
        }
        if entry.guard.addresses != guard.addresses {
            return Err(ClaimError {
                code: BindErrorCode::ModeMismatch,
                message: format!(
                    "route '{name}' is held with different --cidr-allow/--cidr-deny lists; cluster clients must agree"
                ),
            });
        }
        entry.holders.push(holder);
        Ok(Vec::new())
    }

    /// Removes one holder; the route disappears with its last holder.
    pub fn release(&self, name: &str, session_id: &str, bind_id: BindId) {
        let mut map = self.lock();
        if let Some(entry) = map.get_mut(name) {
            entry
                .holders
                .retain(|h| !(h.session_id() == session_id && h.bind_id == bind_id));
            if entry.holders.is_empty() {
                map.remove(name);
            }
        }
    }

    /// The holder for the next request on `name`: round robin over live sessions; when every
    /// holder is parked for resume, one of them (the request then gets 503, not 404).
    pub fn pick(&self, name: &str) -> Option<RoutePick> {
        let mut map = self.lock();
        let entry = map.get_mut(name)?;
        let n = entry.holders.len();
        for _ in 0..n {
            let i = entry.next % n;
            entry.next = entry.next.wrapping_add(1);
            let h = &entry.holders[i];
            if !h.session().is_closed() {
                return Some(RoutePick {
                    holder: h.clone(),
                    guard: entry.guard.clone(),
                });
            }
        }
        entry.holders.first().map(|h| RoutePick {
            holder: h.clone(),
            guard: entry.guard.clone(),
        })
    }

    /// Route names and their holder counts (admin API, tests).
    pub fn snapshot(&self) -> Vec<(String, usize)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.holders.len()))
            .collect()
    }
}

fn mode_name(mode: RouteMode) -> &'static str {
    match mode {
        RouteMode::Single => "single",
        RouteMode::Cluster => "cluster",
    }
}
