//! quinn's errors turned into the `io::Error`s the mux sees.

use std::io;

use quinn::{ConnectionError, ReadError, VarInt, WriteError};

use super::CODE_DROPPED;
use crate::CloseReason;

pub(super) fn read_error(err: ReadError) -> io::Error {
    match err {
        ReadError::Reset(code) if code == VarInt::from_u32(CODE_DROPPED) => io::Error::new(
            io::ErrorKind::ConnectionReset,
            "peer dropped the QUIC carrier without closing it",
        ),
        ReadError::Reset(code) => CloseReason {
            code: u16::try_from(code.into_inner()).unwrap_or(u16::MAX),
            reason: String::new(),
        }
        .into_io_error(),
        ReadError::ConnectionLost(e) => connection_error(e),
        other => io::Error::other(format!("QUIC read error: {other}")),
    }
}

pub(super) fn write_error(err: WriteError) -> io::Error {
    match err {
        WriteError::Stopped(code) => io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("peer stopped reading the QUIC carrier (code {code})"),
        ),
        WriteError::ClosedStream => {
            io::Error::new(io::ErrorKind::BrokenPipe, "QUIC carrier is closed")
        }
        WriteError::ConnectionLost(e) => connection_error(e),
        other => io::Error::other(format!("QUIC write error: {other}")),
    }
}

/// The `io::Error` the mux sees for a connection that ended.
pub(super) fn connection_error(err: ConnectionError) -> io::Error {
    match err {
        // What quinn sends when every handle to a connection is dropped: nobody chose to close.
        ConnectionError::ApplicationClosed(close)
            if close.error_code == VarInt::from_u32(0) && close.reason.is_empty() =>
        {
            io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer dropped the QUIC connection",
            )
        }
        ConnectionError::ApplicationClosed(close) => CloseReason {
            code: u16::try_from(close.error_code.into_inner()).unwrap_or(u16::MAX),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        }
        .into_io_error(),
        ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("QUIC connection refused by the peer: {close}"),
            )
        }
        ConnectionError::ConnectionClosed(close) => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("QUIC connection aborted by the peer: {close}"),
        ),
        ConnectionError::Reset => io::Error::new(
            io::ErrorKind::ConnectionReset,
            "QUIC connection reset by the peer",
        ),
        ConnectionError::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "QUIC connection timed out")
        }
        ConnectionError::LocallyClosed => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "QUIC connection closed locally",
        ),
        ConnectionError::VersionMismatch => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "peer does not speak our QUIC version",
        ),
        // Includes a certificate we refused: the reason says why.
        ConnectionError::TransportError(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        other => io::Error::other(format!("QUIC connection error: {other}")),
    }
}
