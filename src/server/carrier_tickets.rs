//! Carriers that come back, server side: TICKET_REQUEST hands a client a fresh single-use join
//! ticket for a carrier it lost, JOIN with it re-attaches the carrier, and both are counted.
//!
//! At most `connectionsGranted` carriers live per session: each index holds one carrier, and a
//! JOIN for an index that is alive is refused. One ticket per index is outstanding at a time (a
//! new one voids the old), each admits one carrier and expires after the join-ticket TTL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use tokio::time::Instant;

use super::sessions::{SessionEntry, Ticket};
use super::state::ServerState;
use crate::mux::Session;
use crate::proto::{CarrierTicket, Frame, JoinErr, ProtocolVersion, TicketRequest};

/// JOIN_ERR code: the session lost carrier 0 and waits for a resume (or is ending).
pub const SESSION_PARKED: &str = "SESSION_PARKED";
/// JOIN_ERR code: the index already has a live carrier.
pub const CARRIER_ACTIVE: &str = "CARRIER_ACTIVE";

impl Ticket {
    /// A fresh ticket for carrier `index`, valid for `ttl`.
    pub fn issue(index: u32, ttl: Duration) -> Self {
        Self {
            index,
            nonce: Alphanumeric.sample_string(&mut rand::rng(), 32),
            expires: Instant::now() + ttl,
            used: false,
        }
    }
}

/// Carrier losses and re-joins of one session, over its whole life (resumes included).
#[derive(Debug, Default)]
pub struct CarrierCounts {
    lost: AtomicU64,
    rejoined: AtomicU64,
}

impl CarrierCounts {
    /// Carriers lost while the session ran.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Carriers that re-joined in place of a lost one.
    pub fn rejoined(&self) -> u64 {
        self.rejoined.load(Ordering::Relaxed)
    }
}

/// Counts and logs a carrier the session lost (the mux already reset its streams).
pub fn carrier_lost(state: &ServerState, entry: &SessionEntry, index: usize, cause: &str) {
    state.counters.carrier_lost();
    entry.carrier_counts.lost.fetch_add(1, Ordering::Relaxed);
    tracing::info!(session = %entry.id, carrier = index, cause, "carrier lost");
}

/// Answers TICKET_REQUEST: the client lost carrier `index` and wants to re-join it.
pub fn answer(
    state: &ServerState,
    entry: &SessionEntry,
    session: &Session,
    req: TicketRequest,
) -> Frame {
    let index = req.index;
    let granted = entry.connections_granted();
    if entry.version != ProtocolVersion::V2 {
        return refuse(index, "NOT_STRIPED", "a v1 session has a single carrier");
    }
    if index == 0 || index >= granted {
        return refuse(
            index,
            "INVALID_INDEX",
            &format!("carrier {index} is not one of 1..{} granted", granted - 1),
        );
    }
    let slot = index as usize;
    if session.inspect(|st| st.carrier_alive(slot)) {
        // The client knows better than our keepalive that the connection is gone.
        session.drop_carrier(slot, "the client reported it lost");
    }
    // Read after the carrier is dead on our side too: the count is final.
    let received = session.inspect(|st| st.carrier_received(slot));
    if let Some(peer_received) = req.received_bytes {
        if let Some(refunded) = session.settle_lost_carrier(slot, peer_received) {
            tracing::debug!(session = %entry.id, carrier = index, refunded, "credit of the lost carrier settled");
        }
    }
    let mut answer = if state.is_draining() {
        CarrierTicket::refused(index, "SHUTTING_DOWN", "the server is shutting down")
    } else if session.is_closed() {
        CarrierTicket::refused(index, SESSION_PARKED, "the session is not running")
    } else {
        let ttl = state.config.limits.join_ticket_ttl;
        let ticket = entry.issue_ticket(index, ttl);
        CarrierTicket {
            index,
            nonce: Some(ticket.nonce),
            expires_in_ms: Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
            error: None,
            received_bytes: None,
        }
    };
    answer.received_bytes = Some(received);
    Frame::Ticket(answer)
}

fn refuse(index: u32, code: &str, message: &str) -> Frame {
    Frame::Ticket(CarrierTicket::refused(index, code, message))
}

/// Checks a JOIN whose ticket was valid: the session must be running and the index free.
pub fn admit(entry: &SessionEntry, index: u32) -> Result<(), JoinErr> {
    let session = entry.session();
    if entry.is_parked() || session.is_closed() {
        return Err(JoinErr {
            code: SESSION_PARKED.into(),
            message: "the session lost its main carrier; resume it with HELLO first".into(),
        });
    }
    if session.inspect(|st| st.carrier_alive(index as usize)) {
        return Err(JoinErr {
            code: CARRIER_ACTIVE.into(),
            message: format!("carrier {index} of this session is connected"),
        });
    }
    Ok(())
}

/// Counts and logs a carrier that joined; `attachment` > 1 means it replaced a lost one.
pub fn joined(state: &ServerState, entry: &SessionEntry, index: u32, attachment: u64) {
    if attachment > 1 {
        state.counters.carrier_rejoined();
        entry
            .carrier_counts
            .rejoined
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(session = %entry.id, carrier = index, "carrier re-joined");
    } else {
        tracing::debug!(session = %entry.id, carrier = index, "carrier joined");
    }
}

impl SessionEntry {
    /// A new ticket for carrier `index`; an older one for that index not used yet is void.
    pub fn issue_ticket(&self, index: u32, ttl: Duration) -> Ticket {
        let ticket = Ticket::issue(index, ttl);
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        tickets.retain(|t| t.index != index);
        tickets.push(ticket.clone());
        ticket
    }
}
