//! How many worker threads the real binary runs, as a user sets it: `--threads`, the
//! `UNDERPASS_THREADS` variable, the default (half the CPUs, at least one), and a clear error
//! for a value that is not a positive number. Threads are counted in /proc, by the name tokio
//! gives its workers.

mod common;

use common::{run_failing, server_process};

/// Worker threads of process `pid` (Linux: /proc/PID/task/*/comm).
fn workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc is readable")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

fn pid(p: &common::Proc) -> u32 {
    p.child.id().expect("the server is running")
}

#[tokio::test]
async fn the_flag_sets_the_worker_threads() {
    let (p, _) = server_process(&["--threads", "3"], &[]).await;
    assert_eq!(workers(pid(&p)), 3);
}

#[tokio::test]
async fn the_variable_sets_the_worker_threads_and_the_flag_wins() {
    let (p, _) = server_process(&[], &[("UNDERPASS_THREADS", "2")]).await;
    assert_eq!(workers(pid(&p)), 2);
    let (p, _) = server_process(&["--threads", "1"], &[("UNDERPASS_THREADS", "2")]).await;
    assert_eq!(workers(pid(&p)), 1);
}

#[tokio::test]
async fn by_default_a_server_takes_half_the_cpus() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (p, _) = server_process(&[], &[]).await;
    assert_eq!(workers(pid(&p)), (cpus / 2).max(1));
}

#[tokio::test]
async fn zero_or_a_word_is_refused_with_one_clear_line() {
    for bad in ["0", "many"] {
        let err = run_failing(
            &["server", "--listen", "127.0.0.1:0", "--threads", bad],
            &[],
        )
        .await;
        assert!(err.contains("--threads"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let err = run_failing(
        &["server", "--listen", "127.0.0.1:0"],
        &[("UNDERPASS_THREADS", "0")],
    )
    .await;
    assert!(err.contains("--threads"), "{err}");
}
