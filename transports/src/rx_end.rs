//! The end of a carrier's receive side, remembered: once a carrier closed cleanly every later
//! `recv` is `Ok(None)`, once it failed every later `recv` fails the same way, whatever the
//! underlying stream would now say.

use std::io;

use bytes::Bytes;

/// Sticky end state of a receive half.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum RxEnd {
    /// Still receiving.
    #[default]
    Open,
    /// The peer closed cleanly.
    Closed,
    /// `recv` returned an error of this kind.
    Failed(io::ErrorKind),
}

impl RxEnd {
    /// The answer for a carrier that already ended, or `None` while it is open.
    pub(crate) fn replay(self, what: &str) -> Option<io::Result<Option<Bytes>>> {
        match self {
            RxEnd::Open => None,
            RxEnd::Closed => Some(Ok(None)),
            RxEnd::Failed(kind) => {
                Some(Err(io::Error::new(kind, format!("{what} failed earlier"))))
            }
        }
    }

    /// Records how a `recv` ended.
    pub(crate) fn record(&mut self, result: &io::Result<Option<Bytes>>) {
        match result {
            Ok(Some(_)) => {}
            Ok(None) => *self = RxEnd::Closed,
            Err(e) => *self = RxEnd::Failed(e.kind()),
        }
    }
}
