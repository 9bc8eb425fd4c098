//! Carriers that come back, client side: when carrier k (not 0) of a v2 session is lost, ask the
//! server for a fresh join ticket (TICKET_REQUEST), dial, JOIN, and hand the carrier back to the
//! mux, with backoff and jitter, until the session has every carrier it was granted.
//!
//! A server that does not know TICKET_REQUEST skips it (extension range) and never answers: after
//! one unanswered request the session runs on the carriers it has, as before. Losing carrier 0
//! is not handled here: the session ends and is resumed as a whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::backoff::Backoff;
use super::connect::join;
use super::error::ClientError;
use super::options::ClientOptions;
use crate::mux::Session;
use crate::proto::{CarrierTicket, Frame, HelloOk, JoinTicket, TicketRequest};

/// First wait before a re-dial (jittered), and the ceiling the waits double up to.
const FIRST_WAIT: Duration = Duration::from_millis(250);
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A carrier that stayed up this long starts the next loss with short waits again.
const STABLE: Duration = Duration::from_secs(30);

/// The re-dialer of one mux (a resume starts another for the new mux).
#[derive(Default)]
pub(super) struct Redial {
    wake: Notify,
    pending: Mutex<HashMap<u32, oneshot::Sender<CarrierTicket>>>,
}

impl Redial {
    /// Starts re-dialling for `session` (a no-op for a session with one carrier).
    pub(super) fn start(session: &Session, hello: &HelloOk, opts: &ClientOptions) -> Arc<Self> {
        let redial = Arc::new(Self::default());
        let granted = hello.connections_granted.unwrap_or(1) as usize;
        if granted > 1 {
            tokio::spawn(run(
                redial.clone(),
                session.clone(),
                hello.session_id.clone(),
                granted,
                opts.clone(),
            ));
        }
        redial
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u32, oneshot::Sender<CarrierTicket>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The mux lost carrier `index`: re-dial it.
    pub(super) fn carrier_lost(&self, index: usize) {
        if index != 0 {
            self.wake.notify_one();
        }
    }

    /// A TICKET arrived.
    pub(super) fn ticket(&self, ticket: CarrierTicket) {
        if let Some(tx) = self.pending().remove(&ticket.index) {
            let _ = tx.send(ticket);
        }
    }
}

/// Why one re-dial attempt did not bring the carrier back.
enum Failure {
    /// Worth another try later.
    Retry(String),
    /// The server gives no tickets (does not know the extension, or refuses this index).
    NoTickets(String),
    /// The session or its mux is over: a resume takes it from here.
    SessionGone,
}

async fn run(
    redial: Arc<Redial>,
    session: Session,
    session_id: String,
    granted: usize,
    opts: ClientOptions,
) {
    let mut backoff = Backoff::new(FIRST_WAIT, MAX_WAIT);
    let mut last_rejoin: Option<Instant> = None;
    loop {
        let missing = session.inspect(|st| st.missing_carriers(granted));
        let Some(&index) = missing.first() else {
            tokio::select! {
                _ = redial.wake.notified() => {}
                _ = session.closed() => return,
            }
            if last_rejoin.is_none_or(|t| t.elapsed() >= STABLE) {
                backoff.reset();
            }
            continue;
        };
        // Even the first attempt waits a little (jittered): carriers lost together come back
        // spread out, and a carrier that dies right after each re-join backs off.
        let wait = backoff.next_wait();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = session.closed() => return,
        }
        match rejoin(&redial, &session, &session_id, index, &opts).await {
            Ok(()) => {
                last_rejoin = Some(Instant::now());
                tracing::info!(carrier = index, "carrier re-joined");
            }
            Err(Failure::Retry(why)) => {
                tracing::warn!(
                    carrier = index,
                    attempt = backoff.attempts(),
                    "re-dial failed: {why}"
                );
            }
            Err(Failure::NoTickets(why)) => {
                let up = session.inspect(|st| st.carriers_up());
                tracing::warn!(
                    carrier = index,
                    "{why}; continuing with {up} of {granted} carriers"
                );
                return;
            }
            Err(Failure::SessionGone) => return,
        }
    }
}

/// One attempt: ticket, dial, JOIN, attach.
async fn rejoin(
    redial: &Redial,
    session: &Session,
    session_id: &str,
    index: usize,
    opts: &ClientOptions,
) -> Result<(), Failure> {
    let wire_index = index as u32;
    let (tx, rx) = oneshot::channel();
    redial.pending().insert(wire_index, tx);
    // The carrier is dead on our side, so this count is final.
    let received = session.inspect(|st| st.carrier_received(index));
    let request = Frame::TicketRequest(TicketRequest {
        index: wire_index,
        received_bytes: Some(received),
    });
    session
        .send_control(&request)
        .map_err(|_| Failure::SessionGone)?;
    let ticket = tokio::select! {
        answer = tokio::time::timeout(opts.handshake_timeout, rx) => match answer {
            Ok(Ok(ticket)) => ticket,
            Ok(Err(_)) => return Err(Failure::SessionGone),
            Err(_) => {
                redial.pending().remove(&wire_index);
                return Err(Failure::NoTickets(
                    "the server does not hand out join tickets (no answer to TICKET_REQUEST)".into(),
                ));
            }
        },
        _ = session.closed() => return Err(Failure::SessionGone),
    };
    if let Some(peer_received) = ticket.received_bytes {
        session.settle_lost_carrier(index, peer_received);
    }
    if let Some(err) = ticket.error {
        return Err(match err.code.as_str() {
            "INVALID_INDEX" | "NOT_STRIPED" => Failure::NoTickets(format!(
                "the server refuses a ticket for carrier {index} ({}: {})",
                err.code, err.message
            )),
            "SESSION_PARKED" | "SHUTTING_DOWN" => Failure::SessionGone,
            _ => Failure::Retry(format!("{}: {}", err.code, err.message)),
        });
    }
    let Some(nonce) = ticket.nonce else {
        return Err(Failure::Retry("TICKET without a nonce".into()));
    };
    let ticket = JoinTicket {
        index: wire_index,
        nonce,
        expires_ms: ticket.expires_in_ms.unwrap_or(0),
    };
    let carrier = match join(opts, session_id.to_string(), ticket).await.1 {
        Ok(carrier) => carrier,
        Err(ClientError::JoinRefused { code, .. }) if code == "SESSION_PARKED" => {
            return Err(Failure::SessionGone)
        }
        Err(e) => return Err(Failure::Retry(e.to_string())),
    };
    if session.is_closed() {
        return Err(Failure::SessionGone);
    }
    session.attach_carrier(index, carrier);
    Ok(())
}
