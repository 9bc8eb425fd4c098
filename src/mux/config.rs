//! Settings of one mux session.

use std::time::Duration;

use crate::proto::{DEFAULT_SESSION_WINDOW, DEFAULT_STREAM_WINDOW};

/// Streams per session when nobody says otherwise (DESIGN.md section 4).
pub const DEFAULT_MAX_STREAMS: usize = 1024;

/// Which end of the session this is; decides the parity of the stream ids it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The public server: opens even stream ids (2, 4, ...).
    Server,
    /// The private client: opens odd stream ids (1, 3, ...).
    Client,
}

impl Role {
    /// First stream id this role opens.
    pub fn first_stream_id(self) -> u32 {
        match self {
            Role::Server => 2,
            Role::Client => 1,
        }
    }

    /// True when `id` has the parity the *peer* of this role uses.
    pub fn is_peer_stream(self, id: u32) -> bool {
        id != 0
            && match self {
                Role::Server => id % 2 == 1,
                Role::Client => id.is_multiple_of(2),
            }
    }
}

/// Limits and timers of a session. Both ends use the windows granted in HELLO_OK.
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// This end's role.
    pub role: Role,
    /// Initial credit per stream and direction.
    pub stream_window: u32,
    /// Initial credit per session and direction.
    pub session_window: u32,
    /// Most streams open at once; further peer opens are refused with REFUSED_STREAM.
    pub max_streams: usize,
    /// Send PING on a carrier after this long without receiving anything on it.
    pub ping_after: Duration,
    /// Close a carrier whose PING is unanswered this long.
    pub pong_timeout: Duration,
    /// Most control frames (BIND, ...) waiting for the owner before the peer counts as flooding.
    pub max_pending_events: usize,
    /// Most frames waiting in one carrier's priority queue (PONG, RESET, WINDOW, ...). A peer
    /// that keeps provoking answers (PING, bad STREAM_OPEN) without reading them would grow it
    /// without end; past this it counts as flooding.
    pub max_queued_control: usize,
    /// Reset a stream (IDLE_TIMEOUT) that moved nothing either way for this long; `None`: never.
    /// The server sets it; one end enforcing it is enough, the RESET ends both.
    pub idle_stream_timeout: Option<Duration>,
}

impl MuxConfig {
    /// Defaults from DESIGN.md section 4 for `role`.
    pub fn new(role: Role) -> Self {
        Self {
            role,
            stream_window: DEFAULT_STREAM_WINDOW,
            session_window: DEFAULT_SESSION_WINDOW,
            max_streams: DEFAULT_MAX_STREAMS,
            ping_after: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(60),
            max_pending_events: 1024,
            max_queued_control: 4096,
            idle_stream_timeout: None,
        }
        .with_stream_limit(DEFAULT_MAX_STREAMS)
    }

    /// Sets the stream limit and the queue bounds that grow with it: every open stream may owe a
    /// WINDOW or two and a RESET at once, and a burst of STREAM_OPENs waits as events until the
    /// owner takes them, so neither may count as flooding below the stream limit.
    pub fn with_stream_limit(mut self, max_streams: usize) -> Self {
        self.max_streams = max_streams;
        self.max_queued_control = max_streams.saturating_mul(4).max(4096);
        self.max_pending_events = max_streams.saturating_add(1024);
        self
    }
}
