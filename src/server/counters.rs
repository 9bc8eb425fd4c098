//! Server-wide event counters for the metrics endpoint: things that happen (requests, refusals,
//! resumes, takeovers) rather than things that are (sessions, streams), which the session table
//! already answers. Plain atomics: one increment per event, nothing on the per-byte path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::proto::ErrorCode;

/// Counters since the server started.
#[derive(Debug, Default)]
pub struct Counters {
    requests_by_status: Mutex<BTreeMap<u16, u64>>,
    refusals_by_code: Mutex<BTreeMap<u16, u64>>,
    resumes: AtomicU64,
    takeovers: AtomicU64,
    protocol_errors: AtomicU64,
    carriers_lost: AtomicU64,
    carriers_rejoined: AtomicU64,
}

/// A copy of the counters, for one scrape.
#[derive(Debug, Clone, Default)]
pub struct CountersSnapshot {
    /// Public HTTP requests answered, by status.
    pub requests_by_status: BTreeMap<u16, u64>,
    /// Carriers refused at HELLO/JOIN, by GOAWAY code.
    pub refusals_by_code: BTreeMap<u16, u64>,
    /// Sessions resumed after a connection drop.
    pub resumes: u64,
    /// Routes or ports claimed from another session.
    pub takeovers: u64,
    /// Sessions ended because the peer broke the protocol (bad frames, credit overrun, floods).
    pub protocol_errors: u64,
    /// Carriers that went away while their session ran.
    pub carriers_lost: u64,
    /// Carriers that re-joined in place of a lost one.
    pub carriers_rejoined: u64,
}

fn bump(map: &Mutex<BTreeMap<u16, u64>>, key: u16) {
    *map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default() += 1;
}

impl Counters {
    /// A public request was answered with `status`.
    pub fn request(&self, status: u16) {
        bump(&self.requests_by_status, status);
    }

    /// A carrier was refused with GOAWAY `code`.
    pub fn refusal(&self, code: ErrorCode) {
        bump(&self.refusals_by_code, code.0);
    }

    /// A session was resumed.
    pub fn resume(&self) {
        self.resumes.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` bindings were taken over.
    pub fn takeovers(&self, n: usize) {
        self.takeovers.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A carrier of a running session went away.
    pub fn carrier_lost(&self) {
        self.carriers_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// A carrier re-joined in place of a lost one.
    pub fn carrier_rejoined(&self) {
        self.carriers_rejoined.fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended with `code`; protocol violations are counted.
    pub fn session_ended(&self, code: ErrorCode) {
        if matches!(
            code,
            ErrorCode::PROTOCOL
                | ErrorCode::FLOW_CONTROL
                | ErrorCode::FRAME_SIZE
                | ErrorCode::ENHANCE_YOUR_CALM
        ) {
            self.protocol_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A copy for one scrape.
    pub fn snapshot(&self) -> CountersSnapshot {
        let copy =
            |m: &Mutex<BTreeMap<u16, u64>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        CountersSnapshot {
            requests_by_status: copy(&self.requests_by_status),
            refusals_by_code: copy(&self.refusals_by_code),
            resumes: self.resumes.load(Ordering::Relaxed),
            takeovers: self.takeovers.load(Ordering::Relaxed),
            protocol_errors: self.protocol_errors.load(Ordering::Relaxed),
            carriers_lost: self.carriers_lost.load(Ordering::Relaxed),
            carriers_rejoined: self.carriers_rejoined.load(Ordering::Relaxed),
        }
    }
}
