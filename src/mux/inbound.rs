//! Frame handling: what the state machine does with each frame the peer sends. Nothing here
//! waits: data goes into the stream's buffer (bounded by the credit we granted), so one slow
//! consumer never blocks the carrier's read loop.

use tokio::time::Instant;

use super::error::MuxError;
use super::state::{MuxEvent, MuxState};
use super::stream_slot::{Inbound, StreamSlot};
use crate::proto::{ErrorCode, Frame};

impl MuxState {
    /// Applies one frame received on `carrier`. An `Err` is fatal for the session: the driver
    /// closes it with the error's code.
    pub fn handle_frame(
        &mut self,
        carrier: usize,
        frame: Frame,
        now: Instant,
    ) -> Result<(), MuxError> {
        // Only a backlog this frame's answers caused counts against the peer.
        self.control_backlog = false;
        self.apply_frame(carrier, frame, now)?;
        if self.control_backlog {
            return Err(MuxError::Flood(format!(
                "more than {} control frames waiting for the peer to read them",
                self.cfg.max_queued_control
            )));
        }
        Ok(())
    }

    fn apply_frame(&mut self, carrier: usize, frame: Frame, now: Instant) -> Result<(), MuxError> {
        if let Some(c) = self.carriers.get_mut(carrier) {
            c.last_recv = now;
        }
        if self.closed.is_some() {
            return Ok(());
        }
        match frame {
            Frame::Data { stream_id, data } => {
                if let Some(c) = self.carriers.get_mut(carrier) {
                    c.life.data_received += data.len() as u64;
                }
                self.on_data(stream_id, data)
            }
            Frame::StreamOpen { stream_id, open } => {
                // Ids rise per carrier; across carriers opens may overtake each other.
                let last = self.carriers.get(carrier).map_or(0, |c| c.last_peer_id);
                if !self.cfg.role.is_peer_stream(stream_id)
                    || stream_id <= last
                    || self.streams.contains_key(&stream_id)
                {
                    return Err(MuxError::Protocol(format!(
                        "STREAM_OPEN with invalid or reused stream id {stream_id}"
                    )));
                }
                if let Some(c) = self.carriers.get_mut(carrier) {
                    c.last_peer_id = stream_id;
                }
                if self.draining {
                    // We announced GOAWAY: refuse, the peer may retry elsewhere.
                    self.queue_priority(
                        carrier,
                        &Frame::Reset {
                            stream_id,
                            code: ErrorCode::REFUSED_STREAM,
                            reason: "session is going away".into(),
                        },
                    );
                    return Ok(());
                }
                if self.streams.len() >= self.cfg.max_streams {
                    self.queue_priority(
                        carrier,
                        &Frame::Reset {
                            stream_id,
                            code: ErrorCode::REFUSED_STREAM,
                            reason: format!("stream limit {} reached", self.cfg.max_streams),
                        },
                    );
                    return Ok(());
                }
                let bind_id = open.bind_id;
                self.push_event(MuxEvent::Incoming { stream_id, open })?;
                self.streams.insert(
                    stream_id,
                    StreamSlot::new(carrier, self.cfg.stream_window, bind_id),
                );
                if let Some(c) = self.carriers.get_mut(carrier) {
                    c.active_streams += 1;
                }
                self.stats.streams_opened += 1;
                self.bind_traffic.entry(bind_id).streams_opened += 1;
                Ok(())
            }
            Frame::ResponseHead { stream_id, head } => {
                let refused = match self.streams.get_mut(&stream_id) {
                    Some(slot) if slot.reset.is_none() && slot.handles > 0 => {
                        let admitted = slot.admit_head(head.is_final);
                        if admitted.is_ok() {
                            slot.activity.touch();
                            slot.inbound.push_back(Inbound::Head(head));
                            slot.wake_all();
                        }
                        admitted.err()
                    }
                    _ => None,
                };
                if let Some((code, reason)) = refused {
                    self.reset_stream(stream_id, code, reason);
                }
                Ok(())
            }
            Frame::Eof { stream_id } => {
                if let Some(slot) = self.streams.get_mut(&stream_id) {
                    slot.remote_eof = true;
                    slot.wake_all();
                }
                self.maybe_remove(stream_id);
                Ok(())
            }
            Frame::Reset {
                stream_id,
                code,
                reason,
            } => {
                if self.streams.get(&stream_id).is_some_and(|s| s.remote_eof) {
                    // The peer finished sending before it reset: what it sent is complete and
                    // stays readable; only our direction is cut.
                    self.cut_send_side(stream_id, code, &reason);
                } else {
                    self.abort_stream(stream_id, code, &reason);
                }
                self.maybe_remove(stream_id);
                Ok(())
            }
            Frame::Window {
                stream_id,
                increment,
            } => self.on_window(stream_id, increment),
            Frame::Ping(nonce) => {
                self.queue_priority(carrier, &Frame::Pong(nonce));
                Ok(())
            }
            Frame::Pong(nonce) => {
                for c in &mut self.carriers {
                    if let Some((sent_nonce, sent)) = c.ping_outstanding {
                        if sent_nonce == nonce {
                            c.rtt = Some(now.saturating_duration_since(sent));
                            c.ping_outstanding = None;
                        }
                    }
                }
                Ok(())
            }
            Frame::GoAway(goaway) => {
                // No new streams from now on; running ones finish or end with their carriers.
                self.goaway_received = true;
                self.push_event(MuxEvent::GoAway(goaway))
            }
            other => self.push_event(MuxEvent::Control(other)),
        }
    }

    fn push_event(&mut self, ev: MuxEvent) -> Result<(), MuxError> {
        if self.events.len() >= self.cfg.max_pending_events {
            return Err(MuxError::Flood(format!(
                "more than {} control frames pending",
                self.cfg.max_pending_events
            )));
        }
        self.events.push_back(ev);
        self.wake_events();
        Ok(())
    }

    fn on_data(&mut self, id: u32, data: bytes::Bytes) -> Result<(), MuxError> {
        let len = data.len();
        if !self.recv_window.receive(len) {
            return Err(MuxError::FlowControl(format!(
                "DATA of {len} bytes exceeds the session credit ({} left)",
                self.recv_window.remaining()
            )));
        }
        self.stats.data_bytes_received += len as u64;
        let Some(slot) = self.streams.get_mut(&id) else {
            // Unknown or closed stream: the bytes are dropped but the session credit comes back.
            self.consume_session(len);
            return Ok(());
        };
        if slot.reset.is_some() || slot.remote_eof {
            self.consume_session(len);
            return Ok(());
        }
        self.bind_traffic.entry(slot.bind_id).bytes_received += len as u64;
        slot.activity.touch();
        if !slot.recv_window.receive(len) {
            self.consume_session(len);
            self.reset_stream(id, ErrorCode::FLOW_CONTROL, "stream credit exceeded");
            return Ok(());
        }
        if slot.handles == 0 {
            // Detached after our half-close: nobody reads, so both credits go straight back.
            let inc = slot.recv_window.consume(len);
            let carrier = slot.carrier;
            if let Some(increment) = inc {
                self.queue_priority(
                    carrier,
                    &Frame::Window {
                        stream_id: id,
                        increment,
                    },
                );
            }
            self.consume_session(len);
            return Ok(());
        }
        if len > 0 {
            slot.buffered += len;
            slot.inbound.push_back(Inbound::Data(data));
            slot.wake_all();
        }
        Ok(())
    }

    fn on_window(&mut self, id: u32, increment: u32) -> Result<(), MuxError> {
        if id == 0 {
            if !self.send_credit.grant(increment) {
                return Err(MuxError::FlowControl(format!(
                    "session WINDOW of {increment} is zero or exceeds the initial window"
                )));
            }
            for waiter in std::mem::take(&mut self.credit_waiters) {
                if let Some(w) = self
                    .streams
                    .get_mut(&waiter)
                    .and_then(|s| s.write_waker.take())
                {
                    w.wake();
                }
            }
            return Ok(());
        }
        let Some(slot) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if slot.reset.is_some() {
            return Ok(());
        }
        if !slot.send_credit.grant(increment) {
            self.reset_stream(
                id,
                ErrorCode::FLOW_CONTROL,
                "WINDOW increment is zero or exceeds the initial window",
            );
            return Ok(());
        }
        if let Some(w) = slot.write_waker.take() {
            w.wake();
        }
        Ok(())
    }
}
