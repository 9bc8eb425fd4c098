//! Handing freed memory back to the operating system.
//!
//! The binary allocates with mimalloc, which keeps freed pages for reuse and purges them (returns
//! them to the OS) only later, when it next gets to run a collection on some thread. A tunnel
//! goes quiet right after a burst: without another allocation nothing collects, and the memory
//! of a finished bulk transfer stays resident for good. [`release_when_idle`] runs as the async
//! runtime's park hook, so every worker that runs out of work collects its own heap and purges
//! the freed pages, at most once a second so busy workers pay nothing noticeable.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Least time between two collections on one thread.
const EVERY: Duration = Duration::from_secs(1);

thread_local! {
    static LAST_COLLECT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Collects this thread's mimalloc heap and purges freed memory, unless it did so less than a
/// second ago. Meant for `tokio::runtime::Builder::on_thread_park`; harmless (a no-op in effect)
/// when mimalloc is not the global allocator.
pub fn release_when_idle() {
    let now = Instant::now();
    let due = LAST_COLLECT.with(|last| {
        let due = last.get().is_none_or(|t| now.duration_since(t) >= EVERY);
        if due {
            last.set(Some(now));
        }
        due
    });
    if due {
        // SAFETY: mi_collect has no preconditions; it walks the calling thread's heap and the
        // process-wide arenas under mimalloc's own synchronisation.
        unsafe { libmimalloc_sys::mi_collect(true) }
    }
}
