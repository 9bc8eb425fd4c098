//! One captured body: the first `cap` bytes, kept as the very chunks the proxy forwarded (a
//! clone of `Bytes` is a reference count), and the total size, so truncation is visible.

use bytes::{Bytes, BytesMut};

/// Where a body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// Still arriving.
    Open,
    /// Ended normally.
    Complete,
    /// Cut short: the visitor or the app went away mid-body.
    Cut,
}

/// The captured part of one body.
#[derive(Debug, Clone)]
pub struct BodyCapture {
    chunks: Vec<Bytes>,
    captured: usize,
    total: u64,
    state: BodyState,
}

impl BodyCapture {
    /// An open body with nothing captured yet.
    pub(crate) fn new() -> Self {
        Self {
            chunks: Vec::new(),
            captured: 0,
            total: 0,
            state: BodyState::Open,
        }
    }

    /// A whole body known up front (a replayed request), captured up to `cap`.
    pub(crate) fn whole(body: &Bytes, cap: usize) -> Self {
        let mut c = Self::new();
        c.push(body, cap);
        c.state = BodyState::Complete;
        c
    }

    /// Counts `data` and keeps what still fits under `cap`.
    pub(crate) fn push(&mut self, data: &Bytes, cap: usize) {
        self.total += data.len() as u64;
        let room = cap.saturating_sub(self.captured);
        if room == 0 || data.is_empty() {
            return;
        }
        let kept = data.slice(..room.min(data.len()));
        self.captured += kept.len();
        self.chunks.push(kept);
    }

    /// Marks the end of the body.
    pub(crate) fn end(&mut self, complete: bool) {
        if self.state == BodyState::Open {
            self.state = if complete {
                BodyState::Complete
            } else {
                BodyState::Cut
            };
        }
    }

    /// Copies the kept chunks into one buffer of exactly their size. The chunks the tee kept
    /// are slices of the tunnel's and hyper's receive buffers, which a small slice would keep
    /// alive whole; an exchange that is over holds only its own bytes. Runs once per body,
    /// after the visitor has its answer.
    pub(crate) fn compact(&mut self) {
        if self.chunks.is_empty() {
            return;
        }
        let mut one = BytesMut::with_capacity(self.captured);
        for chunk in &self.chunks {
            one.extend_from_slice(chunk);
        }
        self.chunks = vec![one.freeze()];
    }

    /// The captured bytes (the whole body unless [`truncated`](Self::truncated)).
    pub fn bytes(&self) -> Bytes {
        match self.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut all = BytesMut::with_capacity(self.captured);
                for chunk in many {
                    all.extend_from_slice(chunk);
                }
                all.freeze()
            }
        }
    }

    /// Bytes captured.
    pub fn captured(&self) -> usize {
        self.captured
    }

    /// Bytes that passed, captured or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Where the body stands.
    pub fn state(&self) -> BodyState {
        self.state
    }

    /// True when more passed than was kept.
    pub fn truncated(&self) -> bool {
        self.total > self.captured as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let mut c = BodyCapture::new();
        c.push(&Bytes::from_static(b"hello "), 8);
        c.push(&Bytes::from_static(b"world"), 8);
        c.push(&Bytes::from_static(b"!!"), 8);
        c.end(true);
        assert_eq!(c.bytes(), Bytes::from_static(b"hello wo"));
        assert_eq!((c.captured(), c.total(), c.truncated()), (8, 13, true));
        c.compact();
        assert_eq!(c.bytes(), Bytes::from_static(b"hello wo"));
        assert_eq!(c.state(), BodyState::Complete);
    }

    #[test]
    fn a_zero_cap_keeps_sizes_only_and_the_first_end_wins() {
        let mut c = BodyCapture::new();
        c.push(&Bytes::from_static(b"abc"), 0);
        c.end(false);
        c.end(true);
        assert_eq!((c.captured(), c.total()), (0, 3));
        assert_eq!(c.state(), BodyState::Cut);
    }
}
