//! Traffic per binding: the DATA bytes and streams of each binding of a session, so operators
//! can tell which tunnel moves the bytes. Counted where the session counters are (a frame handed
//! to a carrier, a frame received), with the binding id every stream slot already carries.

use std::collections::HashMap;

use super::state::MuxState;
use crate::proto::BindId;

/// What one binding moved since it was made (or since the session started, on a resume).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindTraffic {
    /// DATA payload bytes this end handed to carriers on the binding's streams.
    pub bytes_sent: u64,
    /// DATA payload bytes received on the binding's streams.
    pub bytes_received: u64,
    /// Streams of the binding opened by either side.
    pub streams_opened: u64,
}

/// The counters of every binding that saw a stream.
#[derive(Debug, Clone, Default)]
pub struct TrafficByBinding(HashMap<BindId, BindTraffic>);

impl TrafficByBinding {
    pub(super) fn entry(&mut self, bind_id: BindId) -> &mut BindTraffic {
        self.0.entry(bind_id).or_default()
    }

    /// Counters of one binding (zero when it never had a stream).
    pub fn get(&self, bind_id: BindId) -> BindTraffic {
        self.0.get(&bind_id).copied().unwrap_or_default()
    }

    pub(super) fn forget(&mut self, bind_id: BindId) {
        self.0.remove(&bind_id);
    }
}

impl MuxState {
    /// Traffic of each binding of this session.
    pub fn traffic_by_binding(&self) -> &TrafficByBinding {
        &self.bind_traffic
    }

    /// Drops a removed binding's counters, so a client that binds and unbinds in a loop does not
    /// grow the table.
    pub fn forget_binding(&mut self, bind_id: BindId) {
        self.bind_traffic.forget(bind_id);
    }
}
