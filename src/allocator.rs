//! Handing freed memory back to the operating system.
//!
//! The binary allocates with mimalloc, which keeps freed pages for reuse and purges them (returns
//! them to the OS) only later, when it next gets to run a collection on some thread. A tunnel
//! goes quiet right after a burst: without another allocation nothing collects, and the memory
//! of a finished bulk transfer stays resident for good. [`release_when_idle`] runs as the async
//! runtime's park hook, so every worker that runs out of work collects its own heap and purges
//! the freed pages, at most once a second so busy workers pay nothing noticeable.
//!
//! A park that comes too soon after the last collection skips it, and that park may be the last
//! one before a long quiet spell: what the worker freed in its final second would then stay
//! resident until something wakes it (a keepalive, 30 s later). So a skipped park also asks
//! [`wake_idle_workers`] to wake every worker once the second has passed; each parks again and
//! collects then.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Least time between two collections on one thread.
const EVERY: Duration = Duration::from_secs(1);

thread_local! {
    static LAST_COLLECT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Told by a park that skipped its collection.
static OWED: Notify = Notify::const_new();

/// Collects this thread's mimalloc heap and purges freed memory, unless it did so less than a
/// second ago (then it asks [`wake_idle_workers`] for a later park). Meant for
/// `tokio::runtime::Builder::on_thread_park`; harmless (a no-op in effect) when mimalloc is not
/// the global allocator.
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
    } else {
        // Stores one permit at most: a busy runtime wakes the task below about once a second.
        OWED.notify_one();
    }
}

/// Runs for the life of the runtime (spawn it once): after a park skipped its collection, waits
/// out the interval and then wakes all `workers` (one empty task each; a second task queued on
/// a worker makes the runtime wake a parked one to take it), so each parks again and collects.
/// Costs nothing while the runtime stays idle.
pub async fn wake_idle_workers(workers: usize) {
    wake_when_owed(EVERY, || {
        for _ in 0..workers.max(1) {
            tokio::spawn(async {});
        }
    })
    .await
}

/// Calls `wake` `after` a park that skipped its collection. Skips while it sleeps leave one
/// permit at most, so a runtime that stays busy is woken about once per `after`, and a quiet
/// one not at all.
async fn wake_when_owed(after: Duration, wake: impl Fn()) {
    loop {
        OWED.notified().await;
        tokio::time::sleep(after).await;
        wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// The last park of a burst came too soon after a collection: the workers are woken once
    /// the interval has passed (on tokio's clock), so they park again and collect then.
    #[tokio::test(start_paused = true)]
    async fn a_skipped_collection_wakes_the_workers_after_the_interval() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counted = wakes.clone();
        tokio::spawn(wake_when_owed(EVERY, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        settle().await;

        release_when_idle(); // this thread's first park: collects
        settle().await;
        tokio::time::advance(EVERY * 10).await;
        settle().await;
        assert_eq!(wakes.load(Ordering::SeqCst), 0, "nothing was owed");

        release_when_idle(); // collected less than a second ago: skipped, owed
        release_when_idle(); // still owed once
        settle().await;
        tokio::time::advance(EVERY - Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(wakes.load(Ordering::SeqCst), 0, "woken before the interval");
        tokio::time::advance(Duration::from_millis(2)).await;
        settle().await;
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            1,
            "not woken after the interval"
        );
        // The second skip may have left a permit (the waiter was already notified): one more
        // wake at most, then none while nothing parks.
        for _ in 0..3 {
            tokio::time::advance(EVERY * 2).await;
            settle().await;
        }
        let woken = wakes.load(Ordering::SeqCst);
        assert!(woken <= 2, "{woken} wakes after two skipped parks");
        tokio::time::advance(EVERY * 10).await;
        settle().await;
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            woken,
            "woken with nothing owed"
        );
    }
}
