//! The tighter limits of a server connection none of whose carriers is authenticated yet, and
//! their lifting once one is (a HELLO or JOIN accepted by the layer above).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use super::tuning::QuicTuning;

/// Shared by the connection task and every carrier of one server connection.
pub(super) struct Gate {
    conn: quinn::Connection,
    tuning: QuicTuning,
    open: AtomicBool,
    opened: Notify,
}

impl Gate {
    pub(super) fn new(conn: quinn::Connection, tuning: QuicTuning) -> Self {
        Gate {
            conn,
            tuning,
            open: AtomicBool::new(false),
            opened: Notify::new(),
        }
    }

    /// A carrier of this connection was authenticated: full window and carrier count. Only the
    /// first call does anything.
    pub(super) fn open(&self) {
        if !self.open.swap(true, Ordering::AcqRel) {
            self.tuning.open_up(&self.conn);
            // Stores a permit when the connection task is not waiting yet.
            self.opened.notify_one();
        }
    }

    /// Resolves once [`open`](Self::open) was called (one waiter: the connection task).
    pub(super) async fn opened(&self) {
        self.opened.notified().await
    }
}
