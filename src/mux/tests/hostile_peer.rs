//! Property test: whatever a peer sends, in whatever order, interleaved with what the owner does
//! (open, write, read, half-close, drop, time passing), the state machine never panics, never
//! buffers more than the credit it granted, and ends the session only with an error code.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::proto::{ErrorCode, Frame, GoAway, ResponseHead, StreamOpen};

/// Stream ids a peer might use: ours, theirs, 0, and one far away.
fn stream_id() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..12, Just(u32::MAX), Just(1_000_001)]
}

fn peer_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (stream_id(), 0u32..4).prop_map(|(stream_id, bind_id)| Frame::StreamOpen {
            stream_id,
            open: StreamOpen::tcp(bind_id),
        }),
        (
            stream_id(),
            prop_oneof![Just(0usize), 1usize..2048, Just(65_536), Just(70_000)]
        )
            .prop_map(|(stream_id, len)| Frame::Data {
                stream_id,
                data: Bytes::from(vec![7u8; len]),
            }),
        stream_id().prop_map(|stream_id| Frame::Eof { stream_id }),
        (stream_id(), 0u16..16).prop_map(|(stream_id, code)| Frame::Reset {
            stream_id,
            code: ErrorCode(code),
            reason: "peer".into(),
        }),
        (
            stream_id(),
            prop_oneof![Just(0u32), 1u32..70_000, Just(u32::MAX)]
        )
            .prop_map(|(stream_id, increment)| Frame::Window {
                stream_id,
                increment,
            }),
        (stream_id(), 100u16..600, any::<bool>()).prop_map(|(stream_id, status, is_final)| {
            Frame::ResponseHead {
                stream_id,
                head: ResponseHead {
                    status,
                    headers: vec![],
                    is_final,
                },
            }
        }),
        any::<u64>().prop_map(Frame::Ping),
        any::<u64>().prop_map(Frame::Pong),
        Just(Frame::GoAway(GoAway {
            code: ErrorCode::NO_ERROR,
            message: "bye".into(),
        })),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    /// A frame from the peer on a carrier (3 does not exist).
    Peer(usize, Box<Frame>),
    /// The peer opens its next stream properly, on a carrier.
    PeerOpen(usize),
    /// The owner opens a stream.
    Open,
    /// The owner writes what credit allows on a stream.
    Write(u32, usize),
    /// The owner reads from a stream.
    Read(u32, usize),
    /// The owner half-closes a stream.
    Finish(u32),
    /// The owner drops its handle on a stream.
    Drop(u32),
    /// Everything queued goes out on the carriers.
    Flush,
    /// Time passes and the keepalive tick runs.
    Tick(u64),
    /// A carrier goes away.
    LoseCarrier(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..4, peer_frame()).prop_map(|(c, f)| Step::Peer(c, Box::new(f))),
        3 => (0usize..3).prop_map(Step::PeerOpen),
        1 => Just(Step::Open),
        2 => (0u32..12, 1usize..100_000).prop_map(|(id, n)| Step::Write(id, n)),
        2 => (0u32..12, 1usize..100_000).prop_map(|(id, n)| Step::Read(id, n)),
        1 => (0u32..12).prop_map(Step::Finish),
        1 => (0u32..12).prop_map(Step::Drop),
        2 => Just(Step::Flush),
        1 => (0u64..200).prop_map(Step::Tick),
        1 => (1usize..4).prop_map(Step::LoseCarrier),
    ]
}

fn run(role: Role, steps: Vec<Step>) {
    let mut now = tokio::time::Instant::now();
    let mut st = MuxState::new(
        MuxConfig {
            max_streams: 8,
            max_pending_events: 64,
            max_queued_control: 256,
            idle_stream_timeout: Some(Duration::from_secs(30)),
            ..cfg(role)
        },
        now,
    );
    st.add_carrier(1, now);
    st.add_carrier(2, now);
    let chunk = Bytes::from(vec![1u8; 65_536]);
    let mut next_peer_id = match role {
        Role::Server => 1,
        Role::Client => 2,
    };
    for step in steps {
        let step = match step {
            Step::PeerOpen(carrier) => {
                next_peer_id += 2;
                Step::Peer(
                    carrier,
                    Box::new(Frame::StreamOpen {
                        stream_id: next_peer_id - 2,
                        open: StreamOpen::tcp(1),
                    }),
                )
            }
            other => other,
        };
        match step {
            Step::PeerOpen(_) => unreachable!("turned into a frame above"),
            Step::Peer(carrier, frame) => {
                if let Err(e) = st.handle_frame(carrier, *frame, now) {
                    // What the driver does with a fatal error.
                    assert_ne!(e.code(), ErrorCode::NO_ERROR, "{e}");
                    st.close(e.code(), &e.to_string());
                }
            }
            Step::Open => {
                let _ = st.open_stream(&StreamOpen::tcp(1));
            }
            Step::Write(id, n) => {
                if let Poll::Ready(Ok(avail)) = st.poll_send_capacity(id, &mut cx()) {
                    let _ = st.push_data(id, chunk.slice(..avail.min(n).min(chunk.len())));
                }
            }
            Step::Read(id, n) => {
                let _ = st.poll_recv(id, n, &mut cx());
            }
            Step::Finish(id) => {
                let _ = st.close_write(id);
            }
            Step::Drop(id) => {
                if st.stream_buffered(id).is_some() {
                    st.drop_handle(id);
                }
            }
            Step::Flush => {
                outgoing(&mut st);
            }
            Step::Tick(ms) => {
                now += Duration::from_millis(ms * 100);
                for dead in st.keepalive(now) {
                    st.carrier_lost(dead);
                }
            }
            Step::LoseCarrier(c) => st.carrier_lost(c),
        }
        while st.take_event().is_some() {}
        for id in 0..12 {
            if let Some(buffered) = st.stream_buffered(id) {
                assert!(
                    buffered <= STREAM_WINDOW as usize,
                    "stream {id}: {buffered}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_server_survives_any_peer(steps in proptest::collection::vec(step(), 1..120)) {
        run(Role::Server, steps);
    }

    #[test]
    fn a_client_survives_any_peer(steps in proptest::collection::vec(step(), 1..120)) {
        run(Role::Client, steps);
    }
}
