//! Idle streams: a stream that moved no DATA and no head either way for the configured time is
//! reset with IDLE_TIMEOUT, so connections nobody uses do not hold stream slots (and the sockets
//! behind them) forever.
//!
//! No clock is read on the data path: sending or receiving only marks the stream busy. The
//! keepalive tick sweeps the streams: a busy one is marked quiet from now, a quiet one is reset
//! once it has been quiet for the whole timeout. A stream therefore ends between one timeout and
//! one timeout plus two ticks (at most 1 s each) after its last byte.

use std::time::Duration;
use tokio::time::Instant;

use super::state::MuxState;
use crate::proto::ErrorCode;

/// Per-stream bookkeeping for the sweep.
#[derive(Debug, Default)]
pub struct Activity {
    busy: bool,
    quiet_since: Option<Instant>,
}

impl Activity {
    /// Something moved on the stream.
    pub fn touch(&mut self) {
        self.busy = true;
    }

    /// One sweep at `now`; true when the stream has been quiet for `timeout`.
    fn expired(&mut self, now: Instant, timeout: Duration) -> bool {
        if std::mem::take(&mut self.busy) {
            self.quiet_since = None;
            return false;
        }
        let since = *self.quiet_since.get_or_insert(now);
        now.saturating_duration_since(since) >= timeout
    }
}

impl MuxState {
    /// Resets every stream quiet for longer than the idle timeout; returns how many.
    pub(super) fn reset_idle_streams(&mut self, now: Instant) -> usize {
        let Some(timeout) = self.cfg.idle_stream_timeout else {
            return 0;
        };
        let idle: Vec<u32> = self
            .streams
            .iter_mut()
            .filter(|(_, s)| s.reset.is_none())
            .filter_map(|(id, s)| s.activity.expired(now, timeout).then_some(*id))
            .collect();
        let reason = format!("no traffic for {} s", timeout.as_secs());
        for id in &idle {
            self.reset_stream(*id, ErrorCode::IDLE_TIMEOUT, &reason);
        }
        idle.len()
    }
}
