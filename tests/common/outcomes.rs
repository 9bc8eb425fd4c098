//! The two ways a client command may fail, as a user sees them: a final failure (exit status 1
//! at once, one `error:` line, no retry) or a failure it keeps retrying (a warning per attempt
//! while it runs on).

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{command, spawn, within, Proc};

/// Runs `underpass ARGS` and expects a final failure; returns its one `error:` line.
pub async fn final_error(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = within(30, command(args, env).output()).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("retrying"), "retried before giving up: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line expected: {err}");
    assert!(!errors[0].contains("panicked"), "{err}");
    println!("{args:?} -> {}", errors[0]);
    errors[0].to_string()
}

/// Starts `underpass ARGS` and expects it to retry: `count` retry warnings on stderr while the
/// process keeps running. Returns the process (killed when dropped) and the warnings.
pub async fn retrying(args: &[&str], env: &[(&str, &str)], count: usize) -> (Proc, Vec<String>) {
    let mut p = spawn(args, env);
    let mut lines = BufReader::new(p.child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    within(90, async {
        while seen.len() < count {
            match lines.next_line().await.unwrap() {
                Some(line) if line.contains("retrying in") => seen.push(line),
                Some(_) => {}
                None => panic!("the client exited instead of retrying; saw {seen:?}"),
            }
        }
    })
    .await;
    assert!(p.child.try_wait().unwrap().is_none(), "the client exited");
    println!("{args:?} -> {seen:?}");
    (p, seen)
}
