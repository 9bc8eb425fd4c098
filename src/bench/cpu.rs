//! CPU time used by this process, for the "CPU seconds per GiB" column.
//!
//! The crate forbids `unsafe`, so `getrusage` through libc is out; Linux exposes the same user
//! and system times in `/proc/self/stat`. Elsewhere the figure is simply unavailable ("n/a").

use std::time::Duration;

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, which is 100 on every mainstream
/// Linux ABI (the kernel keeps it fixed for user space whatever its internal tick rate).
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time of this process so far, or `None` off Linux or if `/proc` is missing.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// Extracts `utime + stime` from the text of `/proc/<pid>/stat`.
fn parse_stat(stat: &str) -> Option<Duration> {
    // Field 2 (the command name) is in parentheses and may itself contain spaces or ')', so
    // the fields are counted from the last ')'. After it come field 3 (state) onwards, which
    // puts utime (field 14) at index 11 and stime (field 15) at index 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_millis(
        ticks.checked_mul(1000)? / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_after_a_tricky_command_name() {
        let line = "4242 (a ) b) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 9 0 \
                    123 456 789";
        assert_eq!(parse_stat(line), Some(Duration::from_millis(3250)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn reads_this_process_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu_time().is_some());
        }
    }
}
