//! Errors of the mux: fatal session errors and per-stream failures.

use std::io;

use crate::proto::ErrorCode;

/// Why a mux operation failed. Session-fatal variants carry the GOAWAY code sent to the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer overran its credit or sent a bad WINDOW.
    #[error("flow control error: {0}")]
    FlowControl(String),
    /// The peer sent more control frames than we let it queue.
    #[error("peer is flooding: {0}")]
    Flood(String),
    /// The session has ended.
    #[error("session closed: {1} ({0})")]
    Closed(ErrorCode, String),
    /// The stream limit is reached.
    #[error("too many open streams (limit {0})")]
    TooManyStreams(usize),
    /// The stream was reset.
    #[error("stream reset: {1} ({0})")]
    Reset(ErrorCode, String),
    /// Write after EOF.
    #[error("stream write side already closed")]
    WriteClosed,
    /// A control payload outgrew the frame limit.
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

impl MuxError {
    /// The RESET/GOAWAY code that describes this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            MuxError::Protocol(_) => ErrorCode::PROTOCOL,
            MuxError::FlowControl(_) => ErrorCode::FLOW_CONTROL,
            MuxError::Flood(_) => ErrorCode::ENHANCE_YOUR_CALM,
            MuxError::Closed(code, _) | MuxError::Reset(code, _) => *code,
            MuxError::TooManyStreams(_) => ErrorCode::REFUSED_STREAM,
            MuxError::WriteClosed => ErrorCode::STREAM_CLOSED,
            MuxError::Encode(_) => ErrorCode::FRAME_SIZE,
        }
    }
}

impl From<MuxError> for io::Error {
    fn from(e: MuxError) -> Self {
        let kind = match &e {
            MuxError::Closed(..) => io::ErrorKind::ConnectionAborted,
            MuxError::Reset(..) => io::ErrorKind::ConnectionReset,
            MuxError::WriteClosed => io::ErrorKind::BrokenPipe,
            MuxError::TooManyStreams(_) => io::ErrorKind::WouldBlock,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
