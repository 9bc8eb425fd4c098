//! Issue 14 through the real binaries: `underpass server` and `underpass pull`, both with a short
//! `--ping-interval` / `--pong-timeout`, and the chaos relay of `tests/common/chaos.rs` between
//! them. A blackholed carrier 0 is found by the client's keepalive and the session resumed; a
//! cut secondary carrier is re-dialled. Visitors fetch checked transfers through the pull port;
//! the admin API, `underpass admin sessions list` and the logs say what the operator sees.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const ADMIN: &str = "admin-token-chaos-cli-01234";

/// What a process logs on stderr (at info), line by line; read all along so a full pipe
/// never stalls the process.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn of(p: &mut Proc) -> Self {
        let log = Self::default();
        let mut lines = BufReader::new(p.child.stderr.take().unwrap()).lines();
        let keep = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep.0.lock().unwrap().push(line);
            }
        });
        log
    }

    /// Lines holding every one of `parts`.
    fn lines_with(&self, parts: &[&str]) -> Vec<String> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .cloned()
            .collect()
    }

    /// Waits (up to 60 s) until a line holds every one of `parts`.
    async fn wait_for(&self, parts: &[&str]) {
        within(60, async {
            while self.lines_with(parts).is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }
}

/// Server and client processes with the relay between them.
struct Rig {
    client: Proc,
    client_log: Log,
    server_log: Log,
    pull_addr: SocketAddr,
    chaos: Chaos,
    server_addr: SocketAddr,
    _server: Proc,
}

async fn rig() -> Rig {
    let keepalive = ["--ping-interval", "1", "--pong-timeout", "3"];
    let mut args = vec!["--token", TOKEN, "--admin-token", ADMIN];
    args.extend(keepalive);
    let info = [("RUST_LOG", "info")];
    let (mut server, server_addr) = server_process(&args, &info).await;
    let server_log = Log::of(&mut server);
    let chaos = Chaos::start(server_addr).await;
    let source = source_server().await;
    let port = source.port().to_string();
    let url = chaos.url();
    let mut args = vec!["pull", &port, "--server", &url, "--token", TOKEN];
    args.extend(keepalive);
    let mut client = spawn(&args, &info);
    let client_log = Log::of(&mut client);
    let pull_addr = client.expect_line("server:").await.parse().unwrap();
    let rig = Rig {
        client,
        client_log,
        server_log,
        pull_addr,
        chaos,
        server_addr,
        _server: server,
    };
    rig.wait_session(|s| s["carriers"] == "4/4").await;
    rig
}

impl Rig {
    /// The only session, once `ok` holds for it (within 60 s).
    async fn wait_session(&self, ok: impl Fn(&Value) -> bool) -> Value {
        within(60, async {
            loop {
                if let [s] = &admin_sessions(self.server_addr, ADMIN).await[..] {
                    if ok(s) {
                        return s.clone();
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }

    /// Four fetches at once, each byte-exact.
    async fn fetches_complete(&self, seed: u64) {
        let fetches = (0..4).map(|i| async move {
            let f = Fetch::start(self.pull_addr, seed + i, 1 << 20)
                .await
                .unwrap();
            f.finish().await
        });
        for result in within(60, futures_util::future::join_all(fetches)).await {
            assert_eq!(result, Fetched::Complete);
        }
    }

    fn client_running(&mut self) -> bool {
        self.client.child.try_wait().unwrap().is_none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_carrier_0_is_noticed_and_the_session_resumed() {
    let mut rig = rig().await;
    rig.fetches_complete(0).await;
    let before = rig.wait_session(|_| true).await;
    let id = before["sessionId"].as_str().unwrap().to_string();

    let held = rig.chaos.blackhole(0);
    // The client's keepalive gives carrier 0 up and resumes on a new connection.
    let resumed = rig.chaos.wait_seen(0, 2).await;
    assert_eq!(
        resumed.opening(),
        Some(Opening::Hello {
            resume: Some(id.clone())
        })
    );
    let after = rig
        .wait_session(|s| s["carriers"] == "4/4" && s["parked"] == false)
        .await;
    assert_eq!(after["sessionId"], id.as_str(), "the same session, resumed");
    // The bindings serve again, on every carrier.
    rig.fetches_complete(10).await;
    assert_eq!(rig.wait_session(|_| true).await["sessionId"], id.as_str());
    // Both ends let go of the silent connection.
    within(60, async {
        while !held.peers_closed() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let metrics = admin_metrics(rig.server_addr, ADMIN).await;
    assert_eq!(metric(&metrics, "underpass_resumes_total"), Some(1.0));
    assert!(rig.client_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_secondary_carrier_is_redialled_by_the_cli_client() {
    let mut rig = rig().await;
    rig.chaos.cut(3, Cut::Rst);
    let session = rig
        .wait_session(|s| s["carriers"] == "4/4" && s["carrierRejoins"] == 1)
        .await;
    assert_eq!(session["carrierLosses"], 1, "{session}");
    assert_eq!(rig.chaos.seen(3), 2);
    assert_eq!(rig.chaos.seen(0), 1, "no resume");
    rig.fetches_complete(20).await;
    assert!(rig.client_running());

    // `underpass admin sessions list`: all 4 carriers up again, 1 lost.
    let url = format!("http://{}", rig.server_addr);
    let out = command(
        &["admin", "--server", &url, "sessions", "list"],
        &[("UNDERPASS_ADMIN_TOKEN", ADMIN)],
    )
    .output();
    let out = within(30, out).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let cell = |name: &str| {
        let at = lines[0]
            .find(name)
            .unwrap_or_else(|| panic!("no {name} column: {table}"));
        lines[1][at..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(cell("CARRIERS"), "4/4", "{table}");
    assert_eq!(cell("LOST"), "1", "{table}");

    // One log line each, with the carrier and the cause, on both sides.
    let lost = ["carrier lost", "carrier=3", "cause="];
    let rejoined = ["carrier re-joined", "carrier=3"];
    for log in [&rig.server_log, &rig.client_log] {
        log.wait_for(&lost).await;
        log.wait_for(&rejoined).await;
    }
    for (side, log) in [("server", &rig.server_log), ("client", &rig.client_log)] {
        assert_eq!(
            log.lines_with(&lost).len(),
            1,
            "{side}: {:?}",
            log.lines_with(&["carrier"])
        );
        assert_eq!(
            log.lines_with(&rejoined).len(),
            1,
            "{side}: {:?}",
            log.lines_with(&["carrier"])
        );
        assert_eq!(log.lines_with(&["carrier lost"]).len(), 1, "{side}");
    }
    // No nonce in any log line.
    for (_, _, nonce) in rig.chaos.joins() {
        assert!(rig.server_log.lines_with(&[&nonce]).is_empty());
        assert!(rig.client_log.lines_with(&[&nonce]).is_empty());
    }
}
