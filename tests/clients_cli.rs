//! Issue 12 through the binary, as an operator and their users run it: `underpass token new`,
//! `underpass server --clients FILE`, SIGHUP to the real server process, `underpass admin
//! reload` and `admin sessions list`, and the client commands with per-client tokens.

mod common;

use std::net::SocketAddr;
use std::process::ExitStatus;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

const ADMIN: &str = "admin-token-for-the-cli-tests";
const ALICE: &str = "alice-cli-token-0123456789";
const BOB: &str = "bob-cli-token-0123456789";

/// The server's stderr, line by line, read in the background.
struct Log(mpsc::UnboundedReceiver<String>);

impl Log {
    fn of(p: &mut Proc) -> Self {
        let stderr = p.child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// Waits for a line containing `needle`; returns it.
    async fn expect(&mut self, needle: &str) -> String {
        within(20, async {
            loop {
                match self.0.recv().await {
                    Some(line) if line.contains(needle) => return line,
                    Some(_) => continue,
                    None => panic!("server log ended before a line with {needle:?}"),
                }
            }
        })
        .await
    }

    /// Every line logged so far.
    fn so_far(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.0.try_recv() {
            out.push(line);
        }
        out
    }
}

/// `underpass server --clients FILE --domain example.test` plus `extra`, with info logs; the
/// lines it printed before `control:`, and its address.
async fn clients_server_process(
    file: &TempClients,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Proc, Vec<String>, SocketAddr) {
    let mut args = vec![
        "server",
        "--listen",
        "127.0.0.1:0",
        "--domain",
        DOMAIN,
        "--clients",
        file.path_str(),
    ];
    args.extend_from_slice(extra);
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "info"));
    let mut p = spawn(&args, &env);
    let mut banner = Vec::new();
    let addr = within(20, async {
        loop {
            let line = p.lines.next_line().await.unwrap().expect("server banner");
            if let Some(rest) = line.strip_prefix("control: ws://") {
                return rest
                    .trim_end_matches("/__underpass__/control")
                    .parse()
                    .unwrap();
            }
            banner.push(line);
        }
    })
    .await;
    (p, banner, addr)
}

/// `underpass http PORT --subdomain NAME` against `addr` with `token`, once it printed its URL.
async fn http_client(addr: SocketAddr, port: u16, name: &str, token: &str) -> Proc {
    let server = format!("ws://{addr}");
    let port = port.to_string();
    let mut p = spawn(
        &["http", &port, "--server", &server, "--subdomain", name],
        &[("UNDERPASS_TOKEN", token)],
    );
    p.expect_line("public:").await;
    p
}

/// The exit status and stderr of a client process that must end by itself.
async fn ended(mut p: Proc) -> (ExitStatus, String) {
    let status = within(30, p.child.wait()).await.unwrap();
    let mut err = String::new();
    if let Some(mut e) = p.child.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut err).await;
    }
    (status, err)
}

fn sighup(p: &Proc) {
    let pid = p.child.id().expect("server still runs");
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -HUP {pid}")])
        .status()
        .unwrap();
    assert!(status.success());
}

fn host(route: &str) -> String {
    format!("{route}.{DOMAIN}")
}

#[tokio::test]
async fn token_new_prints_a_token_once_and_a_block_the_server_takes() {
    let out = within(
        20,
        command(&["token", "new", "--name", "alice"], &[]).output(),
    )
    .await
    .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("token: "))
        .expect("first line is the token")
        .to_string();
    assert!(token.len() >= 40, "{token}");
    let block: Vec<&str> = stdout.lines().skip(1).collect();
    let block = block.join("\n");
    assert!(
        block.contains("[[client]]\nname = \"alice\"\ntoken_sha256 = \""),
        "{block}"
    );
    assert!(!block.contains(&token), "the block holds the digest only");
    assert!(String::from_utf8_lossy(&out.stderr).contains("only time it is shown"));

    // Pasted into a clients file with a scope, the token opens Alice's route and nothing else.
    let file = TempClients::new(&format!("{block}\nsubdomains = [\"alice\"]\n"));
    let (_server, banner, addr) = clients_server_process(&file, &[], &[]).await;
    assert!(
        banner.iter().any(|l| l.starts_with("clients: alice")),
        "{banner:?}"
    );
    // No shared token was given, so none is generated or printed.
    assert!(
        !banner.iter().any(|l| l.starts_with("token:")),
        "{banner:?}"
    );
    let app = echo_app("alice").await;
    let _alice = http_client(addr, app, "alice", &token).await;
    assert_eq!(get(addr, &host("alice"), "/").await.status, 200);

    let url = format!("ws://{addr}");
    let port = app.to_string();
    let err = run_failing(
        &["http", &port, "--server", &url, "--subdomain", "bob"],
        &[("UNDERPASS_TOKEN", &token)],
    )
    .await;
    assert!(err.contains("FORBIDDEN_ROUTE"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let err = run_failing(
        &["http", &port, "--server", &url],
        &[("UNDERPASS_TOKEN", "not-a-client-token")],
    )
    .await;
    assert!(err.contains("refused the token"), "{err}");

    // Names that cannot be used are refused before anything is printed.
    let err = run_failing(&["token", "new", "--name", "default"], &[]).await;
    assert!(err.contains("kept for the shared --token"), "{err}");
    let err = run_failing(&["token", "new", "--name", "two words"], &[]).await;
    assert!(err.contains("letters, digits"), "{err}");
}

#[tokio::test]
async fn sighup_removes_a_client_and_shrinks_a_scope_and_a_bad_file_changes_nothing() {
    let file = TempClients::new(
        &(client_block("alice", ALICE, "subdomains = [\"alice\", \"alice-*\"]")
            + &client_block("bob", BOB, "subdomains = [\"bob\"]")),
    );
    let (mut server, _, addr) = clients_server_process(&file, &[], &[]).await;
    let mut log = Log::of(&mut server);
    let app = echo_app("app").await;
    let mut alice = http_client(addr, app, "alice", ALICE).await;
    let alice_dev = http_client(addr, app, "alice-dev", ALICE).await;
    let bob = http_client(addr, app, "bob", BOB).await;

    // A file with an error: refused whole, logged, nothing changes.
    file.write(
        &(client_block("alice", ALICE, "subdomains = [\"alice\"]")
            + &client_block("bob", BOB, "subdomains = [\"bob\"]\nmax_session = 1")),
    );
    sighup(&server);
    let line = log.expect("clients file refused").await;
    assert!(line.contains("line 10"), "{line}");
    for route in ["alice", "alice-dev", "bob"] {
        assert_eq!(get(addr, &host(route), "/").await.status, 200, "{route}");
    }
    // The access log names the client that served each request.
    let request = log.expect("client=bob").await;
    assert!(request.contains("bob.example.test"), "{request}");

    // Bob removed, Alice down to "alice".
    file.write(&client_block("alice", ALICE, "subdomains = [\"alice\"]"));
    sighup(&server);
    log.expect("clients file reloaded").await;
    let (status, err) = ended(alice_dev).await;
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("binding revoked: clients file reloaded"),
        "{err}"
    );
    assert!(err.contains("'alice-dev'"), "{err}");
    let (status, err) = ended(bob).await;
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("refused the token"), "{err}");
    assert_eq!(get(addr, &host("bob"), "/").await.status, 404);
    assert_eq!(get(addr, &host("alice-dev"), "/").await.status, 404);
    // Alice's other process never noticed.
    assert_eq!(get(addr, &host("alice"), "/").await.status, 200);
    assert!(alice.child.try_wait().unwrap().is_none());
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGHUP must not end the server"
    );
    // No token reached the log.
    let logged = log.so_far().join("\n");
    assert!(!logged.contains(ALICE) && !logged.contains(BOB), "{logged}");
}

#[tokio::test]
async fn admin_reload_and_the_sessions_table() {
    let file = TempClients::new(&client_block("alice", ALICE, "subdomains = [\"alice\"]"));
    let env = [("UNDERPASS_ADMIN_TOKEN", ADMIN)];
    let (mut server, banner, addr) = clients_server_process(&file, &["--token", TOKEN], &env).await;
    let mut log = Log::of(&mut server);
    assert!(
        banner.iter().any(|l| l.starts_with("default: ")),
        "{banner:?}"
    );
    let app = echo_app("app").await;
    let _alice = http_client(addr, app, "alice", ALICE).await;
    let _shared = http_client(addr, app, "anything", TOKEN).await;
    let admin_url = format!("http://{addr}");
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--server", admin_url.as_str()];
        all.extend_from_slice(args);
        let cmd = command(&all, &env).output();
        async move { within(30, cmd).await.unwrap() }
    };

    // One line per session, with its client.
    let out = admin(&["sessions", "list"]).await;
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("SESSION") && lines[0].contains("CLIENT"),
        "{table}"
    );
    let column = lines[0].find("CLIENT").unwrap();
    let mut clients: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l[column..].split_whitespace().next().unwrap())
        .collect();
    clients.sort();
    assert_eq!(clients, ["alice", "default"], "{table}");
    let out = admin(&["sessions", "list", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"], 2);

    // A bad file: exit 1 with the line, the old clients stay.
    file.write("[[client]]\nname = \"alice\"\ntoken = \"x\"\nports = [\"a-b\"]\n");
    let out = admin(&["reload"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("422") && err.contains("line 4"), "{err}");
    assert!(err.contains("previous clients stay in force"), "{err}");
    log.expect("clients file refused").await;
    assert_eq!(get(addr, &host("alice"), "/").await.status, 200);

    // A good one: Carol can connect now; the JSON says what is in force.
    file.write(
        &(client_block("alice", ALICE, "subdomains = [\"alice\"]")
            + &client_block("carol", "carol-cli-token-0123", "subdomains = [\"carol\"]")),
    );
    let out = admin(&["reload"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["clients"],
        serde_json::json!(["default", "alice", "carol"])
    );
    let _carol = http_client(addr, app, "carol", "carol-cli-token-0123").await;
    assert_eq!(get(addr, &host("carol"), "/").await.status, 200);
}

#[tokio::test]
async fn start_up_refuses_a_bad_file_and_warns_about_plain_tokens_without_showing_them() {
    let bad = TempClients::new("[[client]]\nname = \"alice\"\ntoken = \"t\"\nport = [1]\n");
    let err = run_failing(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--clients",
            bad.path_str(),
        ],
        &[],
    )
    .await;
    assert!(
        err.contains("line 4") && err.contains("unknown field `port`"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let err = run_failing(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--clients",
            "/nonexistent/clients.toml",
        ],
        &[],
    )
    .await;
    assert!(
        err.contains("cannot read /nonexistent/clients.toml"),
        "{err}"
    );

    // The file may also come from UNDERPASS_CLIENTS.
    let file = TempClients::new(&client_block("alice", ALICE, ""));
    let mut p = spawn(
        &["server", "--listen", "127.0.0.1:0"],
        &[("UNDERPASS_CLIENTS", file.path_str())],
    );
    assert!(p.expect_line("clients: ").await.starts_with("alice"));
    let mut log = Log::of(&mut p);
    let warning = log.expect("plain `token`").await;
    assert!(!warning.contains(ALICE), "{warning}");
}
