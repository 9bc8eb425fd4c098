//! Every flag of every subcommand, through the real binary: the flags are read from clap's own
//! command definition, so a new flag is covered as soon as it exists (the test fails until it
//! has a sample value below). Each flag runs once as a flag and once through its `UNDERPASS_*`
//! variable, and must start cleanly (a command that runs until stopped prints its first line and
//! is killed; one that does a job exits 0) or fail with one clear `error:` line, never panic.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::CommandFactory;
use common::{server_process, Proc, TestCa, BIN, TOKEN};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use underpass::cli::Cli;

const ADMIN_TOKEN: &str = "admin-token-0123456789";
/// Runs at once: enough to keep the test short, few enough for a shared 2-core machine.
const PARALLEL: usize = 4;

/// What the runs share: one server (HTTP, QUIC with a CA-issued certificate, admin API,
/// forwards allowed) and files.
struct World {
    _server: Proc,
    ws_url: String,
    admin_url: String,
    quic_url: String,
    quic_sha256: String,
    forward_port: u16,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
    config_file: PathBuf,
    dir: tempfile::TempDir,
    unique: AtomicUsize,
}

impl World {
    async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("underpass surface test CA");
        let ca_file = ca.write(dir.path(), "ca.pem");
        let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
        let (cert_file, key_file) = leaf.write(dir.path(), "server");
        let forward_port = common::unused_addr().port();
        let (mut server, addr) = server_process(
            &[
                "--token",
                TOKEN,
                "--admin-token",
                ADMIN_TOKEN,
                "--allow-forward",
                &forward_port.to_string(),
                // Killed clients must not hold their session (and its limits) for a minute.
                "--resume-grace",
                "0",
                "--quic-listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert_file.to_str().unwrap(),
                "--tls-key",
                key_file.to_str().unwrap(),
            ],
            &[],
        )
        .await;
        let quic_url = server.expect_line("quic: ").await;
        let quic_sha256 = server.expect_line("quic-cert-sha256: ").await;
        assert_eq!(quic_sha256, leaf.sha256_hex());
        let ws_url = format!("ws://{addr}");
        let config_file = dir.path().join("start.toml");
        std::fs::write(
            &config_file,
            format!("server = \"{ws_url}\"\ntoken = \"{TOKEN}\"\n[[http]]\nport = 3000\n"),
        )
        .unwrap();
        World {
            _server: server,
            admin_url: format!("http://{addr}"),
            ws_url,
            quic_url,
            quic_sha256,
            forward_port,
            ca_file,
            cert_file,
            key_file,
            config_file,
            dir,
            unique: AtomicUsize::new(0),
        }
    }

    fn path(&self, p: &std::path::Path) -> String {
        p.to_str().unwrap().to_string()
    }

    /// A fresh name, for values that must differ between runs (routes, files).
    fn unique(&self) -> usize {
        self.unique.fetch_add(1, Ordering::Relaxed)
    }
}

/// How a subcommand shows it started.
#[derive(Clone, Copy, Debug)]
enum Ready {
    /// Runs until stopped; this stdout line prefix means it is up.
    Line(&'static str),
    /// Does its job and exits 0.
    Exit,
    /// Must fail with one `error:` line containing this (the base call is refused on purpose).
    Error(&'static str),
}

type Flags = Vec<(String, Option<String>)>;

/// The call that starts a subcommand cleanly, before the flag under test is added.
struct Base {
    args: Vec<String>,
    flags: Flags,
    ready: Ready,
}

fn flag(name: &str, value: impl Into<String>) -> (String, Option<String>) {
    (name.to_string(), Some(value.into()))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The clean call of each runnable subcommand (`path` is the subcommand chain).
fn base(path: &[&str], w: &World) -> Base {
    let client = || vec![flag("--server", &w.ws_url), flag("--token", TOKEN)];
    let admin = || {
        vec![
            flag("--server", &w.admin_url),
            flag("--admin-token", ADMIN_TOKEN),
        ]
    };
    let (args, flags, ready): (Vec<String>, Flags, Ready) = match path {
        ["server"] => (
            vec![],
            vec![flag("--listen", "127.0.0.1:0")],
            Ready::Line("control:"),
        ),
        ["http"] => (strings(&["3000"]), client(), Ready::Line("public:")),
        ["tcp"] => (strings(&["3000"]), client(), Ready::Line("public:")),
        ["pull"] => (strings(&["3000"]), client(), Ready::Line("server:")),
        ["forward"] => {
            let mut flags = client();
            flags.push(flag("--remote-port", w.forward_port.to_string()));
            (strings(&["0"]), flags, Ready::Line("local:"))
        }
        ["start"] => (
            vec![],
            vec![flag("--config", w.path(&w.config_file))],
            Ready::Line("http "),
        ),
        ["demo"] => (
            vec![],
            vec![flag("--listen", "127.0.0.1:0")],
            Ready::Line("open:"),
        ),
        ["bench"] => (
            vec![],
            vec![
                flag("--transport", "ws"),
                flag("--bytes", "64KiB"),
                flag("--requests", "5"),
            ],
            Ready::Exit,
        ),
        ["skill", "install"] => {
            // `{n}` becomes a fresh number in each run: every run writes into a new directory.
            let dir = w.dir.path().join("skill-{n}");
            (vec![w.path(&dir)], vec![], Ready::Exit)
        }
        ["admin", "sessions", "kill"] => {
            (strings(&["s_nonexistent"]), admin(), Ready::Error("404"))
        }
        // The shared server has no clients file.
        ["admin", "reload"] => (vec![], admin(), Ready::Error("409")),
        ["token", "new"] => (vec![], vec![], Ready::Exit),
        ["completions"] => (strings(&["bash"]), vec![], Ready::Exit),
        ["man"] => (vec![], vec![], Ready::Exit),
        ["admin", ..] => (vec![], admin(), Ready::Exit),
        other => panic!(
            "no base call for `underpass {}`: add one to base() in tests/cli_surface.rs",
            other.join(" ")
        ),
    };
    let mut full: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    full.extend(args);
    Base {
        args: full,
        flags,
        ready,
    }
}

/// A valid value for `--long` of subcommand `path`, plus the flags it needs beside it. `None`
/// when the test does not know the flag yet.
fn sample(path: &[&str], long: &str, w: &World) -> Option<(String, Flags)> {
    let n = w.unique();
    let v = |s: &str| Some((s.to_string(), vec![]));
    match (path[0], long) {
        // The global flags.
        (_, "log-format") => v("json"),
        (_, "threads") => v("1"),
        ("server", "listen") | ("demo", "listen") => v("127.0.0.1:0"),
        ("server", "domain") => v("example.test"),
        ("server", "token") => v("surface-token"),
        ("server", "clients") => {
            let file = w.dir.path().join(format!("clients-{n}.toml"));
            let text = "[[client]]\nname = \"surface\"\ntoken = \"surface-client-token\"\n";
            std::fs::write(&file, text).unwrap();
            v(&w.path(&file))
        }
        ("server", "admin-token") => v("surface-admin-token"),
        ("server", "trusted-proxy") => v("loopback,10.0.0.0/8"),
        ("server", "expose-ports") => v("30000-30100"),
        ("server", "allow-forward") => v("5432,8000-8100"),
        ("server", "public-url-template") => v("https://{host}:{port}"),
        ("server", "max-sessions") => v("10"),
        ("server", "max-bindings-per-session") => v("4"),
        ("server", "max-streams-per-session") => v("100"),
        ("server", "max-connections-per-session") => v("4"),
        ("server", "hello-timeout") => v("2"),
        ("server", "stream-initial-window") => v("256KiB"),
        ("server", "session-initial-window") => v("4MiB"),
        ("server", "ping-interval") => v("10"),
        ("server", "pong-timeout") => v("20"),
        ("server", "response-timeout") => v("30"),
        ("server", "header-timeout") => v("10"),
        ("server", "idle-stream-timeout") => v("60"),
        ("server", "visitor-rate") => v("50"),
        ("server", "fd-budget") => v("100"),
        ("server", "max-connections-per-ip") => v("64"),
        ("server", "resume-grace") => v("5"),
        ("server", "drain-timeout") => v("1"),
        ("server", "control-listen") => v("127.0.0.1:0"),
        ("server", "quic-listen") => v("127.0.0.1:0"),
        ("server", "tls-cert") => Some((
            w.path(&w.cert_file),
            vec![
                flag("--tls-key", w.path(&w.key_file)),
                flag("--quic-listen", "127.0.0.1:0"),
            ],
        )),
        ("server", "tls-key") => Some((
            w.path(&w.key_file),
            vec![
                flag("--tls-cert", w.path(&w.cert_file)),
                flag("--quic-listen", "127.0.0.1:0"),
            ],
        )),
        ("server", "tls-cert-cache") => Some((
            w.path(&w.dir.path().join(format!("cache-{n}.pem"))),
            vec![flag("--quic-listen", "127.0.0.1:0")],
        )),
        // Client connection flags (http, tcp, pull, forward, start).
        ("http" | "tcp" | "pull" | "forward" | "start", "server") => v(&w.ws_url),
        ("http" | "tcp" | "pull" | "forward" | "start", "token") => v(TOKEN),
        ("http" | "tcp" | "pull" | "forward" | "start", "connections") => v("2"),
        ("http" | "tcp" | "pull" | "forward" | "start", "transport") => Some((
            "quic".into(),
            vec![
                flag("--server", &w.quic_url),
                flag("--server-cert-sha256", &w.quic_sha256),
            ],
        )),
        ("http" | "tcp" | "pull" | "forward" | "start", "server-cert-sha256") => {
            Some((w.quic_sha256.clone(), vec![flag("--server", &w.quic_url)]))
        }
        ("http" | "tcp" | "pull" | "forward" | "start", "ca") => {
            Some((w.path(&w.ca_file), vec![flag("--server", &w.quic_url)]))
        }
        ("http" | "tcp" | "pull" | "forward" | "start", "proxy") => v("none"),
        ("http" | "tcp" | "pull" | "forward" | "start", "ping-interval") => v("10"),
        ("http" | "tcp" | "pull" | "forward" | "start", "pong-timeout") => v("20"),
        ("start", "config") => v(&w.path(&w.config_file)),
        // The flag run and the variable run may overlap: each gets a route of its own.
        ("http", "subdomain") => v("surface{n}"),
        ("http", "mode") => v("cluster"),
        ("http" | "tcp", "port") => v("0"),
        ("http", "basic-auth-username") => Some((
            "admin".into(),
            vec![flag("--basic-auth-password", "secret")],
        )),
        ("http", "basic-auth-password") => v("secret"),
        ("http" | "tcp", "cidr-allow") => v("127.0.0.1,10.0.0.0/8"),
        ("http" | "tcp", "cidr-deny") => v("10.6.6.6"),
        ("tcp", "proxy-protocol") => v("v2"),
        ("pull", "remote-port") => v("0"),
        ("pull", "to") => v("127.0.0.1:3000"),
        ("forward", "remote-port") => v(&w.forward_port.to_string()),
        ("bench", "transport") => v("ws-striped"),
        ("bench", "bytes") => v("128KiB"),
        ("bench", "requests") => v("10"),
        ("bench", "server") => Some((w.ws_url.clone(), vec![flag("--token", TOKEN)])),
        ("bench", "token") => Some((TOKEN.into(), vec![flag("--server", &w.ws_url)])),
        ("bench", "server-cert-sha256") => Some((
            w.quic_sha256.clone(),
            vec![
                flag("--server", &w.quic_url),
                flag("--token", TOKEN),
                flag("--transport", "quic"),
            ],
        )),
        ("bench", "ca") => Some((
            w.path(&w.ca_file),
            vec![
                flag("--server", &w.quic_url),
                flag("--token", TOKEN),
                flag("--transport", "quic"),
            ],
        )),
        ("man", "dir") => v(&w.path(&w.dir.path().join("man-{n}"))),
        ("admin", "server") => v(&w.admin_url),
        ("admin", "admin-token") => v(ADMIN_TOKEN),
        ("admin", "grace-ms") => v("100"),
        ("http" | "start" | "demo", "inspect") => v("127.0.0.1:0"),
        ("http" | "start" | "demo", "inspect-body-cap") => v("64KiB"),
        ("http" | "start" | "demo", "inspect-max-requests") => v("10"),
        ("token", "name") => v(&format!("surface{n}")),
        _ => None,
    }
}

/// One run of the binary.
#[derive(Debug)]
struct Run {
    what: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    ready: Ready,
}

/// The flag under test, given as a flag or through its variable.
enum Given {
    Flag(Option<String>),
    Env(String, String),
}

fn compose(base: &Base, long: &str, given: Given, extra: &Flags, ready: Ready) -> Run {
    let name = format!("--{long}");
    let replaced: HashSet<&str> = extra
        .iter()
        .map(|(n, _)| n.as_str())
        .chain([name.as_str()])
        .collect();
    let mut args = base.args.clone();
    let mut push = |(n, v): &(String, Option<String>)| {
        args.push(n.clone());
        args.extend(v.clone());
    };
    for f in base
        .flags
        .iter()
        .filter(|(n, _)| !replaced.contains(n.as_str()))
    {
        push(f);
    }
    for f in extra {
        push(f);
    }
    let (env, what) = match given {
        Given::Flag(value) => {
            let what = format!("{name} {}", value.clone().unwrap_or_default());
            push(&(name.clone(), value));
            (vec![], what)
        }
        Given::Env(var, value) => (vec![(var.clone(), value.clone())], format!("{var}={value}")),
    };
    Run {
        what: format!("`{}` with {what}", base.args.join(" ")),
        args,
        env,
        ready,
    }
}

/// Every run: each leaf subcommand's flags, as flags and through their variables.
fn plan(w: &World) -> (Vec<Run>, Vec<String>) {
    let mut cmd = Cli::command();
    cmd.build();
    let mut runs = Vec::new();
    let mut unknown = Vec::new();
    let mut globals_done = HashSet::new();
    let mut leaves = Vec::new();
    collect_leaves(&cmd, &mut Vec::new(), &mut leaves);
    // `{n}` in an argument or a variable becomes a number no other run uses.
    let fresh = |mut run: Run| {
        for a in run
            .args
            .iter_mut()
            .chain(run.env.iter_mut().map(|(_, v)| v))
        {
            *a = a.replace("{n}", &w.unique().to_string());
        }
        run
    };
    for (path, leaf) in leaves {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let b = base(&path, w);
        for arg in leaf.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_positional() || id == "help" || id == "version" {
                continue;
            }
            // A global flag is the same flag everywhere: once is enough.
            if arg.is_global_set() && !globals_done.insert(id.to_string()) {
                continue;
            }
            let Some(long) = arg.get_long() else {
                unknown.push(format!("{}: -{id} has no long name", path.join(" ")));
                continue;
            };
            let takes_value = arg.get_action().takes_values();
            let (value, extra) = if takes_value {
                match sample(&path, long, w) {
                    Some(s) => s,
                    None => {
                        unknown.push(format!("underpass {} --{long}", path.join(" ")));
                        continue;
                    }
                }
            } else {
                (String::new(), vec![])
            };
            let flag_value = takes_value.then(|| value.clone());
            runs.push(fresh(compose(
                &b,
                long,
                Given::Flag(flag_value),
                &extra,
                b.ready,
            )));
            if let Some(var) = arg.get_env() {
                let var = var.to_str().unwrap().to_string();
                assert!(
                    var.starts_with("UNDERPASS_"),
                    "{var}: not an UNDERPASS_ variable"
                );
                let env_value = if takes_value { value } else { "true".into() };
                runs.push(fresh(compose(
                    &b,
                    long,
                    Given::Env(var, env_value),
                    &extra,
                    b.ready,
                )));
            }
        }
        // The base call alone too: flags that are all defaults.
        runs.push(fresh(Run {
            what: format!("`{}` (defaults)", b.args.join(" ")),
            args: b
                .args
                .iter()
                .cloned()
                .chain(
                    b.flags
                        .iter()
                        .flat_map(|(n, v)| std::iter::once(n.clone()).chain(v.clone())),
                )
                .collect(),
            env: vec![],
            ready: b.ready,
        }));
    }
    (runs, unknown)
}

fn collect_leaves(
    cmd: &clap::Command,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, clap::Command)>,
) {
    let subs: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    if subs.is_empty() {
        out.push((path.clone(), cmd.clone()));
        return;
    }
    for sub in subs {
        path.push(sub.get_name().to_string());
        collect_leaves(sub, path, out);
        path.pop();
    }
}

/// Runs one call; `Err` says what went wrong.
async fn execute(run: &Run) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(&run.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Only the final error line (and any panic) on stderr.
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in &run.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    let mut stderr = child.stderr.take().unwrap();
    let stderr_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Duration::from_secs(60);
    let started = tokio::time::timeout(deadline, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ready::Line(prefix) = run.ready {
                if line.starts_with(prefix) {
                    return true;
                }
            }
        }
        false
    })
    .await
    .map_err(|_| format!("no start line and no exit within {deadline:?}"))?;
    if started {
        let _ = child.start_kill();
    }
    let status = tokio::time::timeout(deadline, child.wait())
        .await
        .map_err(|_| "did not exit".to_string())?
        .map_err(|e| e.to_string())?;
    let err = stderr_task.await.unwrap_or_default();
    if err.contains("panicked") {
        return Err(format!("panicked:\n{err}"));
    }
    match run.ready {
        Ready::Line(_) if started => Ok(()),
        Ready::Exit if status.success() => Ok(()),
        Ready::Error(what) => {
            let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            if status.code() == Some(1)
                && lines.len() == 1
                && lines[0].starts_with("error: ")
                && lines[0].contains(what)
            {
                Ok(())
            } else {
                Err(format!(
                    "expected one error line with '{what}', got {status}:\n{err}"
                ))
            }
        }
        _ => Err(format!("did not start ({status}); stderr:\n{err}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flag_and_variable_of_every_subcommand_runs() {
    let world = Arc::new(World::start().await);
    let (runs, unknown) = plan(&world);
    assert!(
        unknown.is_empty(),
        "flags without a sample value in tests/cli_surface.rs sample(): {unknown:#?}"
    );
    assert!(
        runs.len() > 100,
        "only {} runs: the walk missed subcommands",
        runs.len()
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let tasks: Vec<_> = runs
        .into_iter()
        .map(|run| {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.unwrap();
                execute(&run)
                    .await
                    .map_err(|e| format!("{}\n  {e}", run.what))
            })
        })
        .collect();
    let mut failures = Vec::new();
    let total = tasks.len();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
