//! The async driver: owns the carriers' read and write tasks and a keepalive timer around one
//! [`MuxState`]. The state sits behind a plain mutex that is never held across an await.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use underpass_transports::{Carrier, CarrierInfo, CarrierRx, CarrierTx};

use super::carrier_tasks::CarrierTasks;
use super::config::MuxConfig;
use super::error::MuxError;
use super::outbox::Batch;
use super::state::{MuxEvent, MuxState};
use super::stream::MuxStream;
use crate::proto::{decode_message_into, DecodeError, ErrorCode, Frame, GoAway, StreamOpen};

/// State shared by the session handle, its tasks and its streams.
pub(crate) struct Shared {
    state: Mutex<MuxState>,
    closed_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    carriers: Mutex<Vec<CarrierInfo>>,
    carrier_tasks: CarrierTasks,
}

impl Shared {
    /// Locks the state. A panic elsewhere cannot poison it for good: the state stays usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, MuxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then publishes a session end if `f` caused one and stops the
    /// tasks of carriers `f` lost.
    fn update<R>(&self, f: impl FnOnce(&mut MuxState) -> R) -> R {
        let (r, closed, lost) = {
            let mut st = self.lock();
            let r = f(&mut st);
            (r, st.closed().is_some(), st.take_newly_lost())
        };
        if closed {
            self.closed_tx.send_replace(true);
        }
        for (index, attachment) in lost {
            self.carrier_tasks.stop(index, attachment);
        }
        r
    }
}

/// What the owner of a session receives.
#[derive(Debug)]
pub enum SessionEvent {
    /// The peer opened a stream.
    Incoming(MuxStream, StreamOpen),
    /// A session-level frame (BIND, BIND_OK, BIND_REVOKED, ...).
    Control(Frame),
    /// The peer is ending the session.
    GoAway(GoAway),
    /// A carrier of the running session went away; streams pinned to it were reset. Carrier 0
    /// takes the session with it.
    CarrierLost {
        /// Its index.
        index: usize,
        /// What ended it (a read error, the peer's close, a missing PONG), for logs.
        cause: String,
    },
}

/// A running mux session. Cheap to clone; every clone drives the same session.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session over its first carrier (index 0). Must be called inside a tokio runtime.
    pub fn start(cfg: MuxConfig, carrier0: Carrier) -> Self {
        let tick = (cfg
            .ping_after
            .min(cfg.pong_timeout)
            .min(cfg.idle_stream_timeout.unwrap_or(Duration::MAX))
            / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let (closed_tx, _) = watch::channel(false);
        let session = Self {
            shared: Arc::new(Shared {
                state: Mutex::new(MuxState::new(cfg, Instant::now())),
                closed_tx,
                tasks: Mutex::new(Vec::new()),
                carriers: Mutex::new(Vec::new()),
                carrier_tasks: CarrierTasks::default(),
            }),
        };
        let first = session.shared.lock().carrier_attachment(0);
        session.spawn_carrier(0, first, carrier0);
        let keepalive = tokio::spawn(keepalive_loop(session.shared.clone(), tick));
        session.push_task(keepalive);
        session
    }

    fn push_task(&self, task: JoinHandle<()>) {
        self.shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    fn spawn_carrier(&self, index: usize, attachment: u64, carrier: Carrier) {
        {
            let mut infos = self
                .shared
                .carriers
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            while infos.len() <= index {
                infos.push(CarrierInfo::default());
            }
            infos[index] = carrier.info.clone();
        }
        let reader = tokio::spawn(read_loop(
            self.shared.clone(),
            index,
            attachment,
            carrier.rx,
        ));
        let writer = tokio::spawn(write_loop(
            self.shared.clone(),
            index,
            attachment,
            carrier.tx,
        ));
        self.shared.carrier_tasks.set(
            index,
            attachment,
            reader.abort_handle(),
            writer.abort_handle(),
        );
    }

    /// Adds carrier `index` (a v2 JOIN that was accepted, or the client's extra dial), also in
    /// place of a lost one; new streams may be pinned to it at once. Returns the slot's
    /// attachment number: 1 for its first carrier, more for a re-join.
    pub fn attach_carrier(&self, index: usize, carrier: Carrier) -> u64 {
        let attachment = self
            .shared
            .update(|st| st.add_carrier(index, Instant::now()));
        self.spawn_carrier(index, attachment, carrier);
        attachment
    }

    /// Gives up carrier `index` now, as if its connection had dropped (the peer said it lost
    /// it): its streams are reset and its tasks stop.
    pub fn drop_carrier(&self, index: usize, cause: &str) {
        self.shared
            .update(|st| st.carrier_lost_because(index, cause));
    }

    /// Takes back the session credit that died with lost carrier `index`, given the DATA bytes
    /// the peer says it received on it (see [`MuxState::settle_lost_carrier`]).
    pub fn settle_lost_carrier(&self, index: usize, peer_received: u64) -> Option<u64> {
        self.shared
            .update(|st| st.settle_lost_carrier(index, peer_received))
    }

    /// Opens a stream to the peer.
    pub fn open(&self, open: &StreamOpen) -> Result<MuxStream, MuxError> {
        let id = self.shared.update(|st| st.open_stream(open))?;
        Ok(MuxStream::new(self.shared.clone(), id))
    }

    /// Next event; `None` once the session has ended.
    pub async fn next_event(&self) -> Option<SessionEvent> {
        let ev = poll_fn(|cx| self.shared.lock().poll_event(cx)).await?;
        Some(match ev {
            MuxEvent::Incoming { stream_id, open } => {
                SessionEvent::Incoming(MuxStream::new(self.shared.clone(), stream_id), open)
            }
            MuxEvent::Control(frame) => SessionEvent::Control(frame),
            MuxEvent::GoAway(g) => SessionEvent::GoAway(g),
            MuxEvent::CarrierLost { index, cause } => SessionEvent::CarrierLost { index, cause },
        })
    }

    /// Sends a session-level frame on carrier 0.
    pub fn send_control(&self, frame: &Frame) -> Result<(), MuxError> {
        self.shared.update(|st| st.send_control(frame))
    }

    /// Starts a graceful end: GOAWAY now, no new streams, running streams continue until
    /// [`close`](Self::close).
    pub fn go_away(&self, code: ErrorCode, message: &str) {
        self.shared.update(|st| st.go_away(code, message));
    }

    /// Ends the session: GOAWAY is flushed, then the carriers close.
    pub fn close(&self, code: ErrorCode, message: &str) {
        self.shared.update(|st| st.close(code, message));
        // Readers stop at once; writers stop by themselves after flushing GOAWAY.
        self.shared.closed_tx.send_replace(true);
    }

    /// Resets every open stream of binding `bind_id`; returns how many.
    pub fn reset_binding(&self, bind_id: u32, code: ErrorCode, reason: &str) -> usize {
        self.shared
            .update(|st| st.reset_binding(bind_id, code, reason))
    }

    /// Resolves when the session has ended, with the reason.
    pub async fn closed(&self) -> (ErrorCode, String) {
        let mut rx = self.shared.closed_tx.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
        self.shared
            .lock()
            .closed()
            .cloned()
            .unwrap_or((ErrorCode::NO_ERROR, "closed".into()))
    }

    /// True once the session has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed().is_some()
    }

    /// Reads the state (stats, windows, RTT) without changing it.
    pub fn inspect<R>(&self, f: impl FnOnce(&MuxState) -> R) -> R {
        f(&self.shared.lock())
    }

    /// Queues a PING on `carrier` now (RTT is then readable with [`inspect`](Self::inspect)).
    pub fn ping(&self, carrier: usize) {
        self.shared
            .update(|st| st.send_ping(carrier, Instant::now()));
    }

    /// Transport facts of each carrier, by index.
    pub fn carrier_infos(&self) -> Vec<CarrierInfo> {
        self.shared
            .carriers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Aborts every task of the session (after [`close`](Self::close), for a hard stop).
    pub fn abort(&self) {
        self.shared
            .update(|st| st.close(ErrorCode::CANCEL, "aborted"));
        for t in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.shared.carrier_tasks.stop_all();
    }
}

fn decode_error_code(e: &DecodeError) -> ErrorCode {
    match e {
        DecodeError::PayloadTooLarge(_)
        | DecodeError::MessageTooLarge(_)
        | DecodeError::TooManyFrames => ErrorCode::FRAME_SIZE,
        _ => ErrorCode::PROTOCOL,
    }
}

async fn read_loop(shared: Arc<Shared>, index: usize, attachment: u64, mut rx: Box<dyn CarrierRx>) {
    let mut closed = shared.closed_tx.subscribe();
    // One vector for the frames of every message, kept between messages (a message holds at
    // most MAX_FRAMES_PER_MESSAGE frames, so it stays small).
    let mut frames = Vec::new();
    loop {
        let received = tokio::select! {
            r = rx.recv() => r,
            _ = closed.wait_for(|c| *c) => return,
        };
        match received {
            Ok(Some(message)) => {
                frames.clear();
                match decode_message_into(&message, &mut frames) {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(carrier = index, error = %e, "malformed message; closing session");
                        shared.update(|st| st.close(decode_error_code(&e), &e.to_string()));
                        return;
                    }
                };
                let now = Instant::now();
                let failed = shared.update(|st| {
                    if !st.carrier_current(index, attachment) {
                        // Given up (PONG overdue, replaced): what still arrives is not counted.
                        return None;
                    }
                    for frame in frames.drain(..) {
                        if let Err(e) = st.handle_frame(index, frame, now) {
                            st.close(e.code(), &e.to_string());
                            return Some(e);
                        }
                    }
                    None
                });
                if let Some(e) = failed {
                    tracing::warn!(carrier = index, error = %e, "protocol error; session closed");
                    return;
                }
            }
            Ok(None) | Err(_) => {
                let cause = match &received {
                    Err(e) => format!("read failed: {e}"),
                    _ => "closed by the peer".to_string(),
                };
                shared.update(|st| {
                    if st.carrier_current(index, attachment) {
                        st.carrier_lost_because(index, &cause);
                    }
                });
                return;
            }
        }
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    index: usize,
    attachment: u64,
    mut tx: Box<dyn CarrierTx>,
) {
    // One batch for every message of this carrier: its frame list keeps its room between writes.
    let mut batch = Batch::default();
    loop {
        // Let every task that is ready on this worker run first: frames they queue (other
        // streams' requests, answers, window updates) go out in the same write. Under load this
        // turns one carrier write per frame into one per burst; idle, it costs one trip through
        // the scheduler.
        tokio::task::yield_now().await;
        let go_on = poll_fn(|cx| {
            let mut st = shared.lock();
            if st.carrier_attachment(index) != attachment {
                // A new carrier took the slot: its frames are not ours to send.
                return Poll::Ready(false);
            }
            st.pop_batch(index, &mut batch);
            if !batch.is_empty() {
                Poll::Ready(true)
            } else if st.park_writer(index, cx.waker()) {
                Poll::Pending
            } else {
                Poll::Ready(false)
            }
        })
        .await;
        if !go_on {
            break;
        }
        if let Err(e) = tx.send_parts(batch.take_parts()).await {
            let cause = format!("write failed: {e}");
            shared.update(|st| {
                if st.carrier_current(index, attachment) {
                    st.carrier_lost_because(index, &cause);
                }
            });
            break;
        }
    }
    let _ = tx.close().await;
}

async fn keepalive_loop(shared: Arc<Shared>, tick: Duration) {
    let mut closed = shared.closed_tx.subscribe();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = closed.wait_for(|c| *c) => return,
        }
        shared.update(|st| {
            let cause = format!("no PONG within {:?}", st.config().pong_timeout);
            for dead in st.keepalive(Instant::now()) {
                st.carrier_lost_because(dead, &cause);
            }
        });
    }
}
