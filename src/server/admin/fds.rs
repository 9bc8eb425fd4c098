//! The file-descriptor budget (`fdPermitsAvailable`, `hoody_tunnel_fd_permits_available`): how
//! many more sockets the process may open before accept and connect start failing with EMFILE.
//! Read from procfs, so no unsafe `getrlimit` call is needed; other systems report `None`.

/// Soft `RLIMIT_NOFILE` minus the descriptors open now, or `None` where that is unknown
/// (not Linux, procfs not mounted, or no finite limit).
pub fn permits_available() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // procfs lives in memory: these reads never wait on a disk, so calling them from the
        // async handler is fine.
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let soft = soft_open_files_limit(&limits)?;
        // The directory handle read_dir opens is itself listed; it is closed again right after,
        // so it does not count against the budget.
        let open = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        Some(soft.saturating_sub(open.saturating_sub(1)))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The soft limit of the `Max open files` row of `/proc/self/limits`; `None` when the row is
/// missing or says `unlimited`.
pub fn soft_open_files_limit(limits: &str) -> Option<u64> {
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
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(soft_open_files_limit(limits), Some(1024));
        assert_eq!(
            soft_open_files_limit("Max open files  unlimited unlimited files\n"),
            None
        );
        assert_eq!(
            soft_open_files_limit("Max processes 10 10 processes\n"),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn budget_is_below_the_limit() {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let soft = soft_open_files_limit(&limits).unwrap();
        let left = permits_available().unwrap();
        // stdin, stdout and stderr at least are open.
        assert!(left < soft, "{left} of {soft}");
    }
}
