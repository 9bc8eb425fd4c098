//! The send side of each carrier: which queued frames go into the next message.

use std::task::Waker;

use super::outbox::Batch;
use super::state::MuxState;

impl MuxState {
    /// Fills `batch` with frames for `carrier`: priority frames first, then one frame per ready
    /// stream in turn, within the per-message limits.
    pub fn pop_batch(&mut self, carrier: usize, batch: &mut Batch) {
        let Some(c) = self.carriers.get_mut(carrier) else {
            return;
        };
        while let Some(f) = c.priority.front() {
            if !batch.fits(f) {
                return;
            }
            if let Some(f) = c.priority.pop_front() {
                batch.push(f);
            }
        }
        let mut drained = std::mem::take(&mut self.drained_scratch);
        while let Some(id) = c.ready.pop_front() {
            let Some(slot) = self.streams.get_mut(&id) else {
                continue;
            };
            let Some(front) = slot.outbox.front() else {
                slot.scheduled = false;
                drained.push(id);
                continue;
            };
            if !batch.fits(front) {
                c.ready.push_front(id);
                break;
            }
            if let Some(f) = slot.outbox.pop_front() {
                let len = f.data_len() as u64;
                self.stats.data_bytes_sent += len;
                c.life.data_sent += len;
                if len > 0 {
                    self.bind_traffic.entry(slot.bind_id).bytes_sent += len;
                }
                batch.push(f);
            }
            if slot.outbox.is_empty() {
                slot.scheduled = false;
                drained.push(id);
            } else {
                c.ready.push_back(id);
            }
        }
        for id in drained.drain(..) {
            self.maybe_remove(id);
        }
        self.drained_scratch = drained;
    }

    /// Registers the writer of `carrier` to be woken when frames are queued. Returns `false`
    /// when the writer should stop: the carrier is dead, or the session closed and its last
    /// frames went out.
    pub fn park_writer(&mut self, carrier: usize, waker: &Waker) -> bool {
        let closed = self.closed.is_some();
        let Some(c) = self.carriers.get_mut(carrier) else {
            return false;
        };
        if !c.alive || (closed && c.priority.is_empty()) {
            return false;
        }
        c.writer_waker = Some(waker.clone());
        true
    }
}
