//! Carriers that come back: a slot whose carrier was lost can take a new one (a re-join), and
//! the session credit that the lost carrier swallowed is settled with the peer.
//!
//! Why settling is needed: DATA takes session credit when it is queued, and the receiver returns
//! that credit (WINDOW on stream 0) when its consumer takes the bytes, or at once for bytes of a
//! stream that is gone. Bytes that were in flight on a carrier when its connection died never
//! reach the receiver, so their credit would never come back, and after a few losses the session
//! would stall. Each side counts the DATA payload bytes it handed to each carrier and took from
//! it; once the carrier is dead on both sides those counts are final, the peers exchange what
//! they received (TICKET_REQUEST / TICKET `receivedBytes`), and each takes back the credit of
//! `sent - received_by_peer`.

use super::state::MuxState;

/// What one carrier slot has been through.
#[derive(Debug, Clone, Default)]
pub struct CarrierLife {
    /// 1 for the slot's first carrier, +1 for each carrier that replaced a lost one; 0 for a
    /// slot that never had a carrier. Tasks of an older attachment stop touching the slot.
    pub attachment: u64,
    /// DATA payload bytes handed to this carrier.
    pub data_sent: u64,
    /// DATA payload bytes taken from this carrier.
    pub data_received: u64,
    /// The credit lost with this carrier was settled with the peer.
    pub settled: bool,
}

impl CarrierLife {
    /// The first carrier of a slot.
    pub fn first() -> Self {
        Self {
            attachment: 1,
            ..Self::default()
        }
    }

    /// The carrier that replaces this one: counters start again.
    pub fn next(&self) -> Self {
        Self {
            attachment: self.attachment + 1,
            ..Self::default()
        }
    }
}

impl MuxState {
    /// Attachment number of carrier `index` (see [`CarrierLife::attachment`]); 0 when there is
    /// no such slot.
    pub fn carrier_attachment(&self, index: usize) -> u64 {
        self.carriers.get(index).map_or(0, |c| c.life.attachment)
    }

    /// True while attachment `attachment` of carrier `index` is the live one.
    pub fn carrier_current(&self, index: usize, attachment: u64) -> bool {
        self.carriers
            .get(index)
            .is_some_and(|c| c.alive && c.life.attachment == attachment)
    }

    /// DATA payload bytes taken from carrier `index` (its current attachment). Final once the
    /// carrier is dead.
    pub fn carrier_received(&self, index: usize) -> u64 {
        self.carriers.get(index).map_or(0, |c| c.life.data_received)
    }

    /// Carriers alive now.
    pub fn carriers_up(&self) -> usize {
        self.carriers.iter().filter(|c| c.alive).count()
    }

    /// Indices in `1..granted` without a live carrier: what a client re-dials.
    pub fn missing_carriers(&self, granted: usize) -> Vec<usize> {
        (1..granted).filter(|i| !self.carrier_alive(*i)).collect()
    }

    /// Session credit the peer may still use towards us, as we count it. Once the session is
    /// idle and every WINDOW has arrived, it equals the peer's
    /// [`session_send_credit`](Self::session_send_credit): a difference is credit lost.
    pub fn session_recv_remaining(&self) -> u64 {
        self.recv_window.remaining()
    }

    /// Takes back the session credit of the DATA that died with dead carrier `index`: everything
    /// sent on it beyond `peer_received`, the bytes the peer says it took from it. Once per lost
    /// carrier; returns the bytes refunded, `None` when there is nothing to settle (the carrier
    /// is alive, unknown or already settled).
    pub fn settle_lost_carrier(&mut self, index: usize, peer_received: u64) -> Option<u64> {
        let c = self.carriers.get_mut(index)?;
        if c.alive || c.life.settled || c.life.attachment == 0 {
            return None;
        }
        c.life.settled = true;
        let lost = c.life.data_sent.saturating_sub(peer_received);
        // A peer that claims less than it got only gets more than its window from us, which
        // its own receive window then refuses; the refund itself is capped at the window.
        self.refund_send(lost.min(u64::from(u32::MAX)) as usize);
        Some(lost)
    }

    /// Carriers lost since the last call, with their attachment: the driver stops their tasks.
    pub(super) fn take_newly_lost(&mut self) -> Vec<(usize, u64)> {
        std::mem::take(&mut self.newly_lost)
    }
}
