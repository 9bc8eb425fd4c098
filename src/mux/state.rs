//! The sans-I/O session state machine: frames in, frames out, no sockets and no runtime. The async
//! driver wraps it in a mutex; tests drive two of them against each other directly.

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::config::MuxConfig;
use super::error::MuxError;
use super::flow::{RecvWindow, SendCredit};
use super::outbox::{Batch, CarrierSlot, OutFrame};
use super::stream_slot::{Inbound, RecvItem, StreamSlot};
use crate::proto::{encode_frame, ErrorCode, Frame, GoAway, ResponseHead, StreamOpen, MAX_PAYLOAD};

/// What the session owner must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum MuxEvent {
    /// The peer opened a stream.
    Incoming {
        /// New stream id.
        stream_id: u32,
        /// Its STREAM_OPEN payload.
        open: StreamOpen,
    },
    /// A session-level frame for the owner (BIND, BIND_OK, BIND_REVOKED, ...).
    Control(Frame),
    /// The peer announced the end of the session.
    GoAway(GoAway),
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Default)]
pub struct MuxStats {
    /// DATA payload bytes handed to carriers.
    pub data_bytes_sent: u64,
    /// DATA payload bytes received.
    pub data_bytes_received: u64,
    /// Times a writer had to wait for credit.
    pub flow_control_stalls: u64,
    /// Streams opened by either side.
    pub streams_opened: u64,
}

/// The whole state of one session.
#[derive(Debug)]
pub struct MuxState {
    pub(super) cfg: MuxConfig,
    pub(super) streams: HashMap<u32, StreamSlot>,
    next_local_id: u32,
    pub(super) send_credit: SendCredit,
    pub(super) recv_window: RecvWindow,
    pub(super) carriers: Vec<CarrierSlot>,
    pub(super) credit_waiters: Vec<u32>,
    pub(super) events: VecDeque<MuxEvent>,
    event_waker: Option<Waker>,
    pub(super) closed: Option<(ErrorCode, String)>,
    pub(super) goaway_received: bool,
    next_ping_nonce: u64,
    pub(super) stats: MuxStats,
}

impl MuxState {
    /// A session with carrier 0 alive.
    pub fn new(cfg: MuxConfig, now: Instant) -> Self {
        Self {
            next_local_id: cfg.role.first_stream_id(),
            send_credit: SendCredit::new(cfg.session_window),
            recv_window: RecvWindow::new(cfg.session_window),
            cfg,
            streams: HashMap::new(),
            carriers: vec![CarrierSlot::new(now)],
            credit_waiters: Vec::new(),
            events: VecDeque::new(),
            event_waker: None,
            closed: None,
            goaway_received: false,
            next_ping_nonce: 1,
            stats: MuxStats::default(),
        }
    }

    /// Settings in force.
    pub fn config(&self) -> &MuxConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &MuxStats {
        &self.stats
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<&(ErrorCode, String)> {
        self.closed.as_ref()
    }

    /// Streams currently tracked.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Streams pinned to each carrier (dead carriers included, as 0).
    pub fn streams_per_carrier(&self) -> Vec<usize> {
        self.carriers.iter().map(|c| c.active_streams).collect()
    }

    /// Carrier a stream is pinned to.
    pub fn stream_carrier(&self, id: u32) -> Option<usize> {
        self.streams.get(&id).map(|s| s.carrier)
    }

    /// Bytes received on a stream and not yet read by its consumer.
    pub fn stream_buffered(&self, id: u32) -> Option<usize> {
        self.streams.get(&id).map(|s| s.buffered)
    }

    /// Credit we may still send on a stream.
    pub fn stream_send_credit(&self, id: u32) -> Option<u64> {
        self.streams.get(&id).map(|s| s.send_credit.available())
    }

    /// Session credit we may still send.
    pub fn session_send_credit(&self) -> u64 {
        self.send_credit.available()
    }

    /// Last measured round trip of a carrier.
    pub fn rtt(&self, carrier: usize) -> Option<Duration> {
        self.carriers.get(carrier).and_then(|c| c.rtt)
    }

    /// Number of carrier slots (alive or not).
    pub fn carrier_count(&self) -> usize {
        self.carriers.len()
    }

    /// True if the carrier exists and is alive.
    pub fn carrier_alive(&self, carrier: usize) -> bool {
        self.carriers.get(carrier).is_some_and(|c| c.alive)
    }

    /// Registers carrier `index` (v2 JOIN). Gaps are filled with dead slots.
    pub fn add_carrier(&mut self, index: usize, now: Instant) {
        while self.carriers.len() <= index {
            let mut slot = CarrierSlot::new(now);
            slot.alive = false;
            self.carriers.push(slot);
        }
        self.carriers[index] = CarrierSlot::new(now);
    }

    fn ensure_open(&self) -> Result<(), MuxError> {
        match &self.closed {
            Some((code, msg)) => Err(MuxError::Closed(*code, msg.clone())),
            None => Ok(()),
        }
    }

    // ---- queueing -------------------------------------------------------------------------

    fn encode(frame: &Frame) -> Result<Bytes, MuxError> {
        let mut out = BytesMut::new();
        encode_frame(frame, &mut out).map_err(|e| MuxError::Encode(e.to_string()))?;
        Ok(out.freeze())
    }

    /// Queues a frame ahead of all stream traffic on `carrier`; dropped if the carrier is dead.
    pub(super) fn queue_priority(&mut self, carrier: usize, frame: &Frame) {
        let Ok(bytes) = Self::encode(frame) else {
            return;
        };
        if let Some(c) = self.carriers.get_mut(carrier).filter(|c| c.alive) {
            c.priority.push_back(OutFrame::Encoded(bytes));
            c.wake_writer();
        }
    }

    fn schedule(&mut self, id: u32) {
        let Some(slot) = self.streams.get_mut(&id) else {
            return;
        };
        if slot.scheduled {
            return;
        }
        slot.scheduled = true;
        if let Some(c) = self.carriers.get_mut(slot.carrier) {
            c.ready.push_back(id);
            c.wake_writer();
        }
    }

    fn push_stream_frame(&mut self, id: u32, frame: OutFrame) {
        if let Some(slot) = self.streams.get_mut(&id) {
            slot.outbox.push_back(frame);
        }
        self.schedule(id);
    }

    /// Sends a session-level control frame (BIND, BIND_OK, ...) on carrier 0.
    pub fn send_control(&mut self, frame: &Frame) -> Result<(), MuxError> {
        self.ensure_open()?;
        let bytes = Self::encode(frame)?;
        if let Some(c) = self.carriers.first_mut().filter(|c| c.alive) {
            c.priority.push_back(OutFrame::Encoded(bytes));
            c.wake_writer();
        }
        Ok(())
    }

    // ---- local stream operations ----------------------------------------------------------

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
        if self.goaway_received {
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
        let frame = Self::encode(&Frame::StreamOpen {
            stream_id: id,
            open: open.clone(),
        })?;
        self.next_local_id += 2;
        let carrier = self.pick_carrier();
        self.streams.insert(
            id,
            StreamSlot::new(carrier, self.cfg.stream_window, open.bind_id),
        );
        self.carriers[carrier].active_streams += 1;
        self.stats.streams_opened += 1;
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
        self.writable_slot(id)?;
        let frame = Self::encode(&Frame::ResponseHead {
            stream_id: id,
            head: head.clone(),
        })?;
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
        if !self.streams.get(&id).is_some_and(|s| s.reset.is_none()) {
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

    /// Resets every stream of binding `bind_id` (unbind, takeover).
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

    fn refund_send(&mut self, len: usize) {
        if len > 0 {
            self.send_credit.refund(len);
            self.wake_credit_waiters();
        }
    }

    fn wake_credit_waiters(&mut self) {
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

    // ---- session-level operations ---------------------------------------------------------

    /// Queues a PING on `carrier` and remembers when it left.
    pub fn send_ping(&mut self, carrier: usize, now: Instant) -> u64 {
        let nonce = self.next_ping_nonce;
        self.next_ping_nonce += 1;
        if let Some(c) = self.carriers.get_mut(carrier) {
            c.ping_outstanding = Some((nonce, now));
        }
        self.queue_priority(carrier, &Frame::Ping(nonce));
        nonce
    }

    /// Keepalive: pings idle carriers and returns the carriers whose pong is overdue.
    pub fn keepalive(&mut self, now: Instant) -> Vec<usize> {
        let mut dead = Vec::new();
        let mut to_ping = Vec::new();
        for (i, c) in self.carriers.iter().enumerate().filter(|(_, c)| c.alive) {
            match c.ping_outstanding {
                Some((_, sent)) if now.duration_since(sent) >= self.cfg.pong_timeout => {
                    dead.push(i)
                }
                None if now.duration_since(c.last_recv) >= self.cfg.ping_after => to_ping.push(i),
                _ => {}
            }
        }
        for i in to_ping {
            self.send_ping(i, now);
        }
        dead
    }

    /// A carrier went away. Losing carrier 0 ends the session; losing another resets only the
    /// streams pinned to it.
    pub fn carrier_lost(&mut self, carrier: usize) {
        let Some(c) = self.carriers.get_mut(carrier) else {
            return;
        };
        if !c.alive {
            return;
        }
        c.alive = false;
        c.priority.clear();
        c.ready.clear();
        c.wake_writer();
        if carrier == 0 {
            self.shutdown(ErrorCode::CANCEL, "session carrier closed");
            return;
        }
        let pinned: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| s.carrier == carrier)
            .map(|(id, _)| *id)
            .collect();
        for id in pinned {
            self.abort_stream(id, ErrorCode::CANCEL, "carrier closed");
            if let Some(s) = self.streams.get_mut(&id) {
                s.scheduled = false;
            }
            self.maybe_remove(id);
        }
    }

    /// Ends the session from our side: GOAWAY goes out on carrier 0, every stream is reset.
    pub fn close(&mut self, code: ErrorCode, message: &str) {
        if self.closed.is_some() {
            return;
        }
        self.queue_priority(
            0,
            &Frame::GoAway(GoAway {
                code,
                message: message.to_string(),
            }),
        );
        self.shutdown(code, message);
    }

    /// Marks the session ended and releases everyone waiting on it.
    pub(super) fn shutdown(&mut self, code: ErrorCode, message: &str) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some((code, message.to_string()));
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.abort_stream(id, code, message);
            self.maybe_remove(id);
        }
        for c in &mut self.carriers {
            c.ready.clear();
            c.wake_writer();
        }
        self.wake_events();
    }

    pub(super) fn wake_events(&mut self) {
        if let Some(w) = self.event_waker.take() {
            w.wake();
        }
    }

    /// Next event for the owner; `None` once the session is closed and drained.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<MuxEvent>> {
        if let Some(ev) = self.events.pop_front() {
            return Poll::Ready(Some(ev));
        }
        if self.closed.is_some() {
            return Poll::Ready(None);
        }
        self.event_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Pops the next event without waiting (tests).
    pub fn take_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

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
        let mut drained = Vec::new();
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
                self.stats.data_bytes_sent += f.data_len() as u64;
                batch.push(f);
            }
            if slot.outbox.is_empty() {
                slot.scheduled = false;
                drained.push(id);
            } else {
                c.ready.push_back(id);
            }
        }
        for id in drained {
            self.maybe_remove(id);
        }
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
