//! Stream lifecycle: half close, reset, drop, GOAWAY, binding resets.

use bytes::Bytes;
use std::task::Poll;
use std::time::Duration;

use super::*;
use crate::proto::{ErrorCode, Frame, StreamOpen};

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

#[test]
fn a_stream_quiet_for_the_idle_timeout_is_reset_and_a_busy_one_is_not() {
    const IDLE: Duration = Duration::from_secs(10);
    let mut p = Pair::new();
    p.server = MuxState::new(
        MuxConfig {
            idle_stream_timeout: Some(IDLE),
            ..cfg(Role::Server)
        },
        p.now,
    );
    let quiet = open_tcp(&mut p);
    let busy = open_tcp(&mut p);
    let t0 = p.now;
    // Sweeps every 4 s for 20 s; `busy` sends a byte before each one.
    for step in 1..=5u32 {
        p.server.push_data(busy, Bytes::from_static(b".")).unwrap();
        p.server.keepalive(t0 + Duration::from_secs(4) * step);
        p.pump().unwrap();
        let quiet_reset = p.to_client.iter().any(|f| {
            matches!(f, Frame::Reset { stream_id, code, .. }
                if *stream_id == quiet && *code == ErrorCode::IDLE_TIMEOUT)
        });
        // The first sweep (4 s) starts the quiet clock; 16 s is the first sweep 10 s after it.
        assert_eq!(quiet_reset, step >= 4, "step {step}");
    }
    assert!(matches!(
        p.client.poll_recv(quiet, 100, &mut cx()),
        Poll::Ready(RecvItem::Reset(ErrorCode::IDLE_TIMEOUT, _))
    ));
    assert!(!p
        .to_client
        .iter()
        .any(|f| matches!(f, Frame::Reset { stream_id, .. } if *stream_id == busy)));
}

#[test]
fn a_producer_learns_that_its_stream_was_reset() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    assert!(p.client.poll_send_closed(id, &mut cx()).is_pending());
    p.server.reset_stream(id, ErrorCode::CANCEL, "visitor left");
    p.pump().unwrap();
    assert!(p.client.poll_send_closed(id, &mut cx()).is_ready());
    // After a session ends every stream counts as closed.
    let other = open_tcp(&mut p);
    p.client.close(ErrorCode::NO_ERROR, "bye");
    assert!(p.client.poll_send_closed(other, &mut cx()).is_ready());
}
