//! State-machine tests without sockets: two [`MuxState`]s pumped into each other (a "Pair").

use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::proto::{decode_message, ErrorCode, Frame, StreamOpen};

const STREAM_WINDOW: u32 = 64 * 1024;
const SESSION_WINDOW: u32 = 256 * 1024;

fn cfg(role: Role) -> MuxConfig {
    MuxConfig {
        stream_window: STREAM_WINDOW,
        session_window: SESSION_WINDOW,
        ..MuxConfig::new(role)
    }
}

fn cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// Server and client state, with every carrier message run through the real codec.
struct Pair {
    server: MuxState,
    client: MuxState,
    now: Instant,
    /// Frames seen going server -> client, for assertions.
    to_client: Vec<Frame>,
    /// Frames seen going client -> server.
    to_server: Vec<Frame>,
}

impl Pair {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            server: MuxState::new(cfg(Role::Server), now),
            client: MuxState::new(cfg(Role::Client), now),
            now,
            to_client: Vec::new(),
            to_server: Vec::new(),
        }
    }

    fn add_carriers(&mut self, n: usize) {
        for i in 1..n {
            self.server.add_carrier(i, self.now);
            self.client.add_carrier(i, self.now);
        }
    }

    /// Moves every queued frame both ways until nothing moves. Returns session errors.
    fn pump(&mut self) -> Result<(), (bool, MuxError)> {
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

fn transfer(
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
fn outgoing(st: &mut MuxState) -> Vec<Frame> {
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
fn write_all_credit(st: &mut MuxState, id: u32, total: usize) -> usize {
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

fn read_n(st: &mut MuxState, id: u32, max: usize) -> usize {
    let mut got = 0;
    while got < max {
        match st.poll_recv(id, max - got, &mut cx()) {
            Poll::Ready(RecvItem::Data(b)) => got += b.len(),
            _ => break,
        }
    }
    got
}

fn open_tcp(pair: &mut Pair) -> u32 {
    let id = pair.server.open_stream(&StreamOpen::tcp(1)).unwrap();
    pair.pump().unwrap();
    match pair.client.take_event() {
        Some(MuxEvent::Incoming { stream_id, .. }) => assert_eq!(stream_id, id),
        other => panic!("expected Incoming, got {other:?}"),
    }
    id
}

#[test]
fn credit_is_never_exceeded() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    let sent = write_all_credit(&mut p.server, id, 10 * STREAM_WINDOW as usize);
    assert_eq!(
        sent, STREAM_WINDOW as usize,
        "writer stops at the stream window"
    );
    p.pump().unwrap();
    assert_eq!(p.client.stream_buffered(id), Some(STREAM_WINDOW as usize));
    assert_eq!(p.server.stream_send_credit(id), Some(0));
    assert!(matches!(
        p.server.poll_send_capacity(id, &mut cx()),
        Poll::Pending
    ));
    assert!(p.server.stats().flow_control_stalls > 0);
}

#[test]
fn window_is_returned_only_after_the_consumer_reads() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    write_all_credit(&mut p.server, id, STREAM_WINDOW as usize);
    p.pump().unwrap();
    assert!(
        !p.to_server
            .iter()
            .any(|f| matches!(f, Frame::Window { .. })),
        "no WINDOW before anything was read"
    );
    // Reading less than half the window keeps the credit batched.
    read_n(&mut p.client, id, STREAM_WINDOW as usize / 4);
    p.pump().unwrap();
    assert_eq!(p.server.stream_send_credit(id), Some(0));
    read_n(&mut p.client, id, STREAM_WINDOW as usize / 4);
    p.pump().unwrap();
    assert_eq!(
        p.server.stream_send_credit(id),
        Some(STREAM_WINDOW as u64 / 2)
    );
}

#[test]
fn stream_overrun_is_a_flow_control_reset() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    let too_big = Bytes::from(vec![0u8; 65_536]);
    let now = p.now;
    // Bypass the sender's checks to play a misbehaving peer.
    p.client
        .handle_frame(
            0,
            Frame::Data {
                stream_id: id,
                data: too_big.clone(),
            },
            now,
        )
        .unwrap();
    p.client
        .handle_frame(
            0,
            Frame::Data {
                stream_id: id,
                data: too_big,
            },
            now,
        )
        .unwrap();
    assert!(matches!(
        p.client.poll_recv(id, 1 << 20, &mut cx()),
        Poll::Ready(RecvItem::Reset(ErrorCode::FLOW_CONTROL, _))
    ));
    // The injected bytes were never charged to the server, so inspect the client's output
    // instead of pumping it (the server would rightly refuse the excess session credit).
    assert!(outgoing(&mut p.client).iter().any(|f| matches!(
        f,
        Frame::Reset { stream_id, code: ErrorCode::FLOW_CONTROL, .. } if *stream_id == id
    )));
}

#[test]
fn session_overrun_is_fatal_flow_control() {
    let mut p = Pair::new();
    let now = p.now;
    let chunk = Bytes::from(vec![0u8; 65_536]);
    let mut result = Ok(());
    for _ in 0..(SESSION_WINDOW as usize / 65_536 + 1) {
        // Unknown stream: session credit is still charged.
        result = p.client.handle_frame(
            0,
            Frame::Data {
                stream_id: 2,
                data: chunk.clone(),
            },
            now,
        );
        if result.is_err() {
            break;
        }
        // Nothing is returned to the peer because we never let the pump run.
    }
    // Unknown-stream data is credited back locally at once, so the peer never overran.
    assert!(result.is_ok());
    let err = {
        let mut st = MuxState::new(cfg(Role::Client), now);
        st.recv_window = RecvWindow::new(10);
        st.handle_frame(
            0,
            Frame::Data {
                stream_id: 2,
                data: Bytes::from_static(&[0; 11]),
            },
            now,
        )
        .unwrap_err()
    };
    assert_eq!(err.code(), ErrorCode::FLOW_CONTROL);
}

#[test]
fn data_on_unknown_stream_earns_session_credit_back() {
    let mut p = Pair::new();
    let now = p.now;
    let half = Bytes::from(vec![0u8; SESSION_WINDOW as usize / 2]);
    for chunk in half.chunks(65_536) {
        p.client
            .handle_frame(
                0,
                Frame::Data {
                    stream_id: 40,
                    data: Bytes::copy_from_slice(chunk),
                },
                now,
            )
            .unwrap();
    }
    assert!(outgoing(&mut p.client).iter().any(|f| matches!(
        f,
        Frame::Window { stream_id: 0, increment } if *increment == SESSION_WINDOW / 2
    )));
}

#[test]
fn zero_or_inflating_window_is_flow_control() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    let now = p.now;
    p.server
        .handle_frame(
            0,
            Frame::Window {
                stream_id: id,
                increment: 0,
            },
            now,
        )
        .unwrap();
    assert!(matches!(
        p.server.poll_send_capacity(id, &mut cx()),
        Poll::Ready(Err(MuxError::Reset(ErrorCode::FLOW_CONTROL, _)))
    ));
    let err = p
        .server
        .handle_frame(
            0,
            Frame::Window {
                stream_id: 0,
                increment: 1,
            },
            now,
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::FLOW_CONTROL);
    // WINDOW for an unknown stream is ignored.
    let mut q = Pair::new();
    let now = q.now;
    q.server
        .handle_frame(
            0,
            Frame::Window {
                stream_id: 99,
                increment: 5,
            },
            now,
        )
        .unwrap();
}

#[test]
fn eof_is_a_half_close() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    p.server.push_data(id, Bytes::from_static(b"ping")).unwrap();
    p.server.close_write(id).unwrap();
    p.pump().unwrap();
    assert!(
        matches!(p.client.poll_recv(id, 100, &mut cx()), Poll::Ready(RecvItem::Data(b)) if &b[..] == b"ping")
    );
    assert!(matches!(
        p.client.poll_recv(id, 100, &mut cx()),
        Poll::Ready(RecvItem::Eof)
    ));
    // The other direction is still open.
    p.client.push_data(id, Bytes::from_static(b"pong")).unwrap();
    p.client.close_write(id).unwrap();
    p.pump().unwrap();
    assert!(
        matches!(p.server.poll_recv(id, 100, &mut cx()), Poll::Ready(RecvItem::Data(b)) if &b[..] == b"pong")
    );
    assert!(matches!(
        p.server.poll_recv(id, 100, &mut cx()),
        Poll::Ready(RecvItem::Eof)
    ));
    // Writing after EOF is refused.
    assert_eq!(
        p.server.push_data(id, Bytes::from_static(b"x")),
        Err(MuxError::WriteClosed)
    );
    // Both sides finished and dropped: the stream is gone on both ends.
    p.server.drop_handle(id);
    p.client.drop_handle(id);
    p.pump().unwrap();
    assert_eq!(p.server.stream_count(), 0);
    assert_eq!(p.client.stream_count(), 0);
}

#[test]
fn reset_closes_both_directions_and_returns_credit() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    write_all_credit(&mut p.server, id, STREAM_WINDOW as usize);
    p.pump().unwrap();
    p.client.reset_stream(id, ErrorCode::CANCEL, "bye");
    p.pump().unwrap();
    assert!(matches!(
        p.server.poll_recv(id, 10, &mut cx()),
        Poll::Ready(RecvItem::Reset(ErrorCode::CANCEL, r)) if r == "bye"
    ));
    assert!(matches!(
        p.server.poll_send_capacity(id, &mut cx()),
        Poll::Ready(Err(MuxError::Reset(..)))
    ));
    // The discarded buffer's session credit went back (half the session window was not reached,
    // so it is still owed in the batch, not lost): the client can return it on demand.
    assert_eq!(
        p.client.recv_window.release() as usize,
        STREAM_WINDOW as usize
    );
    p.server.drop_handle(id);
    p.client.drop_handle(id);
    assert_eq!(p.server.stream_count(), 0);
    assert_eq!(p.client.stream_count(), 0);
}

#[test]
fn dropping_an_unfinished_stream_cancels_it() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    p.client.drop_handle(id);
    p.pump().unwrap();
    assert!(matches!(
        p.server.poll_recv(id, 10, &mut cx()),
        Poll::Ready(RecvItem::Reset(ErrorCode::CANCEL, _))
    ));
}

#[test]
fn ping_measures_rtt() {
    let mut p = Pair::new();
    let t0 = p.now;
    p.server.send_ping(0, t0);
    // Deliver the PING to the client, and the PONG back 7 ms later.
    transfer(&mut p.server, &mut p.client, t0, &mut p.to_client).unwrap();
    transfer(
        &mut p.client,
        &mut p.server,
        t0 + Duration::from_millis(7),
        &mut p.to_server,
    )
    .unwrap();
    assert_eq!(p.server.rtt(0), Some(Duration::from_millis(7)));
}

#[test]
fn keepalive_pings_idle_carriers_and_drops_silent_ones() {
    let mut st = MuxState::new(cfg(Role::Server), Instant::now());
    let t0 = Instant::now();
    assert!(st.keepalive(t0).is_empty());
    let later = t0 + st.config().ping_after + Duration::from_millis(1);
    assert!(st.keepalive(later).is_empty(), "first it pings");
    let mut batch = Batch::default();
    st.pop_batch(0, &mut batch);
    let frames = decode_message(&batch.into_message()).unwrap();
    assert!(matches!(frames[0], Frame::Ping(_)));
    let dead = st.keepalive(later + st.config().pong_timeout);
    assert_eq!(dead, vec![0]);
}

#[test]
fn control_frames_go_ahead_of_queued_data() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    write_all_credit(&mut p.server, id, STREAM_WINDOW as usize);
    p.server.send_ping(0, p.now);
    let mut batch = Batch::default();
    p.server.pop_batch(0, &mut batch);
    let frames = decode_message(&batch.into_message()).unwrap();
    assert!(
        matches!(frames[0], Frame::Ping(_)),
        "PING first, got {:?}",
        frames[0].frame_type()
    );
    assert!(frames.len() <= crate::proto::MAX_FRAMES_PER_MESSAGE);
}

#[test]
fn streams_spread_over_carriers_and_stay_pinned() {
    let mut p = Pair::new();
    p.add_carriers(4);
    let ids: Vec<u32> = (0..8)
        .map(|_| p.server.open_stream(&StreamOpen::tcp(1)).unwrap())
        .collect();
    assert_eq!(p.server.streams_per_carrier(), vec![2, 2, 2, 2]);
    p.pump().unwrap();
    for id in &ids {
        // The client pins each stream to the carrier that delivered its STREAM_OPEN.
        assert_eq!(p.client.stream_carrier(*id), p.server.stream_carrier(*id));
    }
    // Losing carrier 2 resets only its streams.
    p.client.carrier_lost(2);
    let on2: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|id| p.server.stream_carrier(*id) == Some(2))
        .collect();
    for id in &ids {
        let reset = matches!(
            p.client.poll_recv(*id, 10, &mut cx()),
            Poll::Ready(RecvItem::Reset(..))
        );
        assert_eq!(reset, on2.contains(id));
    }
    // Losing carrier 0 ends the session.
    p.client.carrier_lost(0);
    assert!(p.client.closed().is_some());
}

#[test]
fn a_stalled_stream_does_not_block_another() {
    let mut p = Pair::new();
    let stalled = open_tcp(&mut p);
    let busy = open_tcp(&mut p);
    write_all_credit(&mut p.server, stalled, 10 * STREAM_WINDOW as usize);
    let mut delivered = 0;
    for _ in 0..50 {
        write_all_credit(&mut p.server, busy, STREAM_WINDOW as usize);
        p.pump().unwrap();
        delivered += read_n(&mut p.client, busy, usize::MAX);
        p.pump().unwrap();
    }
    assert!(
        delivered >= 20 * STREAM_WINDOW as usize,
        "busy stream moved {delivered}"
    );
    assert_eq!(
        p.client.stream_buffered(stalled),
        Some(STREAM_WINDOW as usize)
    );
}

#[test]
fn wrong_parity_or_reused_stream_ids_are_protocol_errors() {
    let mut st = MuxState::new(cfg(Role::Client), Instant::now());
    let now = Instant::now();
    let odd = st.handle_frame(
        0,
        Frame::StreamOpen {
            stream_id: 3,
            open: StreamOpen::tcp(1),
        },
        now,
    );
    assert_eq!(odd.unwrap_err().code(), ErrorCode::PROTOCOL);
    st.handle_frame(
        0,
        Frame::StreamOpen {
            stream_id: 4,
            open: StreamOpen::tcp(1),
        },
        now,
    )
    .unwrap();
    let reused = st.handle_frame(
        0,
        Frame::StreamOpen {
            stream_id: 4,
            open: StreamOpen::tcp(1),
        },
        now,
    );
    assert_eq!(reused.unwrap_err().code(), ErrorCode::PROTOCOL);
}

#[test]
fn stream_limit_refuses_new_streams() {
    let mut st = MuxState::new(
        MuxConfig {
            max_streams: 1,
            ..cfg(Role::Client)
        },
        Instant::now(),
    );
    let now = Instant::now();
    st.handle_frame(
        0,
        Frame::StreamOpen {
            stream_id: 2,
            open: StreamOpen::tcp(1),
        },
        now,
    )
    .unwrap();
    st.handle_frame(
        0,
        Frame::StreamOpen {
            stream_id: 4,
            open: StreamOpen::tcp(1),
        },
        now,
    )
    .unwrap();
    let mut batch = Batch::default();
    st.pop_batch(0, &mut batch);
    let frames = decode_message(&batch.into_message()).unwrap();
    assert!(frames.iter().any(|f| matches!(
        f,
        Frame::Reset {
            stream_id: 4,
            code: ErrorCode::REFUSED_STREAM,
            ..
        }
    )));
}

#[test]
fn control_flood_is_refused() {
    let mut st = MuxState::new(
        MuxConfig {
            max_pending_events: 3,
            ..cfg(Role::Server)
        },
        Instant::now(),
    );
    let now = Instant::now();
    let unbind = || Frame::Unbind(crate::proto::BindRef { bind_id: 1 });
    for _ in 0..3 {
        st.handle_frame(0, unbind(), now).unwrap();
    }
    assert_eq!(
        st.handle_frame(0, unbind(), now).unwrap_err().code(),
        ErrorCode::ENHANCE_YOUR_CALM
    );
}

#[test]
fn reset_after_eof_keeps_the_finished_data_readable() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    // The client answers completely, then cancels (it does not want the rest of the request).
    p.client
        .push_data(id, Bytes::from_static(b"response"))
        .unwrap();
    p.client.close_write(id).unwrap();
    p.client.drop_handle(id);
    p.pump().unwrap();
    assert!(
        matches!(p.server.poll_recv(id, 100, &mut cx()), Poll::Ready(RecvItem::Data(b)) if &b[..] == b"response")
    );
    assert!(matches!(
        p.server.poll_recv(id, 100, &mut cx()),
        Poll::Ready(RecvItem::Eof)
    ));
    // Our direction is cut: writing fails.
    assert!(matches!(
        p.server.poll_send_capacity(id, &mut cx()),
        Poll::Ready(Err(MuxError::Reset(ErrorCode::CANCEL, _)))
    ));
}

#[test]
fn a_bindings_streams_are_reset_together() {
    let mut p = Pair::new();
    let a = p.server.open_stream(&StreamOpen::tcp(7)).unwrap();
    let b = p.server.open_stream(&StreamOpen::tcp(7)).unwrap();
    let other = p.server.open_stream(&StreamOpen::tcp(8)).unwrap();
    p.pump().unwrap();
    assert_eq!(
        p.server.reset_binding(7, ErrorCode::BIND_TAKEOVER, "taken"),
        2
    );
    p.pump().unwrap();
    for id in [a, b] {
        assert!(matches!(
            p.client.poll_recv(id, 10, &mut cx()),
            Poll::Ready(RecvItem::Reset(ErrorCode::BIND_TAKEOVER, _))
        ));
    }
    assert!(matches!(
        p.client.poll_recv(other, 10, &mut cx()),
        Poll::Pending
    ));
}

#[test]
fn going_away_keeps_running_streams_and_refuses_new_ones() {
    let mut p = Pair::new();
    let running = open_tcp(&mut p);
    p.server.go_away(ErrorCode::NO_ERROR, "draining");
    assert!(
        p.server.open_stream(&StreamOpen::tcp(1)).is_err(),
        "no new streams after GOAWAY"
    );
    p.pump().unwrap();
    assert!(matches!(p.client.take_event(), Some(MuxEvent::GoAway(_))));
    assert!(p.client.peer_went_away());
    // The client may no longer open streams either, but the running one still carries data.
    assert!(p.client.open_stream(&StreamOpen::tcp(1)).is_err());
    p.server
        .push_data(running, Bytes::from_static(b"still here"))
        .unwrap();
    p.pump().unwrap();
    assert!(
        matches!(p.client.poll_recv(running, 100, &mut cx()), Poll::Ready(RecvItem::Data(b)) if &b[..] == b"still here")
    );
    // A peer that opens anyway is refused.
    let now = p.now;
    p.server
        .handle_frame(
            0,
            Frame::StreamOpen {
                stream_id: 1,
                open: StreamOpen::tcp(1),
            },
            now,
        )
        .unwrap();
    assert!(outgoing(&mut p.server).iter().any(|f| matches!(
        f,
        Frame::Reset {
            stream_id: 1,
            code: ErrorCode::REFUSED_STREAM,
            ..
        }
    )));
}
