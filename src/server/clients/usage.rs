//! What one client used, kept across reloads (by name) and across its sessions: the bandwidth
//! buckets its streams share, bytes of sessions that already ended, refused binds. Nothing here
//! is touched per byte: bytes are read from each session's mux counters at scrape time, and a
//! session's counters are folded in here when its mux goes away.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::mux::MuxStats;
use crate::proto::BindErrorCode;
use crate::tcp::Throttle;

/// Totals of one client.
#[derive(Debug)]
pub struct ClientUsage {
    throttle: Throttle,
    retired_sent: AtomicU64,
    retired_received: AtomicU64,
    /// Last totals reported, so a scrape racing a session's end never reports less.
    reported: Mutex<(u64, u64)>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl ClientUsage {
    /// Fresh totals; `rate` limits each direction (bytes per second).
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            throttle: Throttle::new(rate.unwrap_or(0)),
            retired_sent: AtomicU64::new(0),
            retired_received: AtomicU64::new(0),
            reported: Mutex::new((0, 0)),
            refused: Mutex::new(BTreeMap::new()),
        }
    }

    /// The client's buckets, when it has a limit: a stream opened now is throttled only then,
    /// so an unlimited client's streams never wait on a bucket.
    pub fn throttle(&self) -> Option<&Throttle> {
        self.throttle.is_limited().then_some(&self.throttle)
    }

    /// A reload changed the limit; streams already throttled follow at once.
    pub fn set_rate(&self, rate: Option<u64>) {
        self.throttle.set_rate(rate.unwrap_or(0));
    }

    /// Adds the counters of a mux that no longer serves any session of this client.
    pub fn retire(&self, stats: &MuxStats) {
        self.retired_sent
            .fetch_add(stats.data_bytes_sent, Ordering::Relaxed);
        self.retired_received
            .fetch_add(stats.data_bytes_received, Ordering::Relaxed);
    }

    /// DATA bytes sent to and received from the client's sessions since it first appeared:
    /// `live` (the counters of its sessions now) plus the retired ones, never less than the
    /// last answer.
    pub fn bytes(&self, live: (u64, u64)) -> (u64, u64) {
        let now = (
            live.0 + self.retired_sent.load(Ordering::Relaxed),
            live.1 + self.retired_received.load(Ordering::Relaxed),
        );
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        *reported = (reported.0.max(now.0), reported.1.max(now.1));
        *reported
    }

    /// A bind of this client was refused with `code`.
    pub fn refused_bind(&self, code: BindErrorCode) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code.as_str())
            .or_default() += 1;
    }

    /// Refused binds by BIND_ERR code.
    pub fn refused_binds(&self) -> BTreeMap<&'static str, u64> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_never_go_back() {
        let u = ClientUsage::new(None);
        assert_eq!(u.bytes((10, 5)), (10, 5));
        // The session ended and was removed before its counters were folded in.
        assert_eq!(u.bytes((0, 0)), (10, 5));
        u.retire(&MuxStats {
            data_bytes_sent: 12,
            data_bytes_received: 5,
            ..MuxStats::default()
        });
        assert_eq!(u.bytes((0, 0)), (12, 5));
        assert_eq!(u.bytes((3, 1)), (15, 6));
    }

    #[test]
    fn no_limit_no_throttle() {
        let u = ClientUsage::new(None);
        assert!(u.throttle().is_none());
        u.set_rate(Some(4096));
        assert!(u.throttle().is_some());
        u.set_rate(None);
        assert!(u.throttle().is_none());
    }
}
