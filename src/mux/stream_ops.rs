//! Stream operations of the state machine: open, write within credit, read (returning credit as
//! the consumer takes data), half-close, reset, and the end of a stream's life.

use std::task::{Context, Poll};

use bytes::Bytes;

use super::error::MuxError;
use super::outbox::OutFrame;
use super::state::MuxState;
use super::stream_slot::{Inbound, RecvItem, StreamSlot};
use crate::proto::{
    encode_response_head, encode_stream_open, ErrorCode, Frame, ResponseHead, StreamOpen,
    MAX_PAYLOAD,
};

impl MuxState {
    /// The live carrier with the fewest active streams (lowest index on ties).
    fn pick_carrier(&self) -> usize {
        self.carriers
            .iter()
            .enumerate()
            .filter(|(_, c)| c.alive)
            .min_by_key(|(i, c)| (c.active_streams, *i))
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Opens a stream: STREAM_OPEN is queued on the least loaded carrier.
    pub fn open_stream(&mut self, open: &StreamOpen) -> Result<u32, MuxError> {
        self.ensure_open()?;
        if self.goaway_received || self.draining {
            return Err(MuxError::Closed(
                ErrorCode::NO_ERROR,
                "peer is going away".into(),
            ));
        }
        if self.streams.len() >= self.cfg.max_streams {
            return Err(MuxError::TooManyStreams(self.cfg.max_streams));
        }
        let id = self.next_local_id;
        if id > u32::MAX - 2 {
            return Err(MuxError::Closed(
                ErrorCode::RESOURCE_EXHAUSTED,
                "stream ids exhausted".into(),
            ));
        }
        let frame = Self::encode_with(|out| encode_stream_open(id, open, out))?;
        self.next_local_id += 2;
        let carrier = self.pick_carrier();
        self.streams.insert(
            id,
            StreamSlot::new(carrier, self.cfg.stream_window, open.bind_id),
        );
        self.carriers[carrier].active_streams += 1;
        self.stats.streams_opened += 1;
        self.bind_traffic.entry(open.bind_id).streams_opened += 1;
        self.push_stream_frame(id, OutFrame::Encoded(frame));
        Ok(id)
    }

    fn writable_slot(&mut self, id: u32) -> Result<&mut StreamSlot, MuxError> {
        if let Some((code, msg)) = &self.closed {
            return Err(MuxError::Closed(*code, msg.clone()));
        }
        let slot = self
            .streams
            .get_mut(&id)
            .ok_or_else(|| MuxError::Reset(ErrorCode::STREAM_CLOSED, "stream closed".into()))?;
        if let Some((code, reason)) = &slot.reset {
            return Err(MuxError::Reset(*code, reason.clone()));
        }
        if slot.write_closed {
            return Err(MuxError::WriteClosed);
        }
        Ok(slot)
    }

    /// Queues a STREAM_RESPONSE_HEAD on a stream.
    pub fn send_head(&mut self, id: u32, head: &ResponseHead) -> Result<(), MuxError> {
        self.writable_slot(id)?.activity.touch();
        let frame = Self::encode_with(|out| encode_response_head(id, head, out))?;
        self.push_stream_frame(id, OutFrame::Encoded(frame));
        Ok(())
    }

    /// How many bytes may be sent on `id` right now (at most one frame). `Pending` registers the
    /// waker until credit returns.
    pub fn poll_send_capacity(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, MuxError>> {
        let session = self.send_credit.available();
        let slot = match self.writable_slot(id) {
            Ok(slot) => slot,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let avail = slot
            .send_credit
            .available()
            .min(session)
            .min(MAX_PAYLOAD as u64) as usize;
        if avail > 0 {
            return Poll::Ready(Ok(avail));
        }
        slot.write_waker = Some(cx.waker().clone());
        if session == 0 && !self.credit_waiters.contains(&id) {
            self.credit_waiters.push(id);
        }
        self.stats.flow_control_stalls += 1;
        Poll::Pending
    }

    /// Queues DATA; the caller got `data.len()` from [`poll_send_capacity`](Self::poll_send_capacity).
    pub fn push_data(&mut self, id: u32, data: Bytes) -> Result<(), MuxError> {
        let len = data.len();
        let session = self.send_credit.available();
        let slot = self.writable_slot(id)?;
        if len as u64 > slot.send_credit.available().min(session) || len > MAX_PAYLOAD {
            return Err(MuxError::FlowControl(
                "write exceeds available credit".into(),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        slot.send_credit.spend(len);
        slot.activity.touch();
        self.send_credit.spend(len);
        self.push_stream_frame(
            id,
            OutFrame::Data {
                stream_id: id,
                data,
            },
        );
        Ok(())
    }

    /// Ready once nothing more can be sent on `id` because it was reset (by either side) or the
    /// session ended; otherwise registers the writer's waker. A producer waiting on a slow
    /// source (an SSE app between events) uses it to stop as soon as the other end is gone.
    pub fn poll_send_closed(&mut self, id: u32, cx: &mut Context<'_>) -> Poll<()> {
        if self.closed.is_some() {
            return Poll::Ready(());
        }
        match self.streams.get_mut(&id) {
            Some(slot) if slot.reset.is_none() => {
                slot.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }

    /// Half-closes our side: EOF after everything queued.
    pub fn close_write(&mut self, id: u32) -> Result<(), MuxError> {
        match self.writable_slot(id) {
            Ok(slot) => slot.write_closed = true,
            Err(MuxError::WriteClosed) => return Ok(()),
            Err(e) => return Err(e),
        }
        let frame = Self::encode(&Frame::Eof { stream_id: id })?;
        self.push_stream_frame(id, OutFrame::Encoded(frame));
        Ok(())
    }

    /// Resets a stream from our side: unsent output is dropped (its credit refunded), unread
    /// input is discarded (its session credit returned) and RESET is queued.
    pub fn reset_stream(&mut self, id: u32, code: ErrorCode, reason: &str) {
        if self.streams.get(&id).is_none_or(|s| s.reset.is_some()) {
            return;
        }
        self.abort_stream(id, code, reason);
        if let Ok(frame) = Self::encode(&Frame::Reset {
            stream_id: id,
            code,
            reason: reason.to_string(),
        }) {
            self.push_stream_frame(id, OutFrame::Encoded(frame));
        }
        self.maybe_remove(id);
    }

    /// Resets every stream of binding `bind_id` (unbind, takeover) and drops its traffic
    /// counters.
    pub fn reset_binding(&mut self, bind_id: u32, code: ErrorCode, reason: &str) -> usize {
        let ids: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| s.bind_id == bind_id && s.reset.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.reset_stream(*id, code, reason);
        }
        self.forget_binding(bind_id);
        ids.len()
    }

    /// Marks a stream reset without telling the peer (it told us, or the carrier is gone).
    pub(super) fn abort_stream(&mut self, id: u32, code: ErrorCode, reason: &str) {
        let Some(slot) = self.streams.get_mut(&id) else {
            return;
        };
        let unsent: usize = slot.outbox.iter().map(OutFrame::data_len).sum();
        slot.outbox.clear();
        let unread = slot.buffered;
        slot.inbound.clear();
        slot.buffered = 0;
        slot.reset = Some((code, reason.to_string()));
        slot.write_closed = true;
        slot.wake_all();
        self.refund_send(unsent);
        self.consume_session(unread);
    }

    /// The peer reset a stream after its EOF: drop our unsent output, keep its data readable.
    pub(super) fn cut_send_side(&mut self, id: u32, code: ErrorCode, reason: &str) {
        let Some(slot) = self.streams.get_mut(&id) else {
            return;
        };
        let unsent: usize = slot.outbox.iter().map(OutFrame::data_len).sum();
        slot.outbox.clear();
        slot.write_closed = true;
        slot.reset = Some((code, reason.to_string()));
        slot.wake_all();
        self.refund_send(unsent);
    }

    /// A handle was dropped. When the last one goes, a stream that has not finished both ways is
    /// cancelled: RESET follows whatever is still queued, so the peer stops producing (an endless
    /// SSE response, say) instead of sending into the void.
    pub fn drop_handle(&mut self, id: u32) {
        let Some(slot) = self.streams.get_mut(&id) else {
            return;
        };
        slot.handles = slot.handles.saturating_sub(1);
        if slot.handles > 0 {
            return;
        }
        if slot.reset.is_none() && !(slot.write_closed && slot.remote_eof) {
            let unread = std::mem::take(&mut slot.buffered);
            slot.inbound.clear();
            slot.reset = Some((ErrorCode::CANCEL, "stream dropped".into()));
            slot.write_closed = true;
            self.consume_session(unread);
            if let Ok(frame) = Self::encode(&Frame::Reset {
                stream_id: id,
                code: ErrorCode::CANCEL,
                reason: "stream dropped".into(),
            }) {
                self.push_stream_frame(id, OutFrame::Encoded(frame));
            }
        }
        self.maybe_remove(id);
    }

    /// The sending handle went away: a writer that did not finish aborts the stream rather than
    /// leave the peer waiting for an EOF that never comes.
    pub fn abandon_writer(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.reset.is_none() && !s.write_closed)
        {
            self.reset_stream(id, ErrorCode::CANCEL, "stream writer dropped");
        }
    }

    /// Adds a handle (a split half) to a stream.
    pub fn add_handle(&mut self, id: u32) {
        if let Some(slot) = self.streams.get_mut(&id) {
            slot.handles += 1;
        }
    }

    /// Removes a stream that has nothing left to do and no handles.
    pub(super) fn maybe_remove(&mut self, id: u32) {
        let done = self
            .streams
            .get(&id)
            .is_some_and(|s| s.handles == 0 && s.finished());
        if done {
            if let Some(slot) = self.streams.remove(&id) {
                if let Some(c) = self.carriers.get_mut(slot.carrier) {
                    c.active_streams = c.active_streams.saturating_sub(1);
                }
            }
        }
    }

    pub(super) fn refund_send(&mut self, len: usize) {
        if len > 0 {
            self.send_credit.refund(len);
            self.wake_credit_waiters();
        }
    }

    pub(super) fn wake_credit_waiters(&mut self) {
        for id in std::mem::take(&mut self.credit_waiters) {
            if let Some(w) = self.streams.get_mut(&id).and_then(|s| s.write_waker.take()) {
                w.wake();
            }
        }
    }

    /// Returns session credit for `len` consumed bytes (batched).
    pub(super) fn consume_session(&mut self, len: usize) {
        if len == 0 {
            return;
        }
        if let Some(inc) = self.recv_window.consume(len) {
            self.queue_priority(
                0,
                &Frame::Window {
                    stream_id: 0,
                    increment: inc,
                },
            );
        }
    }

    /// Next item for the stream's reader, taking at most `max` bytes. Credit for what is taken is
    /// returned here, when the consumer has it, never on receipt.
    pub fn poll_recv(&mut self, id: u32, max: usize, cx: &mut Context<'_>) -> Poll<RecvItem> {
        let Some(slot) = self.streams.get_mut(&id) else {
            return Poll::Ready(RecvItem::Reset(
                ErrorCode::STREAM_CLOSED,
                "stream closed".into(),
            ));
        };
        match slot.inbound.front_mut() {
            Some(Inbound::Data(bytes)) => {
                let chunk = if bytes.len() <= max.max(1) {
                    let chunk = std::mem::take(bytes);
                    slot.inbound.pop_front();
                    chunk
                } else {
                    bytes.split_to(max.max(1))
                };
                let n = chunk.len();
                slot.buffered -= n;
                let stream_inc = slot.recv_window.consume(n).filter(|_| !slot.remote_eof);
                let carrier = slot.carrier;
                if let Some(inc) = stream_inc {
                    self.queue_priority(
                        carrier,
                        &Frame::Window {
                            stream_id: id,
                            increment: inc,
                        },
                    );
                }
                self.consume_session(n);
                Poll::Ready(RecvItem::Data(chunk))
            }
            Some(Inbound::Head(_)) => match slot.inbound.pop_front() {
                Some(Inbound::Head(head)) => Poll::Ready(RecvItem::Head(head)),
                _ => Poll::Pending,
            },
            None => {
                if slot.remote_eof {
                    Poll::Ready(RecvItem::Eof)
                } else if let Some((code, reason)) = &slot.reset {
                    Poll::Ready(RecvItem::Reset(*code, reason.clone()))
                } else {
                    slot.read_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }
}
