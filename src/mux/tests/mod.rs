//! State-machine tests without sockets: two [`MuxState`]s pumped into each other (a "Pair"),
//! every message going through the real codec.

mod flow;
mod hostile_peer;
mod lifecycle;
mod recv_chunks;
mod rejoin;
mod send_parts;
mod session;

use std::task::{Context, Poll, Waker};
use tokio::time::Instant;

use bytes::Bytes;

pub(super) use super::*;
use crate::proto::{decode_message, Frame, StreamOpen};

pub(super) const STREAM_WINDOW: u32 = 64 * 1024;
pub(super) const SESSION_WINDOW: u32 = 256 * 1024;

pub(super) fn cfg(role: Role) -> MuxConfig {
    MuxConfig {
        stream_window: STREAM_WINDOW,
        session_window: SESSION_WINDOW,
        ..MuxConfig::new(role)
    }
}

pub(super) fn cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// Server and client state, with every carrier message run through the real codec.
pub(super) struct Pair {
    pub(super) server: MuxState,
    pub(super) client: MuxState,
    pub(super) now: Instant,
    /// Frames seen going server -> client, for assertions.
    pub(super) to_client: Vec<Frame>,
    /// Frames seen going client -> server.
    pub(super) to_server: Vec<Frame>,
}

impl Pair {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Self {
            server: MuxState::new(cfg(Role::Server), now),
            client: MuxState::new(cfg(Role::Client), now),
            now,
            to_client: Vec::new(),
            to_server: Vec::new(),
        }
    }

    pub(super) fn add_carriers(&mut self, n: usize) {
        for i in 1..n {
            self.server.add_carrier(i, self.now);
            self.client.add_carrier(i, self.now);
        }
    }

    /// Moves every queued frame both ways until nothing moves. Returns session errors.
    pub(super) fn pump(&mut self) -> Result<(), (bool, MuxError)> {
        for _ in 0..10_000 {
            let a = transfer(
                &mut self.server,
                &mut self.client,
                self.now,
                &mut self.to_client,
            )
            .map_err(|e| (false, e))?;
            let b = transfer(
                &mut self.client,
                &mut self.server,
                self.now,
                &mut self.to_server,
            )
            .map_err(|e| (true, e))?;
            if !a && !b {
                return Ok(());
            }
        }
        panic!("pump did not settle");
    }
}

pub(super) fn transfer(
    from: &mut MuxState,
    to: &mut MuxState,
    now: Instant,
    log: &mut Vec<Frame>,
) -> Result<bool, MuxError> {
    let mut moved = false;
    for carrier in 0..from.carrier_count() {
        loop {
            let mut batch = Batch::default();
            from.pop_batch(carrier, &mut batch);
            if batch.is_empty() {
                break;
            }
            moved = true;
            let frames = decode_message(&batch.into_message()).expect("own messages decode");
            for f in frames {
                log.push(f.clone());
                to.handle_frame(carrier, f, now)?;
            }
        }
    }
    Ok(moved)
}

/// Everything `st` has queued, decoded, without delivering it.
pub(super) fn outgoing(st: &mut MuxState) -> Vec<Frame> {
    let mut frames = Vec::new();
    for carrier in 0..st.carrier_count() {
        loop {
            let mut batch = Batch::default();
            st.pop_batch(carrier, &mut batch);
            if batch.is_empty() {
                break;
            }
            frames.extend(decode_message(&batch.into_message()).unwrap());
        }
    }
    frames
}

/// Writes as much as credit allows; returns bytes accepted.
pub(super) fn write_all_credit(st: &mut MuxState, id: u32, total: usize) -> usize {
    let mut sent = 0;
    while sent < total {
        match st.poll_send_capacity(id, &mut cx()) {
            Poll::Ready(Ok(cap)) => {
                let n = cap.min(total - sent);
                st.push_data(id, Bytes::from(vec![7u8; n])).unwrap();
                sent += n;
            }
            Poll::Ready(Err(e)) => panic!("write failed: {e}"),
            Poll::Pending => break,
        }
    }
    sent
}

pub(super) fn read_n(st: &mut MuxState, id: u32, max: usize) -> usize {
    let mut got = 0;
    while got < max {
        match st.poll_recv(id, max - got, &mut cx()) {
            Poll::Ready(RecvItem::Data(b)) => got += b.len(),
            _ => break,
        }
    }
    got
}

pub(super) fn open_tcp(pair: &mut Pair) -> u32 {
    let id = pair.server.open_stream(&StreamOpen::tcp(1)).unwrap();
    pair.pump().unwrap();
    match pair.client.take_event() {
        Some(MuxEvent::Incoming { stream_id, .. }) => assert_eq!(stream_id, id),
        other => panic!("expected Incoming, got {other:?}"),
    }
    id
}
