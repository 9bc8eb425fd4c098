//! The first frame of every new carrier: HELLO opens (or refuses) a session, JOIN attaches an
//! extra v2 carrier with a ticket.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use bytes::BytesMut;
use rand::distr::{Alphanumeric, SampleString};
use underpass_transports::Carrier;

use super::carrier_tickets;
use super::session_task;
use super::sessions::{SessionEntry, Ticket};
use super::state::ServerState;
use crate::mux::{MuxConfig, Role, Session};
use crate::proto::{
    decode_message, encode_frame, negotiate_connections, ErrorCode, Frame, GoAway, Hello, HelloOk,
    Join, JoinErr, JoinOk, JoinTicket, ProtocolVersion, ResumedBind,
};

/// Takes a freshly accepted carrier through HELLO or JOIN. Errors are answered on the carrier
/// and logged; nothing is returned because the carrier either joins a session or is closed.
pub async fn accept_carrier(state: Arc<ServerState>, mut carrier: Carrier) {
    let peer = carrier.info.peer;
    let first = tokio::time::timeout(state.config.limits.hello_timeout, carrier.rx.recv()).await;
    let message = match first {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) | Ok(Err(_)) => return,
        Err(_) => {
            tracing::info!(?peer, "no HELLO within the hello timeout; closing");
            let _ = carrier.tx.close().await;
            return;
        }
    };
    let frame = match decode_message(&message) {
        Ok(mut frames) if frames.len() == 1 => frames.pop(),
        Ok(_) => None,
        Err(e) => {
            tracing::info!(?peer, error = %e, "malformed first frame");
            None
        }
    };
    match frame {
        Some(Frame::Hello(hello)) => accept_hello(state, carrier, hello).await,
        Some(Frame::Join(join)) => accept_join(state, carrier, join).await,
        _ => {
            refuse(
                &state,
                &mut carrier,
                ErrorCode::PROTOCOL,
                "first frame must be HELLO or JOIN",
            )
            .await;
        }
    }
}

async fn send_frame(carrier: &mut Carrier, frame: &Frame) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    encode_frame(frame, &mut out)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    carrier.tx.send(out.freeze()).await
}

/// WebSocket close code PROTOCOL.md gives a refused HELLO: 1013 (try again later) for a limit,
/// 1002 (protocol error) otherwise; a refused resume has its own, see [`refuse_resume`].
fn close_code(code: ErrorCode) -> u16 {
    if code == ErrorCode::RESOURCE_EXHAUSTED {
        1013
    } else {
        1002
    }
}

/// Reason of a refused resume, as PROTOCOL.md words it.
const RESUME_REFUSED: &str = "resume grace expired";

/// Refuses a resume: GOAWAY, then close 1008 (policy).
async fn refuse_resume(state: &ServerState, carrier: &mut Carrier) {
    refuse_with(state, carrier, ErrorCode::PROTOCOL, RESUME_REFUSED, 1008).await
}

/// Refuses a carrier with the close code that goes with `code`.
async fn refuse(state: &ServerState, carrier: &mut Carrier, code: ErrorCode, message: &str) {
    refuse_with(state, carrier, code, message, close_code(code)).await
}

/// Refuses a carrier: GOAWAY with the code first (clients read the reason there), then a close
/// with `close_code`.
async fn refuse_with(
    state: &ServerState,
    carrier: &mut Carrier,
    code: ErrorCode,
    message: &str,
    close_code: u16,
) {
    state.counters.refusal(code);
    tracing::info!(peer = ?carrier.info.peer, %code, message, "carrier refused");
    let goaway = Frame::GoAway(GoAway {
        code,
        message: message.to_string(),
    });
    let _ = send_frame(carrier, &goaway).await;
    let closing = carrier.tx.close_with(close_code, message);
    let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
}

fn session_id() -> String {
    format!("s_{}", Alphanumeric.sample_string(&mut rand::rng(), 20))
}

async fn accept_hello(state: Arc<ServerState>, mut carrier: Carrier, hello: Hello) {
    let token = hello
        .auth
        .as_ref()
        .map(|a| a.token.clone())
        .or_else(|| carrier.info.bearer.clone());
    let Some(token) = token else {
        return refuse(
            &state,
            &mut carrier,
            ErrorCode::AUTH,
            "a token is required (HELLO auth or Authorization: Bearer)",
        )
        .await;
    };
    let Some(client) = state.clients.authenticate(&token) else {
        return refuse(&state, &mut carrier, ErrorCode::AUTH, "invalid token").await;
    };
    // A token holder: the transport may lift what it allows unauthenticated peers.
    carrier.rx.peer_authenticated();
    let Some(version) = ProtocolVersion::parse(&hello.version) else {
        return refuse(
            &state,
            &mut carrier,
            ErrorCode::VERSION_MISMATCH,
            // The peer's value is not echoed: it may be anything, a secret included.
            "unsupported protocol version; this server speaks hoody-tunnel.v1 and hoody-tunnel.v2",
        )
        .await;
    };
    let resuming = match &hello.resume {
        // Another client's session is refused as if it did not exist.
        Some(resume) => match state.sessions.get(&resume.session_id) {
            Some(entry) if entry.client.same_as(&client) => Some(entry),
            _ => return refuse_resume(&state, &mut carrier).await,
        },
        None => None,
    };
    let limits = &state.config.limits;
    let striping = version == ProtocolVersion::V2;
    let granted = negotiate_connections(
        version,
        if striping {
            hello.max_connections
        } else {
            None
        },
        limits.max_connections_per_session,
    );
    let ttl = limits.join_ticket_ttl;
    let tickets: Vec<Ticket> = (1..granted)
        .map(|index| Ticket::issue(index, ttl))
        .collect();
    let id = resuming
        .as_ref()
        .map_or_else(session_id, |entry| entry.id.clone());
    let resumed_binds = resuming
        .as_ref()
        .map(|entry| {
            entry
                .bindings()
                .values()
                .map(|b| ResumedBind {
                    bind_id: b.bind_id,
                    kind: b.kind,
                    mode: b.mode,
                    container_port: b.container_port,
                })
                .collect()
        })
        .unwrap_or_default();
    let ok = HelloOk {
        session_id: id.clone(),
        resumed: resuming.is_some(),
        resumed_binds,
        connections_granted: striping.then_some(granted),
        join_tickets: striping.then(|| {
            tickets
                .iter()
                .map(|t| JoinTicket {
                    index: t.index,
                    nonce: t.nonce.clone(),
                    expires_ms: ttl.as_millis() as u64,
                })
                .collect()
        }),
        stream_window: limits.stream_window,
        session_window: limits.session_window,
        server_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        domain: state.config.domain.clone(),
        max_streams: Some(u32::try_from(limits.max_streams_per_session).unwrap_or(u32::MAX)),
    };
    if state.is_draining() {
        return refuse(
            &state,
            &mut carrier,
            ErrorCode::RESOURCE_EXHAUSTED,
            "server is shutting down",
        )
        .await;
    }
    if let Some(entry) = resuming {
        return resume(state, carrier, entry, tickets, ok).await;
    }
    if state.sessions.len() >= limits.max_sessions {
        return refuse(
            &state,
            &mut carrier,
            ErrorCode::RESOURCE_EXHAUSTED,
            &format!("session limit ({}) reached", limits.max_sessions),
        )
        .await;
    }
    if let Some(max) = client.scope.max_sessions {
        if state.sessions.count_of(&client) >= max {
            let message = format!(
                "client '{}' already has {max} sessions (its max_sessions)",
                client.name
            );
            return refuse(
                &state,
                &mut carrier,
                ErrorCode::RESOURCE_EXHAUSTED,
                &message,
            )
            .await;
        }
    }
    // The session is in the table before HELLO_OK leaves, so a client that got HELLO_OK can
    // rely on the server knowing it (JOIN, admin listings). HELLO_OK is the first frame the mux
    // writes on carrier 0.
    let peer = carrier.info.peer;
    let session = Session::start(mux_config(&state), carrier);
    let entry = Arc::new(SessionEntry::new(
        id.clone(),
        client.clone(),
        session.clone(),
        peer,
        version,
        granted,
        tickets,
    ));
    if !state.sessions.insert(entry.clone(), limits.max_sessions) {
        session.close(
            ErrorCode::RESOURCE_EXHAUSTED,
            &format!("session limit ({}) reached", limits.max_sessions),
        );
        return;
    }
    if session.send_control(&Frame::HelloOk(ok)).is_err() {
        state.sessions.remove(&id);
        return;
    }
    tracing::info!(session = %id, client = %client.name, ?peer, version = version.as_str(), carriers = granted, "session opened");
    session_task::run(state, entry).await;
}

/// A HELLO that resumes a parked session: the new carrier gets a new mux, and every binding,
/// route and listener of the session carries on with it. The session's own task picks the new
/// mux up, so nothing else runs here.
async fn resume(
    state: Arc<ServerState>,
    mut carrier: Carrier,
    entry: Arc<SessionEntry>,
    tickets: Vec<Ticket>,
    ok: HelloOk,
) {
    let (old, _) = entry.session_and_generation();
    if !entry.is_parked() && !old.is_closed() {
        // The client says its connection is gone; believe it rather than wait for our timeout.
        tracing::info!(session = %entry.id, "resume of a session whose carrier still looks alive");
    }
    if !entry.can_resume(Instant::now()) {
        return refuse_resume(&state, &mut carrier).await;
    }
    let peer = carrier.info.peer;
    let session = Session::start(mux_config(&state), carrier);
    if !entry.resume_with(session.clone(), Instant::now()) {
        // The grace ran out between the check and now.
        session.close(ErrorCode::PROTOCOL, RESUME_REFUSED);
        return;
    }
    // The new connection's grant replaces the old one, before any ticket can be asked for.
    entry.set_connections_granted(ok.connections_granted.unwrap_or(1));
    *entry.tickets.lock().unwrap_or_else(|e| e.into_inner()) = tickets;
    let binds = ok.resumed_binds.len();
    if session.send_control(&Frame::HelloOk(ok)).is_err() {
        return;
    }
    state.counters.resume();
    tracing::info!(session = %entry.id, client = %entry.client.name, ?peer, binds, "session resumed");
}

fn mux_config(state: &ServerState) -> MuxConfig {
    let l = &state.config.limits;
    MuxConfig {
        stream_window: l.stream_window,
        session_window: l.session_window,
        ping_after: l.ping_after,
        pong_timeout: l.pong_timeout,
        idle_stream_timeout: (!l.idle_stream_timeout.is_zero()).then_some(l.idle_stream_timeout),
        ..MuxConfig::new(Role::Server)
    }
    .with_stream_limit(l.max_streams_per_session)
}

async fn accept_join(state: Arc<ServerState>, mut carrier: Carrier, join: Join) {
    let entry = state.sessions.get(&join.session_id);
    // A bearer token on the upgrade (hoody SDKs send one on every carrier) must be the
    // session's client's; the ticket alone admits a carrier without one.
    let bearer_ok = |e: &SessionEntry| match carrier.info.bearer.as_deref() {
        None => true,
        Some(t) => state
            .clients
            .authenticate(t)
            .is_some_and(|c| c.same_as(&e.client)),
    };
    let admitted = entry
        .as_ref()
        .is_some_and(|e| bearer_ok(e) && e.redeem_ticket(join.index, &join.nonce, Instant::now()));
    let (Some(entry), true) = (entry, admitted) else {
        let err = JoinErr {
            code: "INVALID_TICKET".into(),
            message: "unknown session, or the join ticket is invalid, used or expired".into(),
        };
        return refuse_join(carrier, err).await;
    };
    if let Err(err) = carrier_tickets::admit(&entry, join.index) {
        return refuse_join(carrier, err).await;
    }
    carrier.rx.peer_authenticated();
    let ok = Frame::JoinOk(JoinOk {
        session_id: entry.id.clone(),
        index: join.index,
    });
    if send_frame(&mut carrier, &ok).await.is_ok() {
        let attachment = entry.session().attach_carrier(join.index as usize, carrier);
        carrier_tickets::joined(&state, &entry, join.index, attachment);
    }
}

/// Answers a refused JOIN with JOIN_ERR, then closes the carrier with 1008 (policy).
async fn refuse_join(mut carrier: Carrier, err: JoinErr) {
    tracing::info!(peer = ?carrier.info.peer, code = %err.code, "join refused");
    let _ = send_frame(&mut carrier, &Frame::JoinErr(err)).await;
    let closing = carrier.tx.close_with(1008, "join refused");
    let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
}
