//! The sans-I/O session state machine: frames in, frames out, no sockets and no runtime. The async
//! driver wraps it in a mutex; tests drive two of them against each other directly.

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::Instant;

use bytes::{Bytes, BytesMut};

use super::bind_traffic::TrafficByBinding;
use super::config::MuxConfig;
use super::error::MuxError;
use super::flow::{RecvWindow, SendCredit};
use super::outbox::{CarrierSlot, OutFrame};
use super::stream_slot::StreamSlot;
use crate::proto::{encode_frame, EncodeError, ErrorCode, Frame, GoAway, StreamOpen};

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
    /// A carrier of the running session went away (carrier 0: the session ends with it).
    CarrierLost {
        /// Its index.
        index: usize,
        /// What ended it, for logs.
        cause: String,
    },
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
    /// Looked up several times per frame: hashed with a seeded foldhash, not SipHash.
    pub(super) streams: HashMap<u32, StreamSlot, foldhash::fast::RandomState>,
    pub(super) next_local_id: u32,
    pub(super) send_credit: SendCredit,
    pub(super) recv_window: RecvWindow,
    pub(super) carriers: Vec<CarrierSlot>,
    pub(super) credit_waiters: Vec<u32>,
    pub(super) events: VecDeque<MuxEvent>,
    event_waker: Option<Waker>,
    pub(super) closed: Option<(ErrorCode, String)>,
    pub(super) goaway_received: bool,
    /// We sent GOAWAY but keep running streams: no new streams either way.
    pub(super) draining: bool,
    /// The session ended because carrier 0 went away (a network blip), not by decision.
    lost_carrier0: bool,
    next_ping_nonce: u64,
    pub(super) stats: MuxStats,
    pub(super) bind_traffic: TrafficByBinding,
    /// Streams whose outbox a batch emptied, kept between batches so popping one allocates
    /// nothing ([`pop_batch`](Self::pop_batch)).
    pub(super) drained_scratch: Vec<u32>,
    /// A carrier's priority queue outgrew `max_queued_control`: the peer asks for answers
    /// faster than it reads them.
    pub(super) control_backlog: bool,
    /// Carriers lost since the driver last looked (index, attachment), so it stops their tasks.
    pub(super) newly_lost: Vec<(usize, u64)>,
}

impl MuxState {
    /// A session with carrier 0 alive.
    pub fn new(cfg: MuxConfig, now: Instant) -> Self {
        Self {
            next_local_id: cfg.role.first_stream_id(),
            send_credit: SendCredit::new(cfg.session_window),
            recv_window: RecvWindow::new(cfg.session_window),
            cfg,
            streams: HashMap::default(),
            carriers: vec![CarrierSlot::new(now)],
            credit_waiters: Vec::new(),
            events: VecDeque::new(),
            event_waker: None,
            closed: None,
            goaway_received: false,
            draining: false,
            lost_carrier0: false,
            next_ping_nonce: 1,
            stats: MuxStats::default(),
            bind_traffic: TrafficByBinding::default(),
            drained_scratch: Vec::new(),
            control_backlog: false,
            newly_lost: Vec::new(),
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

    /// True when the session ended because its carrier 0 was lost rather than closed on
    /// purpose: the case a server parks for resume.
    pub fn lost_session_carrier(&self) -> bool {
        self.lost_carrier0
    }

    /// True once the peer sent GOAWAY: it is ending the session on purpose.
    pub fn peer_went_away(&self) -> bool {
        self.goaway_received
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

    /// Registers carrier `index` (v2 JOIN, or a re-join after a loss). Gaps are filled with
    /// dead slots. Returns the attachment number of the slot: 1 for its first carrier, more for
    /// one that replaced a lost carrier.
    pub fn add_carrier(&mut self, index: usize, now: Instant) -> u64 {
        while self.carriers.len() <= index {
            let mut slot = CarrierSlot::new(now);
            slot.alive = false;
            slot.life = Default::default();
            self.carriers.push(slot);
        }
        if self.carriers[index].alive {
            self.carrier_lost_because(index, "replaced by a new carrier");
        }
        let old = &self.carriers[index];
        let mut slot = CarrierSlot::new(now);
        slot.life = old.life.next();
        // Streams of the lost carrier that wait for their handles to go still count here, and
        // the peer's stream ids keep rising on this index.
        slot.active_streams = old.active_streams;
        slot.last_peer_id = old.last_peer_id;
        let attachment = slot.life.attachment;
        self.carriers[index] = slot;
        attachment
    }

    pub(super) fn ensure_open(&self) -> Result<(), MuxError> {
        match &self.closed {
            Some((code, msg)) => Err(MuxError::Closed(*code, msg.clone())),
            None => Ok(()),
        }
    }

    // ---- queueing -------------------------------------------------------------------------

    pub(super) fn encode(frame: &Frame) -> Result<Bytes, MuxError> {
        Self::encode_with(|out| encode_frame(frame, out))
    }

    /// One frame written by `write` (an encoder that borrows what it encodes).
    pub(super) fn encode_with(
        write: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<Bytes, MuxError> {
        let mut out = BytesMut::new();
        write(&mut out).map_err(|e| MuxError::Encode(e.to_string()))?;
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
            if c.priority.len() > self.cfg.max_queued_control {
                self.control_backlog = true;
            }
        }
    }

    pub(super) fn schedule(&mut self, id: u32) {
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

    pub(super) fn push_stream_frame(&mut self, id: u32, frame: OutFrame) {
        if let Some(slot) = self.streams.get_mut(&id) {
            slot.outbox.push_back(frame);
        }
        self.schedule(id);
    }

    /// Sends a session-level control frame (BIND, BIND_OK, ...) on carrier 0.
    ///
    /// A peer that keeps asking (BIND, UNBIND) without reading the answers would grow carrier
    /// 0's queue without end; past `max_queued_control` the session ends with
    /// ENHANCE_YOUR_CALM instead.
    pub fn send_control(&mut self, frame: &Frame) -> Result<(), MuxError> {
        self.ensure_open()?;
        let bytes = Self::encode(frame)?;
        let limit = self.cfg.max_queued_control;
        if let Some(c) = self.carriers.first_mut().filter(|c| c.alive) {
            if c.priority.len() >= limit {
                let e = MuxError::Flood(format!(
                    "more than {limit} answers waiting for the peer to read them"
                ));
                self.close(e.code(), &e.to_string());
                return Err(e);
            }
            c.priority.push_back(OutFrame::Encoded(bytes));
            c.wake_writer();
        }
        Ok(())
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

    /// Keepalive: pings idle carriers, resets idle streams, and returns the carriers whose pong
    /// is overdue.
    pub fn keepalive(&mut self, now: Instant) -> Vec<usize> {
        self.reset_idle_streams(now);
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
        self.carrier_lost_because(carrier, "carrier lost");
    }

    /// [`carrier_lost`](Self::carrier_lost), with what ended it: the owner gets
    /// [`MuxEvent::CarrierLost`] with `cause` while the session runs.
    pub fn carrier_lost_because(&mut self, carrier: usize, cause: &str) {
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
        self.newly_lost.push((carrier, c.life.attachment));
        if self.closed.is_none() && self.events.len() < self.cfg.max_pending_events {
            self.events.push_back(MuxEvent::CarrierLost {
                index: carrier,
                cause: cause.to_string(),
            });
            self.wake_events();
        }
        if carrier == 0 {
            self.lost_carrier0 = self.closed.is_none();
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

    /// Announces the end without cutting anything: GOAWAY goes out, no new streams are opened
    /// from here on, and running streams finish (then [`close`](Self::close)).
    pub fn go_away(&mut self, code: ErrorCode, message: &str) {
        if self.draining || self.closed.is_some() {
            return;
        }
        self.draining = true;
        self.queue_priority(
            0,
            &Frame::GoAway(GoAway {
                code,
                message: message.to_string(),
            }),
        );
    }

    /// Ends the session from our side: GOAWAY goes out on carrier 0, every stream is reset.
    pub fn close(&mut self, code: ErrorCode, message: &str) {
        if self.closed.is_some() {
            return;
        }
        // A drain already told the peer; one GOAWAY is enough.
        if !self.draining {
            self.queue_priority(
                0,
                &Frame::GoAway(GoAway {
                    code,
                    message: message.to_string(),
                }),
            );
        }
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
}
