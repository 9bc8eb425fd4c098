//! Receive-side credit bookkeeping shared by streams and the session: how much the peer may still
//! send, and how much the consumer has taken that is not yet returned with WINDOW.

/// Receive window of one stream or of the whole session.
#[derive(Debug, Clone)]
pub struct RecvWindow {
    initial: u64,
    /// Credit the peer still has.
    remaining: u64,
    /// Bytes the consumer took that were not yet returned.
    unacked: u64,
}

impl RecvWindow {
    /// A window with `initial` credit granted.
    pub fn new(initial: u32) -> Self {
        Self {
            initial: initial as u64,
            remaining: initial as u64,
            unacked: 0,
        }
    }

    /// Accounts for `len` arriving bytes. `false` means the peer overran its credit.
    pub fn receive(&mut self, len: usize) -> bool {
        let len = len as u64;
        if len > self.remaining {
            return false;
        }
        self.remaining -= len;
        true
    }

    /// Records that the consumer took `len` bytes. Returns the increment to announce in WINDOW when
    /// enough has accumulated (half the window): batching keeps WINDOW frames rare on bulk streams.
    pub fn consume(&mut self, len: usize) -> Option<u32> {
        self.unacked += len as u64;
        if self.unacked > 0 && self.unacked >= self.initial / 2 {
            Some(self.release())
        } else {
            None
        }
    }

    /// Returns everything consumed so far, regardless of the batching threshold.
    pub fn release(&mut self) -> u32 {
        let inc = self.unacked.min(u32::MAX as u64);
        self.unacked -= inc;
        self.remaining += inc;
        inc as u32
    }

    /// Credit the peer has left.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

/// Send-side credit: what the peer allows us to send, checked against the initial window so a peer
/// cannot inflate it.
#[derive(Debug, Clone)]
pub struct SendCredit {
    initial: u64,
    available: u64,
}

impl SendCredit {
    /// Credit of `initial` bytes.
    pub fn new(initial: u32) -> Self {
        Self {
            initial: initial as u64,
            available: initial as u64,
        }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> u64 {
        self.available
    }

    /// Spends `len` bytes of credit (caller checked [`available`](Self::available)).
    pub fn spend(&mut self, len: usize) {
        self.available = self.available.saturating_sub(len as u64);
    }

    /// Gives back credit for bytes that were queued but will never be sent.
    pub fn refund(&mut self, len: usize) {
        self.available = (self.available + len as u64).min(self.initial);
    }

    /// Applies a WINDOW increment; `false` for a zero increment or one that exceeds the initial
    /// window, both FLOW_CONTROL errors.
    pub fn grant(&mut self, increment: u32) -> bool {
        let next = self.available + increment as u64;
        if increment == 0 || next > self.initial {
            return false;
        }
        self.available = next;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_returned_in_batches_of_half() {
        let mut w = RecvWindow::new(100);
        assert!(w.receive(60));
        assert_eq!(w.consume(30), None);
        assert_eq!(w.consume(20), Some(50));
        assert_eq!(w.remaining(), 90);
        assert!(!w.receive(91));
    }

    #[test]
    fn grant_rejects_zero_and_inflation() {
        let mut c = SendCredit::new(100);
        c.spend(40);
        assert!(!c.grant(0));
        assert!(!c.grant(41));
        assert!(c.grant(40));
        assert_eq!(c.available(), 100);
    }
}
