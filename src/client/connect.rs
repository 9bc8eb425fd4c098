//! Opening a session: HELLO on the first carrier, then JOIN on each extra v2 carrier.

use bytes::BytesMut;
use underpass_transports::{Carrier, Endpoint};

use super::error::ClientError;
use super::hello_check::{check_hello_ok, MAX_ANNOUNCED_STREAMS};
use super::options::ClientOptions;
use crate::mux::{MuxConfig, Role, Session, DEFAULT_MAX_STREAMS};
use crate::proto::{
    decode_message, encode_frame, ErrorCode, Frame, Hello, HelloAuth, HelloOk, HelloResume, Join,
    JoinTicket, ProtocolVersion,
};

async fn send(carrier: &mut Carrier, frame: &Frame) -> Result<(), ClientError> {
    let mut out = BytesMut::new();
    encode_frame(frame, &mut out).map_err(|e| ClientError::Handshake(e.to_string()))?;
    carrier
        .tx
        .send(out.freeze())
        .await
        .map_err(|e| ClientError::Handshake(format!("send failed: {e}")))
}

/// The server's first answer. While `resuming`, a close 1008 (policy) means PROTOCOL.md's
/// refused resume, which some servers send without a GOAWAY first.
async fn first_frame(
    carrier: &mut Carrier,
    opts: &ClientOptions,
    resuming: bool,
) -> Result<Frame, ClientError> {
    let msg = tokio::time::timeout(opts.handshake_timeout, carrier.rx.recv())
        .await
        .map_err(|_| ClientError::Handshake("no answer from the server in time".into()))?
        .map_err(|e| match underpass_transports::close_reason(&e) {
            Some(reason) if resuming && reason.code == 1008 => {
                ClientError::ResumeRefused(reason.reason.clone())
            }
            _ => ClientError::Handshake(format!("the server closed the connection: {e}")),
        })?
        .ok_or_else(|| ClientError::Handshake("the server closed the connection".into()))?;
    let mut frames = decode_message(&msg).map_err(|e| ClientError::Handshake(e.to_string()))?;
    if frames.is_empty() {
        return Err(ClientError::Handshake("empty answer".into()));
    }
    Ok(frames.remove(0))
}

async fn dial(opts: &ClientOptions, version: ProtocolVersion) -> Result<Carrier, ClientError> {
    let endpoint = Endpoint {
        url: opts.server.clone(),
        subprotocol: version.as_str().to_string(),
        bearer: None,
    };
    opts.transport
        .connect(&endpoint)
        .await
        .map_err(|source| ClientError::from_dial(&opts.server, source))
}

/// Opens a session and attaches every granted carrier. Carriers that fail to join are logged
/// and skipped: the session works with fewer.
pub async fn connect(opts: &ClientOptions) -> Result<(Session, HelloOk), ClientError> {
    open(opts, None).await
}

/// Resumes session `session_id` after its connection dropped: on success the server kept every
/// binding (`HelloOk::resumed`, `resumed_binds`). A server that no longer has the session
/// answers [`ClientError::ResumeRefused`].
pub async fn resume(
    opts: &ClientOptions,
    session_id: &str,
) -> Result<(Session, HelloOk), ClientError> {
    open(opts, Some(session_id)).await
}

async fn open(
    opts: &ClientOptions,
    resume: Option<&str>,
) -> Result<(Session, HelloOk), ClientError> {
    let version = if opts.connections > 1 {
        ProtocolVersion::V2
    } else {
        ProtocolVersion::V1
    };
    let mut carrier = dial(opts, version).await?;
    let hello = Frame::Hello(Hello {
        version: version.as_str().to_string(),
        capabilities: if version == ProtocolVersion::V2 {
            vec!["multi-ws".into()]
        } else {
            Vec::new()
        },
        auth: Some(HelloAuth {
            kind: "bearer".into(),
            token: opts.token.clone(),
        }),
        resume: resume.map(|id| HelloResume {
            session_id: id.to_string(),
        }),
        max_connections: (version == ProtocolVersion::V2).then_some(opts.connections),
    });
    send(&mut carrier, &hello).await?;
    let ok = match first_frame(&mut carrier, opts, resume.is_some()).await? {
        Frame::HelloOk(ok) => {
            check_hello_ok(&ok, opts.connections)?;
            ok
        }
        Frame::GoAway(g) if g.code == ErrorCode::AUTH => return Err(ClientError::Auth(g.message)),
        // Refusing a resume for any reason but the token or a limit means the session is gone.
        Frame::GoAway(g) if resume.is_some() && g.code != ErrorCode::RESOURCE_EXHAUSTED => {
            return Err(ClientError::ResumeRefused(g.message))
        }
        Frame::GoAway(g) => {
            return Err(ClientError::Refused {
                code: g.code,
                message: g.message,
            })
        }
        other => {
            return Err(ClientError::Handshake(format!(
                "expected HELLO_OK, got {}",
                other.frame_type().name()
            )))
        }
    };
    // The server enforces its own stream limit; the client follows the one it announces
    // instead of refusing streams the server allowed (up to a bound on what that may cost it).
    let max_streams = ok.max_streams.map_or(DEFAULT_MAX_STREAMS, |n| {
        (n as usize).min(MAX_ANNOUNCED_STREAMS)
    });
    let cfg = MuxConfig {
        stream_window: ok.stream_window,
        session_window: ok.session_window,
        ping_after: opts.ping_interval,
        pong_timeout: opts.pong_timeout,
        ..MuxConfig::new(Role::Client)
    }
    .with_stream_limit(max_streams);
    let session = Session::start(cfg, carrier);
    let tickets = ok.join_tickets.clone().unwrap_or_default();
    let joins = tickets
        .into_iter()
        .map(|t| join(opts, ok.session_id.clone(), t));
    for (index, result) in futures_util::future::join_all(joins).await {
        match result {
            Ok(carrier) => {
                session.attach_carrier(index as usize, carrier);
            }
            Err(e) => {
                tracing::warn!(index, error = %e, "extra carrier failed to join; continuing with fewer")
            }
        }
    }
    Ok((session, ok))
}

/// Dials one extra carrier and JOINs it with `ticket`.
pub(super) async fn join(
    opts: &ClientOptions,
    session_id: String,
    ticket: JoinTicket,
) -> (u32, Result<Carrier, ClientError>) {
    let index = ticket.index;
    let result = async {
        let mut carrier = dial(opts, ProtocolVersion::V2).await?;
        let frame = Frame::Join(Join {
            session_id,
            index: ticket.index,
            nonce: ticket.nonce,
        });
        send(&mut carrier, &frame).await?;
        match first_frame(&mut carrier, opts, false).await? {
            Frame::JoinOk(_) => Ok(carrier),
            Frame::JoinErr(e) => Err(ClientError::JoinRefused {
                code: e.code,
                message: e.message,
            }),
            other => Err(ClientError::Handshake(format!(
                "expected JOIN_OK, got {}",
                other.frame_type().name()
            ))),
        }
    }
    .await;
    (index, result)
}
