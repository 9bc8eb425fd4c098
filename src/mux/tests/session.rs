//! Session level: ping, keepalive, carriers, priorities, limits and protocol errors.

use std::task::Poll;
use std::time::Duration;

use super::*;
use crate::proto::{decode_message, ErrorCode, Frame, StreamOpen};

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
fn a_ping_flood_that_never_reads_its_pongs_is_refused() {
    let queued = 100;
    let mut st = MuxState::new(
        MuxConfig {
            max_queued_control: queued,
            ..cfg(Role::Server)
        },
        Instant::now(),
    );
    let now = Instant::now();
    // A peer that reads its answers may ping as often as it likes.
    for nonce in 0..10 * queued as u64 {
        st.handle_frame(0, Frame::Ping(nonce), now).unwrap();
        outgoing(&mut st);
    }
    for nonce in 0..queued as u64 {
        st.handle_frame(0, Frame::Ping(nonce), now).unwrap();
    }
    assert_eq!(
        st.handle_frame(0, Frame::Ping(0), now).unwrap_err().code(),
        ErrorCode::ENHANCE_YOUR_CALM
    );
}
