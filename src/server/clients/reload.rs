//! Re-reading the clients file while the server runs (SIGHUP, `POST .../api/v1/reload`): a bad
//! file changes nothing; a good one replaces the clients at once, ends the sessions of clients
//! that are gone (or whose token changed), and revokes exactly the bindings a shrunk scope no
//! longer covers. Limits on counts (sessions, bindings) and the bandwidth limit apply from then
//! on; bindings are not taken away to meet a lower count.

use std::sync::Arc;

use super::scope::wants_of_record;
use super::Client;
use crate::proto::{BindId, ErrorCode};
use crate::server::bindings::revoke_with;
use crate::server::sessions::SessionEntry;
use crate::server::state::ServerState;

/// What a reload did.
#[derive(Debug, Clone, Default)]
pub struct ReloadReport {
    /// Clients in force now, `default` included.
    pub clients: Vec<String>,
    /// Sessions ended because their client is gone or has a new token.
    pub ended_sessions: Vec<String>,
    /// Bindings revoked: session, binding, why.
    pub revoked: Vec<(String, BindId, String)>,
}

/// Reads the clients file again and applies it. The error says why the file was refused; the
/// clients before the call then stay in force.
pub fn reload(state: &Arc<ServerState>) -> Result<ReloadReport, String> {
    let Some(path) = state.clients.file() else {
        return Err("the server runs without --clients; there is nothing to reload".into());
    };
    let clients = state.clients.read().map_err(|e| {
        tracing::error!(file = %path.display(), error = %e, "clients file refused; the previous clients stay in force");
        format!("{e}; the previous clients stay in force")
    })?;
    state.clients.replace(clients.clone());
    let mut report = ReloadReport {
        clients: clients.iter().map(|c| c.name.to_string()).collect(),
        ..ReloadReport::default()
    };
    for entry in state.sessions.all() {
        let now = state.clients.current(&entry.client.name);
        match now {
            Some(c) if c.token.ct_eq(&entry.client.token) => {
                report.revoked.extend(shrink(state, &entry, &c));
            }
            gone => {
                let why = if gone.is_some() {
                    format!("client '{}' has a new token", entry.client.name)
                } else {
                    format!(
                        "client '{}' was removed from the server's clients",
                        entry.client.name
                    )
                };
                tracing::info!(session = %entry.id, client = %entry.client.name, "{why}; ending its session");
                // Not parked: a client that is gone has nothing to resume.
                entry.forbid_parking();
                entry.session().close(ErrorCode::AUTH, &why);
                report.ended_sessions.push(entry.id.clone());
            }
        }
    }
    tracing::info!(
        file = %path.display(),
        clients = report.clients.len(),
        ended_sessions = report.ended_sessions.len(),
        revoked_bindings = report.revoked.len(),
        "clients file reloaded"
    );
    Ok(report)
}

/// Revokes the bindings of `entry` that `client`'s scope no longer covers.
fn shrink(
    state: &Arc<ServerState>,
    entry: &Arc<SessionEntry>,
    client: &Client,
) -> Vec<(String, BindId, String)> {
    let outside: Vec<(BindId, String)> = entry
        .bindings()
        .values()
        .filter_map(|record| {
            wants_of_record(record)
                .iter()
                .find_map(|want| client.scope.admit(&client.name, want).err())
                .map(|refusal| (record.bind_id, refusal.message))
        })
        .collect();
    outside
        .into_iter()
        .map(|(bind_id, message)| {
            let reason = format!("clients file reloaded: {message}");
            tracing::info!(session = %entry.id, client = %client.name, bind_id, %reason, "binding revoked");
            revoke_with(state, &entry.id, bind_id, ErrorCode::CANCEL, &reason);
            (entry.id.clone(), bind_id, reason)
        })
        .collect()
}
