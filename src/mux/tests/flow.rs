//! Flow control: credit limits, WINDOW only after reads, overruns.

use bytes::Bytes;
use std::task::Poll;

use super::*;
use crate::proto::{ErrorCode, Frame, StreamOpen};

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
fn traffic_is_counted_per_binding_and_forgotten_with_it() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p); // binding 1
    let other = p.server.open_stream(&StreamOpen::tcp(2)).unwrap();
    p.pump().unwrap();
    let sent = write_all_credit(&mut p.server, id, 10_000);
    write_all_credit(&mut p.server, other, 300);
    p.pump().unwrap();
    let one = p.server.traffic_by_binding().get(1);
    assert_eq!((one.bytes_sent, one.streams_opened), (sent as u64, 1));
    assert_eq!(p.server.traffic_by_binding().get(2).bytes_sent, 300);
    let seen = p.client.traffic_by_binding().get(1);
    assert_eq!((seen.bytes_received, seen.streams_opened), (10_000, 1));
    p.server.reset_binding(1, ErrorCode::CANCEL, "unbound");
    assert_eq!(p.server.traffic_by_binding().get(1), BindTraffic::default());
    assert_eq!(p.server.traffic_by_binding().get(2).bytes_sent, 300);
}
