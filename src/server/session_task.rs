//! The life of one server session: answer its BIND/UNBIND frames, serve the streams it opens
//! (`forward` bindings), park it when its carrier drops so the client can resume, and clean up
//! every binding when it ends for good.

use std::sync::Arc;
use tokio::time::Instant;

use super::bindings;
use super::carrier_tickets;
use super::sessions::SessionEntry;
use super::state::ServerState;
use crate::mux::{Session, SessionEvent};
use crate::proto::{BindRef, ErrorCode, Frame, UnbindErr};

/// Runs until the session ends for good, then removes it and all its bindings.
pub async fn run(state: Arc<ServerState>, entry: Arc<SessionEntry>) {
    loop {
        let (session, generation) = entry.session_and_generation();
        serve(&state, &entry, &session).await;
        if entry.generation() != generation {
            // A resume already replaced the mux: carry on with the new one.
            continue;
        }
        if !park(&state, &entry, &session, generation).await {
            break;
        }
    }
    let session = entry.session();
    let (code, reason) = session.closed().await;
    state.counters.session_ended(code);
    bindings::release_all(&state, &entry);
    state.sessions.remove(&entry.id);
    // Out of the table first, then into the client's totals: a scrape in between sees a
    // little less, never the same bytes twice.
    entry
        .client
        .usage
        .retire(&session.inspect(|st| st.stats().clone()));
    tracing::info!(session = %entry.id, client = %entry.client.name, %code, reason, "session closed");
}

/// Answers the events of one mux until it ends.
async fn serve(state: &Arc<ServerState>, entry: &Arc<SessionEntry>, session: &Session) {
    while let Some(event) = session.next_event().await {
        match event {
            SessionEvent::Control(Frame::Bind(bind)) => {
                let answer = bindings::bind(state, entry, bind).await;
                let _ = session.send_control(&answer);
            }
            SessionEvent::Control(Frame::Unbind(BindRef { bind_id })) => {
                let answer = if bindings::unbind(state, entry, bind_id) {
                    Frame::UnbindOk(BindRef { bind_id })
                } else {
                    Frame::UnbindErr(UnbindErr {
                        bind_id,
                        message: Some(format!("no binding {bind_id} in this session")),
                    })
                };
                let _ = session.send_control(&answer);
            }
            SessionEvent::Control(Frame::TicketRequest(req)) => {
                let answer = carrier_tickets::answer(state, entry, session, req);
                let _ = session.send_control(&answer);
            }
            SessionEvent::CarrierLost { index, cause } => {
                carrier_tickets::carrier_lost(state, entry, index, &cause);
            }
            SessionEvent::Control(other) => {
                tracing::debug!(session = %entry.id, frame = other.frame_type().name(), "ignoring unexpected control frame");
            }
            SessionEvent::Incoming(stream, open) => {
                bindings::serve_client_stream(state, entry, stream, open);
            }
            SessionEvent::GoAway(goaway) => {
                tracing::info!(session = %entry.id, code = %goaway.code, message = %goaway.message, "client is going away");
                // A client that says goodbye is not coming back: no parking.
                entry.forbid_parking();
                session.close(ErrorCode::NO_ERROR, "goodbye");
            }
        }
    }
}

/// After a carrier loss, keeps the session (bindings, routes, ports) for the resume grace
/// period. Returns true when a resume replaced the mux, false when the session should end.
async fn park(
    state: &Arc<ServerState>,
    entry: &Arc<SessionEntry>,
    session: &Session,
    generation: u64,
) -> bool {
    let grace = state.config.limits.resume_grace;
    let lost = session.inspect(|st| st.lost_session_carrier());
    if !lost || grace.is_zero() || !entry.may_park() || state.is_draining() {
        return false;
    }
    if !entry.park(generation, Instant::now() + grace) {
        return true;
    }
    tracing::info!(session = %entry.id, grace_secs = grace.as_secs_f64(), "carrier lost; session parked for resume");
    // Woken by a resume (new generation) or a kill (parking forbidden); a wake-up left over
    // from an earlier resume is ignored and the wait goes on until the deadline.
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let timed_out = tokio::time::timeout_at(deadline, entry.resumed())
            .await
            .is_err();
        if entry.generation() != generation {
            return true;
        }
        if timed_out || !entry.may_park() {
            return false;
        }
    }
}
