//! The file-descriptor budget: every accepted connection holds a permit, and when none is left
//! the server answers 503 (or closes a raw TCP connection) instead of running into EMFILE, which
//! would also stop carriers, health probes and the admin API from being accepted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept out of the budget for carriers, listeners, logs and outgoing connects.
const RESERVE: usize = 64;
/// Budget when the open-file limit cannot be read (not Linux, or unlimited).
const FALLBACK: usize = 65_536;

/// Permits for accepted connections.
#[derive(Debug, Clone)]
pub struct FdBudget {
    permits: Arc<Semaphore>,
    size: usize,
    refused: Arc<AtomicU64>,
}

impl FdBudget {
    /// A budget of `size` connections, or one derived from the process's open-file limit.
    pub fn new(size: Option<usize>) -> Self {
        let size = size.unwrap_or_else(|| {
            soft_open_files_limit()
                .map(|limit| (limit as usize).saturating_sub(RESERVE).max(16))
                .unwrap_or(FALLBACK)
        });
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A permit for one connection, or `None` when the budget is spent.
    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        permit
    }

    /// Connections refused for lack of a permit since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Permits left (`fdPermitsAvailable`).
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// The whole budget.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// The soft `RLIMIT_NOFILE` from procfs (no unsafe `getrlimit`); `None` off Linux or when it
/// is unlimited.
fn soft_open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_soft_limit(&limits)
}

/// The soft limit of the `Max open files` row of `/proc/self/limits`.
pub fn parse_soft_limit(limits: &str) -> Option<u64> {
    const ROW: &str = "Max open files";
    let row = limits.lines().find(|l| l.starts_with(ROW))?;
    // Columns: name (several words), soft limit, hard limit, units.
    row[ROW.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_soft_limit(limits), Some(1024));
        assert_eq!(
            parse_soft_limit("Max open files  unlimited unlimited files\n"),
            None
        );
    }

    #[test]
    fn permits_run_out_and_come_back() {
        let b = FdBudget::new(Some(2));
        let p1 = b.try_acquire().unwrap();
        let _p2 = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_none());
        drop(p1);
        assert_eq!(b.available(), 1);
    }
}
