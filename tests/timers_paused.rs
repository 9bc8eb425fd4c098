//! The session timers on tokio's paused clock: keepalive (PING after `ping_after` of silence,
//! the carrier closed when the PONG is `pong_timeout` late) and the idle-stream timeout run
//! at their real defaults (30 s, 60 s, 300 s) in milliseconds of test time, over in-memory
//! carriers (real sockets would let the paused clock run ahead while the runtime waits on I/O).
//! The server's wiring of its limits into each session's mux is checked on a real session.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use underpass::mux::{MuxConfig, Role, Session, SessionEvent};
use underpass::proto::{decode_message, encode_frame, ErrorCode, Frame, StreamOpen};
use underpass_transports::mem;
use underpass_transports::Carrier;

/// Fails the test, in virtual time, instead of waiting forever (a timer that read the system
/// clock would never fire on a paused one).
async fn virtually<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timer did not fire on tokio's clock")
}

/// The next frame the raw end receives.
async fn next_frame(raw: &mut Carrier) -> Option<Frame> {
    let message = raw.rx.recv().await.ok()??;
    decode_message(&message).ok()?.into_iter().next()
}

async fn send(raw: &mut Carrier, frame: &Frame) {
    let mut out = BytesMut::new();
    encode_frame(frame, &mut out).unwrap();
    raw.tx.send(out.freeze()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_ping_closes_the_carrier_after_the_pong_timeout() {
    let (ours, mut raw) = mem::pair();
    let cfg = MuxConfig::new(Role::Server);
    let (ping_after, pong_timeout) = (cfg.ping_after, cfg.pong_timeout);
    assert_eq!(
        (ping_after, pong_timeout),
        (Duration::from_secs(30), Duration::from_secs(60))
    );
    let session = Session::start(cfg, ours);
    let start = Instant::now();

    let ping = virtually(3600, next_frame(&mut raw)).await;
    assert!(matches!(ping, Some(Frame::Ping(_))), "{ping:?}");
    let pinged = start.elapsed();
    assert!(
        pinged >= ping_after && pinged <= ping_after + Duration::from_secs(2),
        "pinged after {pinged:?} of silence"
    );

    // No PONG: the carrier (carrier 0, so the session) ends once the PONG is overdue.
    let (code, reason) = virtually(3600, session.closed()).await;
    let closed = start.elapsed();
    assert!(
        closed >= pinged + pong_timeout && closed <= pinged + pong_timeout + Duration::from_secs(2),
        "closed after {closed:?} ({code}: {reason})"
    );
    assert!(session.inspect(|st| st.lost_session_carrier()));
}

#[tokio::test(start_paused = true)]
async fn answered_pings_keep_a_silent_session_alive() {
    let (ours, mut raw) = mem::pair();
    let session = Session::start(MuxConfig::new(Role::Server), ours);
    let start = Instant::now();
    let mut pongs = 0;
    while start.elapsed() < Duration::from_secs(600) {
        match virtually(3600, next_frame(&mut raw)).await {
            Some(Frame::Ping(nonce)) => {
                send(&mut raw, &Frame::Pong(nonce)).await;
                pongs += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pongs >= 19, "{pongs} pings in ten minutes");
    assert!(!session.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_is_reset_after_the_idle_timeout_and_a_talking_one_is_not() {
    const IDLE: Duration = Duration::from_secs(300);
    let (a, b) = mem::pair();
    let server = Session::start(
        MuxConfig {
            idle_stream_timeout: Some(IDLE),
            ..MuxConfig::new(Role::Server)
        },
        a,
    );
    let client = Session::start(MuxConfig::new(Role::Client), b);
    let mut quiet = server.open(&StreamOpen::tcp(1)).unwrap();
    let mut talking = server.open(&StreamOpen::tcp(1)).unwrap();
    let accept = || async {
        match client.next_event().await {
            Some(SessionEvent::Incoming(stream, _)) => stream,
            other => panic!("expected a stream, got {other:?}"),
        }
    };
    let mut quiet_far = accept().await;
    let mut talking_far = accept().await;
    let start = Instant::now();

    // The quiet stream's far end waits; it learns of the reset when it comes.
    let quiet_reset = tokio::spawn(async move {
        let err = quiet_far.recv_chunk().await.unwrap_err();
        (Instant::now(), err.to_string())
    });
    // One byte a minute on the talking stream, for 15 minutes.
    for i in 0..15u8 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        talking.send(Bytes::from(vec![i])).await.unwrap();
        let got = talking_far.recv_chunk().await.unwrap().unwrap();
        assert_eq!(&got[..], &[i]);
    }
    let (at, err) = virtually(3600, quiet_reset).await.unwrap();
    let after = at - start;
    assert!(
        after >= IDLE && after <= IDLE + Duration::from_secs(3),
        "quiet stream reset after {after:?}: {err}"
    );
    assert!(err.contains(&ErrorCode::IDLE_TIMEOUT.to_string()), "{err}");
    assert!(quiet.recv_chunk().await.is_err(), "both ends are reset");
    talking.send(Bytes::from_static(b"still")).await.unwrap();
    assert_eq!(
        &talking_far.recv_chunk().await.unwrap().unwrap()[..],
        b"still"
    );
}

#[tokio::test]
async fn each_session_runs_with_the_servers_timer_limits() {
    let server = common::server_with(|c| {
        c.limits.idle_stream_timeout = Duration::from_secs(7);
        c.limits.ping_after = Duration::from_secs(11);
        c.limits.pong_timeout = Duration::from_secs(13);
    })
    .await;
    let client = common::client(&server).await;
    let entry = server.state().sessions.get(&client.session_id()).unwrap();
    let cfg = entry.session().inspect(|st| st.config().clone());
    assert_eq!(cfg.idle_stream_timeout, Some(Duration::from_secs(7)));
    assert_eq!(cfg.ping_after, Duration::from_secs(11));
    assert_eq!(cfg.pong_timeout, Duration::from_secs(13));
}
