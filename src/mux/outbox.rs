//! Per-carrier send scheduling: priority frames (PING, PONG, WINDOW, GOAWAY, session control) go
//! first, then streams take turns one frame at a time so a bulk stream cannot starve a small one.

use std::collections::VecDeque;
use std::task::Waker;
use std::time::Duration;
use tokio::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::{FrameType, HEADER_LEN, MAX_FRAMES_PER_MESSAGE, MAX_MESSAGE_BYTES};

/// A frame waiting to be sent. JSON frames are encoded when queued (so an oversized one fails at
/// the call site); DATA keeps its payload as a `Bytes` so queueing never copies.
#[derive(Debug, Clone)]
pub enum OutFrame {
    /// A fully encoded frame.
    Encoded(Bytes),
    /// A DATA frame: header written at batch time.
    Data {
        /// Stream.
        stream_id: u32,
        /// Payload.
        data: Bytes,
    },
}

impl OutFrame {
    /// Bytes this frame takes in a message.
    pub fn wire_len(&self) -> usize {
        match self {
            OutFrame::Encoded(b) => b.len(),
            OutFrame::Data { data, .. } => HEADER_LEN + data.len(),
        }
    }

    /// DATA payload length (credit it consumed), 0 for other frames.
    pub fn data_len(&self) -> usize {
        match self {
            OutFrame::Data { data, .. } => data.len(),
            OutFrame::Encoded(_) => 0,
        }
    }

    /// Appends the frame to a message being assembled.
    pub fn write_to(&self, out: &mut BytesMut) {
        match self {
            OutFrame::Encoded(b) => out.put_slice(b),
            OutFrame::Data { stream_id, data } => {
                put_data_header(out, *stream_id, data.len());
                out.put_slice(data);
            }
        }
    }
}

fn put_data_header(out: &mut BytesMut, stream_id: u32, len: usize) {
    out.put_u8(FrameType::Data as u8);
    out.put_u32(stream_id);
    out.put_u32(len as u32);
}

/// DATA payloads shorter than this are copied next to their header rather than written from
/// their own buffer: a copy that small costs less than one more piece for the transport.
const COPY_BELOW: usize = 2048;

/// Send-side state of one carrier.
#[derive(Debug)]
pub struct CarrierSlot {
    /// False once the carrier is gone.
    pub alive: bool,
    /// Streams pinned here and not yet removed.
    pub active_streams: usize,
    /// Frames that jump the queue.
    pub priority: VecDeque<OutFrame>,
    /// Streams with frames waiting, in turn order.
    pub ready: VecDeque<u32>,
    /// Writer task waiting for work.
    pub writer_waker: Option<Waker>,
    /// Last time anything arrived on this carrier.
    pub last_recv: Instant,
    /// PING in flight: nonce and send time.
    pub ping_outstanding: Option<(u64, Instant)>,
    /// Last measured round trip.
    pub rtt: Option<Duration>,
    /// Highest stream id the peer opened on this carrier (ids rise per carrier).
    pub last_peer_id: u32,
    /// Which attachment of the slot this is and what it moved (re-joins, lost-credit settling).
    pub life: super::carrier_life::CarrierLife,
}

impl CarrierSlot {
    /// A live carrier with nothing queued.
    pub fn new(now: Instant) -> Self {
        Self {
            alive: true,
            active_streams: 0,
            priority: VecDeque::new(),
            ready: VecDeque::new(),
            writer_waker: None,
            last_recv: now,
            ping_outstanding: None,
            rtt: None,
            last_peer_id: 0,
            life: super::carrier_life::CarrierLife::first(),
        }
    }

    /// Wakes the writer after something was queued.
    pub fn wake_writer(&mut self) {
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
    }
}

/// Collects popped frames into one carrier message within the protocol's per-message limits.
#[derive(Debug, Default)]
pub struct Batch {
    /// Frames in send order.
    pub frames: Vec<OutFrame>,
    /// Wire bytes so far.
    pub bytes: usize,
}

impl Batch {
    /// True if `frame` still fits in this message.
    pub fn fits(&self, frame: &OutFrame) -> bool {
        self.frames.len() < MAX_FRAMES_PER_MESSAGE
            && self.bytes + frame.wire_len() <= MAX_MESSAGE_BYTES
    }

    /// Adds a frame (caller checked [`fits`](Self::fits)).
    pub fn push(&mut self, frame: OutFrame) {
        self.bytes += frame.wire_len();
        self.frames.push(frame);
    }

    /// True when nothing was popped.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The batch as the consecutive pieces of one message, for
    /// [`CarrierTx::send_parts`](underpass_transports::CarrierTx::send_parts): frame headers and
    /// small frames gathered into one buffer, and every DATA payload of [`COPY_BELOW`] bytes or
    /// more as the very `Bytes` that was queued. The send path copies no large payload here.
    pub fn into_parts(mut self) -> Vec<Bytes> {
        self.take_parts()
    }

    /// [`into_parts`](Self::into_parts), leaving the batch empty with its frame list's room kept
    /// for the next message (a carrier's writer reuses one batch).
    pub fn take_parts(&mut self) -> Vec<Bytes> {
        self.bytes = 0;
        let gathered: usize = self
            .frames
            .iter()
            .map(|f| match f {
                OutFrame::Data { data, .. } if data.len() >= COPY_BELOW => HEADER_LEN,
                f => f.wire_len(),
            })
            .sum();
        let mut small = BytesMut::with_capacity(gathered);
        let mut parts = Vec::new();
        for f in self.frames.drain(..) {
            match f {
                OutFrame::Data { stream_id, data } if data.len() >= COPY_BELOW => {
                    put_data_header(&mut small, stream_id, data.len());
                    // `split` keeps the rest of the allocation for what follows.
                    parts.push(small.split().freeze());
                    parts.push(data);
                }
                f => f.write_to(&mut small),
            }
        }
        if !small.is_empty() {
            parts.push(small.freeze());
        }
        parts
    }

    /// The batch as one contiguous message (the pieces of [`into_parts`](Self::into_parts)
    /// joined), for tests and transports that need it whole.
    pub fn into_message(self) -> Bytes {
        let bytes = self.bytes;
        let parts = self.into_parts();
        if parts.len() == 1 {
            return parts.into_iter().next().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(bytes);
        for part in parts {
            out.put_slice(&part);
        }
        out.freeze()
    }
}
