//! Small frames queued by many tasks at once leave in few carrier messages: the carrier's writer
//! lets the tasks that are ready run before it takes a batch, instead of sending each frame the
//! moment it is woken. Many keep-alive connections answering at once then cost one carrier
//! write per burst rather than one per answer. Counted in messages, not time.

use bytes::Bytes;
use underpass::mux::{MuxConfig, Role, Session};
use underpass::proto::{decode_message, Frame, StreamOpen};
use underpass_transports::{mem, Carrier};

const STREAMS: usize = 16;

/// Reads carrier messages until `want` frames matching `counted` arrived; returns how many
/// messages that took.
async fn read_until(raw: &mut Carrier, want: usize, counted: impl Fn(&Frame) -> bool) -> usize {
    let (mut messages, mut seen) = (0, 0);
    while seen < want {
        let message = raw
            .rx
            .recv()
            .await
            .expect("recv")
            .expect("open the carrier");
        messages += 1;
        seen += decode_message(&message)
            .expect("decode")
            .iter()
            .filter(|f| counted(f))
            .count();
    }
    messages
}

/// One worker thread: a woken task would run next (tokio's LIFO slot), so without the writer
/// stepping aside it would send the first frame alone, then the next, and so on.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn frames_queued_by_many_tasks_at_once_share_a_message() {
    let (ours, mut raw) = mem::pair();
    let session = Session::start(MuxConfig::new(Role::Server), ours);
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        streams.push(session.open(&StreamOpen::tcp(1)).expect("open"));
    }
    // The opens go out first (however they are batched).
    read_until(&mut raw, STREAMS, |_| true).await;

    // Every stream's task sends one small frame, all of them ready at once.
    let (go, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        let mut go = go.subscribe();
        tasks.push(tokio::spawn(async move {
            let _ = go.recv().await;
            stream
                .send(Bytes::from(format!("GET /{i} HTTP/1.1\r\n\r\n")))
                .await
                .expect("send");
            stream
        }));
    }
    tokio::task::yield_now().await;
    go.send(()).expect("tasks are waiting");

    let messages = read_until(&mut raw, STREAMS, |f| matches!(f, Frame::Data { .. })).await;
    // 2 or 3 here; one per frame (16) without the writer stepping aside.
    assert!(
        messages <= STREAMS / 2,
        "{STREAMS} DATA frames queued at once took {messages} carrier messages"
    );
    for t in tasks {
        drop(t.await.expect("task"));
    }
}
