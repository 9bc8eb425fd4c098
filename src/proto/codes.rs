//! Numeric RESET/GOAWAY codes and the string codes of BIND_ERR.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A RESET or GOAWAY code. Unknown values from a peer are kept as they are, so nothing is lost.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// Normal close.
    pub const NO_ERROR: Self = Self(0);
    /// The peer broke the protocol.
    pub const PROTOCOL: Self = Self(1);
    /// A local failure.
    pub const INTERNAL: Self = Self(2);
    /// Credit exceeded, or a zero or excessive WINDOW.
    pub const FLOW_CONTROL: Self = Self(3);
    /// A frame for a stream that is already closed.
    pub const STREAM_CLOSED: Self = Self(4);
    /// A frame above the size limits.
    pub const FRAME_SIZE: Self = Self(5);
    /// The receiver cannot serve this stream.
    pub const REFUSED_STREAM: Self = Self(6);
    /// The stream is no longer wanted.
    pub const CANCEL: Self = Self(7);
    /// Too much of something (rapid resets, floods).
    pub const ENHANCE_YOUR_CALM: Self = Self(8);
    /// A binding failed.
    pub const BIND_ERROR: Self = Self(9);
    /// The stream was idle too long.
    pub const IDLE_TIMEOUT: Self = Self(10);
    /// Authentication failed.
    pub const AUTH: Self = Self(11);
    /// No common protocol version.
    pub const VERSION_MISMATCH: Self = Self(12);
    /// The binding was taken over by another session.
    pub const BIND_TAKEOVER: Self = Self(13);
    /// A server limit was hit.
    pub const RESOURCE_EXHAUSTED: Self = Self(14);

    /// The protocol name of this code, or `UNKNOWN`.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NO_ERROR",
            1 => "PROTOCOL",
            2 => "INTERNAL",
            3 => "FLOW_CONTROL",
            4 => "STREAM_CLOSED",
            5 => "FRAME_SIZE",
            6 => "REFUSED_STREAM",
            7 => "CANCEL",
            8 => "ENHANCE_YOUR_CALM",
            9 => "BIND_ERROR",
            10 => "IDLE_TIMEOUT",
            11 => "AUTH",
            12 => "VERSION_MISMATCH",
            13 => "BIND_TAKEOVER",
            14 => "RESOURCE_EXHAUSTED",
            _ => "UNKNOWN",
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a BIND was refused. Codes a newer peer invents decode as [`BindErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BindErrorCode {
    /// The same client reference is already bound.
    AlreadyBound,
    /// The port is taken by something else.
    PortInUse,
    /// The port is one the server keeps for itself.
    ReservedPort,
    /// The `host` is not an allowed loopback address.
    InvalidHost,
    /// A port below 1024 without the server's permission (below 80: always).
    PrivilegedPort,
    /// The session holds as many bindings as it may.
    BindCapExceeded,
    /// Unsupported kind/mode combination.
    InvalidKind,
    /// A server-side failure.
    Internal,
    /// *(underpass)* The route has a holder in single mode.
    RouteTaken,
    /// *(underpass)* The route's holders use another mode or Basic Auth.
    ModeMismatch,
    /// *(underpass)* The requested route is not a DNS label.
    InvalidName,
    /// *(underpass)* The port is outside what the server (`--allow-forward`) or the client's
    /// scope (`--clients` file) allows, or the client may not open pull bindings.
    ForbiddenPort,
    /// *(underpass)* A `cidrAllow` or `cidrDeny` entry is not an address or range.
    InvalidPolicy,
    /// *(underpass)* The route is outside the client's scope (`--clients` file).
    ForbiddenRoute,
    /// *(underpass)* `clientBindRef` is longer than 256 bytes of JSON, so it is not echoed
    /// (the answer carries `null`).
    InvalidRef,
    /// A code this build does not know.
    #[serde(other)]
    Other,
}

impl BindErrorCode {
    /// The wire spelling of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyBound => "ALREADY_BOUND",
            Self::PortInUse => "PORT_IN_USE",
            Self::ReservedPort => "RESERVED_PORT",
            Self::InvalidHost => "INVALID_HOST",
            Self::PrivilegedPort => "PRIVILEGED_PORT",
            Self::BindCapExceeded => "BIND_CAP_EXCEEDED",
            Self::InvalidKind => "INVALID_KIND",
            Self::Internal => "INTERNAL",
            Self::RouteTaken => "ROUTE_TAKEN",
            Self::ModeMismatch => "MODE_MISMATCH",
            Self::InvalidName => "INVALID_NAME",
            Self::ForbiddenPort => "FORBIDDEN_PORT",
            Self::InvalidPolicy => "INVALID_POLICY",
            Self::ForbiddenRoute => "FORBIDDEN_ROUTE",
            Self::InvalidRef => "INVALID_REF",
            Self::Other => "OTHER",
        }
    }
}

impl fmt::Display for BindErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
