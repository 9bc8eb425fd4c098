//! The life of one server session: answer its BIND/UNBIND frames, serve the streams it opens
//! (`forward` bindings), and clean up every binding when it ends.

use std::sync::Arc;

use super::bindings;
use super::sessions::SessionEntry;
use super::state::ServerState;
use crate::mux::SessionEvent;
use crate::proto::{BindRef, ErrorCode, Frame, UnbindErr};

/// Runs until the session ends, then removes it and all its bindings.
pub async fn run(state: Arc<ServerState>, entry: Arc<SessionEntry>) {
    let session = entry.session.clone();
    while let Some(event) = session.next_event().await {
        match event {
            SessionEvent::Control(Frame::Bind(bind)) => {
                let answer = bindings::bind(&state, &entry, bind).await;
                let _ = session.send_control(&answer);
            }
            SessionEvent::Control(Frame::Unbind(BindRef { bind_id })) => {
                let answer = if bindings::unbind(&state, &entry, bind_id) {
                    Frame::UnbindOk(BindRef { bind_id })
                } else {
                    Frame::UnbindErr(UnbindErr {
                        bind_id,
                        message: Some(format!("no binding {bind_id} in this session")),
                    })
                };
                let _ = session.send_control(&answer);
            }
            SessionEvent::Control(other) => {
                tracing::debug!(session = %entry.id, frame = other.frame_type().name(), "ignoring unexpected control frame");
            }
            SessionEvent::Incoming(stream, open) => {
                bindings::serve_client_stream(&entry, stream, open);
            }
            SessionEvent::GoAway(goaway) => {
                tracing::info!(session = %entry.id, code = %goaway.code, message = %goaway.message, "client is going away");
                session.close(ErrorCode::NO_ERROR, "goodbye");
            }
        }
    }
    let (code, reason) = session.closed().await;
    bindings::release_all(&state, &entry);
    state.sessions.remove(&entry.id);
    tracing::info!(session = %entry.id, %code, reason, "session closed");
}
