//! Client errors, each with a message a person can act on.

use crate::proto::{BindErrorCode, ErrorCode};

/// Why connecting or binding failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the token.
    #[error("the server refused the token: {0}")]
    Auth(String),
    /// The server refused the session for another reason.
    #[error("the server refused the session ({code}): {message}")]
    Refused {
        /// GOAWAY code.
        code: ErrorCode,
        /// Server's message.
        message: String,
    },
    /// Could not reach the server.
    #[error("cannot reach the server at {url}: {source}")]
    Unreachable {
        /// URL dialed.
        url: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The server broke the handshake.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// A binding was refused.
    #[error("{code}: {message}")]
    Bind {
        /// BIND_ERR code.
        code: BindErrorCode,
        /// Server's message.
        message: String,
    },
    /// The server no longer has the session to resume (grace over, or restarted).
    #[error("the server refused to resume the session: {0}")]
    ResumeRefused(String),
    /// The session ended.
    #[error("the session ended: {0}")]
    Closed(String),
    /// A local problem (listening socket, ...).
    #[error("{0}")]
    Local(#[from] std::io::Error),
}

impl ClientError {
    /// True when retrying cannot help (bad token, refused binding, protocol mismatch). A server
    /// at its session limit or shutting down is worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Auth(_) | ClientError::Bind { .. } => true,
            ClientError::Refused { code, .. } => *code != ErrorCode::RESOURCE_EXHAUSTED,
            _ => false,
        }
    }
}
