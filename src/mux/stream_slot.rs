//! State of one stream inside a session: both directions' credit, queued output and received
//! input, and the wakers of the handles waiting on it.

use std::collections::VecDeque;
use std::task::Waker;

use bytes::Bytes;

use super::flow::{RecvWindow, SendCredit};
use super::idle::Activity;
use super::outbox::OutFrame;
use crate::proto::{ErrorCode, ResponseHead};

/// Something received on a stream, in arrival order.
#[derive(Debug)]
pub enum Inbound {
    /// Body or raw bytes.
    Data(Bytes),
    /// An HTTP response head (interim or final).
    Head(ResponseHead),
}

/// What a reader gets next from a stream.
#[derive(Debug)]
pub enum RecvItem {
    /// Bytes (already credited back as consumed).
    Data(Bytes),
    /// A response head.
    Head(ResponseHead),
    /// The peer half-closed: no more bytes.
    Eof,
    /// The stream was reset.
    Reset(ErrorCode, String),
}

/// One stream's state.
#[derive(Debug)]
pub struct StreamSlot {
    /// Carrier the stream is pinned to.
    pub carrier: usize,
    /// Credit for our DATA.
    pub send_credit: SendCredit,
    /// Our frames waiting for the carrier writer.
    pub outbox: VecDeque<OutFrame>,
    /// True while this stream's id sits in its carrier's ready list.
    pub scheduled: bool,
    /// We queued EOF (or RESET): no more writes.
    pub write_closed: bool,
    /// Writer waiting for credit.
    pub write_waker: Option<Waker>,
    /// Received and not yet read.
    pub inbound: VecDeque<Inbound>,
    /// DATA bytes in `inbound`.
    pub buffered: usize,
    /// Credit the peer has for this stream.
    pub recv_window: RecvWindow,
    /// Peer sent EOF.
    pub remote_eof: bool,
    /// Reader waiting for input.
    pub read_waker: Option<Waker>,
    /// Set when the stream was reset (by either side) or the session ended.
    pub reset: Option<(ErrorCode, String)>,
    /// Handles still alive.
    pub handles: usize,
    /// Binding the stream serves (from its STREAM_OPEN), so a binding's streams can be reset
    /// together when it is unbound or taken over.
    pub bind_id: u32,
    /// Traffic seen since the last idle sweep.
    pub activity: Activity,
    /// Response heads received (see `head_limit`).
    pub heads: u8,
    /// The final response head arrived: no other may follow.
    pub final_head: bool,
}

impl StreamSlot {
    /// A fresh stream pinned to `carrier`.
    pub fn new(carrier: usize, stream_window: u32, bind_id: u32) -> Self {
        Self {
            carrier,
            send_credit: SendCredit::new(stream_window),
            outbox: VecDeque::new(),
            scheduled: false,
            write_closed: false,
            write_waker: None,
            inbound: VecDeque::new(),
            buffered: 0,
            recv_window: RecvWindow::new(stream_window),
            remote_eof: false,
            read_waker: None,
            reset: None,
            handles: 1,
            bind_id,
            activity: Activity::default(),
            heads: 0,
            final_head: false,
        }
    }

    /// Wakes both the reader and the writer (state changed for both).
    pub fn wake_all(&mut self) {
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }

    /// True once nothing more can happen on the stream: both directions finished (or reset) and
    /// every queued frame went out.
    pub fn finished(&self) -> bool {
        self.outbox.is_empty() && (self.reset.is_some() || (self.write_closed && self.remote_eof))
    }
}
