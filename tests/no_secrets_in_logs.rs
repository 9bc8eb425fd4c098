//! No secret in any output at any log level: the real server and client binaries run at
//! `RUST_LOG=trace` through HELLO (WebSocket and QUIC), bad HELLOs, JOINs, BINDs with bad
//! payloads, a resume, admin calls with the right and wrong admin tokens, and visitors with
//! wrong Basic Auth passwords. Every byte they print on stdout and stderr is searched for the
//! token, the admin token, the passwords (plain and base64), and the join nonces the server
//! handed out (read from HELLO_OK by a raw client, and sniffed off the real client's connection).

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use underpass_transports::ws::WsTransport;
use underpass_transports::{Carrier, Endpoint, Transport};

const SECRET_TOKEN: &str = "tok-SECRET-7f3a9c1e5b2d4086";
const ADMIN_TOKEN: &str = "adm-SECRET-0c8e2b6d4f1a3957";
const PASSWORD: &str = "pw-SECRET-5d1f7b3e9a2c4680";
const WRONG_PASSWORDS: [&str; 2] = ["wrong-SECRET-1a2b3c4d5e6f", "wrong-SECRET-9z8y7x6w5v"];
const WRONG_ADMIN: &str = "adm-WRONG-SECRET-4b5c6d7e";
const WRONG_TOKEN: &str = "tok-WRONG-SECRET-8d9e0f1a";
/// A non-string Basic Auth password, and a string where an enum is expected.
const NUMBER_PASSWORD: u64 = 918_273_645_546_372_819;
const MARKER_IN_ENUM: &str = "enum-SECRET-3e4f5a6b";

/// A running binary whose every output line is kept.
struct Watched {
    _child: Child,
    output: Arc<Mutex<String>>,
    stdout: mpsc::UnboundedReceiver<String>,
}

fn watch(args: &[&str], env: &[(&str, &str)]) -> Watched {
    let mut cmd = command(args, env);
    cmd.env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("underpass binary runs");
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, stdout) = mpsc::unbounded_channel();
    let out = child.stdout.take().unwrap();
    let kept = output.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    let mut err = child.stderr.take().unwrap();
    let kept = output.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = err.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Watched {
        _child: child,
        output,
        stdout,
    }
}

impl Watched {
    /// The rest of the next stdout line starting with `prefix`.
    async fn line(&mut self, prefix: &str) -> String {
        let output = self.output.clone();
        within(30, async {
            loop {
                match self.stdout.recv().await {
                    Some(line) if line.starts_with(prefix) => {
                        return line[prefix.len()..].trim().to_string()
                    }
                    Some(_) => {}
                    None => panic!(
                        "ended before printing {prefix:?}:\n{}",
                        output.lock().unwrap()
                    ),
                }
            }
        })
        .await
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    async fn wait_for_output(&self, needle: &str) {
        within(30, async {
            while !self.output().contains(needle) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }
}

/// A relay in front of the server that keeps what the server sent (HELLO_OK with its join
/// nonces travels in clear over ws://) and can cut its connections.
struct Sniffer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Sniffer {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (keep, tracked) = (seen.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let keep = keep.clone();
                let task = tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut down_r, mut down_w) = down.into_split();
                    let (mut up_r, mut up_w) = up.into_split();
                    let to_server = tokio::io::copy(&mut down_r, &mut up_w);
                    let to_client = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = up_r.read(&mut buf).await {
                            if n == 0 || down_w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            keep.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                    };
                    let _ = tokio::join!(to_server, to_client);
                });
                tracked.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, seen, conns }
    }

    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Every join nonce that went by in a HELLO_OK.
    fn nonces(&self) -> Vec<String> {
        nonces_in(&String::from_utf8_lossy(&self.seen.lock().unwrap()))
    }
}

fn nonces_in(text: &str) -> Vec<String> {
    text.split("\"nonce\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

fn frame(ty: u8, stream_id: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(ty);
    out.put_u32(stream_id);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

async fn carrier(addr: SocketAddr, subprotocol: &str) -> Carrier {
    let endpoint = Endpoint {
        url: format!("ws://{addr}"),
        subprotocol: subprotocol.into(),
        bearer: None,
    };
    within(10, WsTransport::new().connect(&endpoint))
        .await
        .unwrap()
}

/// Sends one raw message and returns what comes back (or nothing when the server closes).
async fn exchange(c: &mut Carrier, message: Bytes) -> Option<Bytes> {
    c.tx.send(message).await.ok()?;
    within(10, c.rx.recv()).await.ok().flatten()
}

fn json_of(message: &Bytes) -> Value {
    serde_json::from_slice(&message[9..]).unwrap_or(Value::Null)
}

/// A raw v2 client: HELLO, the nonces of HELLO_OK, a good and a bad JOIN, and BINDs whose
/// payloads the server cannot parse. Returns the nonces it was given.
async fn raw_session(addr: SocketAddr) -> Vec<String> {
    let mut c0 = carrier(addr, "hoody-tunnel.v2").await;
    let hello = json!({"version": "hoody-tunnel.v2", "capabilities": ["multi-ws"],
        "auth": {"kind": "bearer", "token": SECRET_TOKEN}, "maxConnections": 3});
    let ok = exchange(&mut c0, frame(0x01, 0, hello.to_string().as_bytes()))
        .await
        .expect("HELLO_OK");
    let ok = json_of(&ok);
    let session = ok["sessionId"].as_str().unwrap().to_string();
    let nonces = nonces_in(&ok.to_string());
    assert_eq!(nonces.len(), 2, "{ok}");

    let mut c1 = carrier(addr, "hoody-tunnel.v2").await;
    let join = json!({"sessionId": session, "index": 1, "nonce": nonces[0]});
    let answer = exchange(&mut c1, frame(0x09, 0, join.to_string().as_bytes())).await;
    assert_eq!(answer.map(|m| m[0]), Some(0x0A), "JOIN_OK");
    let mut c2 = carrier(addr, "hoody-tunnel.v2").await;
    let bad = json!({"sessionId": session, "index": 2, "nonce": format!("{}x", nonces[1])});
    let _ = exchange(&mut c2, frame(0x09, 0, bad.to_string().as_bytes())).await;

    // BINDs the server cannot parse end the session; one per fresh session.
    let bad_binds = [
        json!({"clientBindRef": "a", "kind": "http", "mode": "expose",
               "route": {"subdomain": "x"}, "basicAuth": {"password": NUMBER_PASSWORD}}),
        json!({"clientBindRef": "b", "kind": "http", "mode": "expose",
               "route": {"subdomain": "y", "mode": MARKER_IN_ENUM}}),
        json!({"clientBindRef": "c", "kind": "http", "mode": "expose",
               "route": {"subdomain": "z"}, "basicAuth": {"username": "u", "password": ["p", PASSWORD]}}),
    ];
    let mut first = Some(c0);
    for bind in bad_binds {
        let mut c = match first.take() {
            Some(c) => c,
            None => {
                let mut c = carrier(addr, "hoody-tunnel.v1").await;
                let hello = json!({"version": "hoody-tunnel.v1",
                    "auth": {"kind": "bearer", "token": SECRET_TOKEN}});
                exchange(&mut c, frame(0x01, 0, hello.to_string().as_bytes()))
                    .await
                    .expect("HELLO_OK");
                c
            }
        };
        let _ = exchange(&mut c, frame(0x03, 0, bind.to_string().as_bytes())).await;
    }
    nonces
}

/// HELLOs the server refuses: the token as a plain string (a common client mistake), a wrong
/// token, a wrong token in the upgrade's Authorization header.
async fn bad_hellos(addr: SocketAddr) {
    for hello in [
        json!({"version": "hoody-tunnel.v1", "auth": SECRET_TOKEN}),
        json!({"version": "hoody-tunnel.v1", "auth": {"kind": "bearer", "token": WRONG_TOKEN}}),
        json!({"version": SECRET_TOKEN, "auth": {"kind": "bearer", "token": SECRET_TOKEN}}),
        json!({"version": "hoody-tunnel.v1", "auth": {"kind": "bearer", "token": 42}, "x": SECRET_TOKEN}),
    ] {
        let mut c = carrier(addr, "hoody-tunnel.v1").await;
        let _ = exchange(&mut c, frame(0x01, 0, hello.to_string().as_bytes())).await;
    }
    let endpoint = Endpoint {
        url: format!("ws://{addr}"),
        subprotocol: "hoody-tunnel.v1".into(),
        bearer: Some(WRONG_TOKEN.into()),
    };
    let mut c = within(10, WsTransport::new().connect(&endpoint))
        .await
        .unwrap();
    let hello = json!({"version": "hoody-tunnel.v1"});
    let _ = exchange(&mut c, frame(0x01, 0, hello.to_string().as_bytes())).await;
}

fn basic(password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("visitor:{password}"))
}

async fn visit(addr: SocketAddr, host: &str, password: Option<&str>) -> u16 {
    let auth = password
        .map(|p| format!("Authorization: Basic {}\r\n", basic(p)))
        .unwrap_or_default();
    let req = format!("GET /x HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    raw_http(addr, &req).await.status
}

async fn admin_call(addr: SocketAddr, token: &str) -> u16 {
    let req = format!(
        "GET /__underpass__/api/v1/tunnels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    raw_http(addr, &req).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_at_trace_level() {
    let mut server = watch(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--domain",
            "example.test",
            "--quic-listen",
            "127.0.0.1:0",
            "--resume-grace",
            "30",
        ],
        &[
            ("UNDERPASS_TOKEN", SECRET_TOKEN),
            ("UNDERPASS_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    let addr: SocketAddr = server
        .line("control: ws://")
        .await
        .trim_end_matches("/__underpass__/control")
        .parse()
        .unwrap();
    let quic = server.line("quic: quic://").await;
    let fingerprint = server.line("quic-cert-sha256:").await;
    let app = echo_app("app").await;
    let app = app.to_string();
    let sniffer = Sniffer::start(addr).await;

    let ws_server = format!("ws://{}", sniffer.addr);
    let mut ws_client = watch(
        &["http", &app, "--server", &ws_server, "--subdomain", "demo"],
        &[
            ("UNDERPASS_TOKEN", SECRET_TOKEN),
            ("UNDERPASS_BASIC_AUTH_PASSWORD", PASSWORD),
        ],
    );
    ws_client.line("public:").await;
    let quic_server = format!("quic://{quic}");
    let mut quic_client = watch(
        &[
            "http",
            &app,
            "--server",
            &quic_server,
            "--server-cert-sha256",
            &fingerprint,
            "--subdomain",
            "q",
            "--token",
            SECRET_TOKEN,
            "--basic-auth-password",
            PASSWORD,
        ],
        &[],
    );
    quic_client.line("public:").await;

    // Visitors: none, wrong and right passwords, on both routes.
    for host in ["demo.example.test", "q.example.test"] {
        assert_eq!(visit(addr, host, None).await, 401);
        for wrong in WRONG_PASSWORDS {
            assert_eq!(visit(addr, host, Some(wrong)).await, 401);
        }
        assert_eq!(visit(addr, host, Some(PASSWORD)).await, 200);
    }

    let mut nonces = raw_session(addr).await;
    bad_hellos(addr).await;

    // Admin API: right and wrong tokens, over HTTP and through the admin command.
    assert_eq!(admin_call(addr, ADMIN_TOKEN).await, 200);
    assert_eq!(admin_call(addr, WRONG_ADMIN).await, 401);
    let admin_url = format!("http://{addr}");
    let mut outputs = Vec::new();
    for token in [ADMIN_TOKEN, WRONG_ADMIN] {
        let mut cmd = command(
            &["admin", "list", "--server", &admin_url],
            &[("UNDERPASS_ADMIN_TOKEN", token)],
        );
        cmd.env("RUST_LOG", "trace");
        let out = within(30, cmd.output()).await.unwrap();
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }

    // A network blip: the WebSocket client resumes (HELLO with resume and the token again).
    sniffer.cut();
    ws_client.wait_for_output("session resumed").await;
    within(30, async {
        while visit(addr, "demo.example.test", Some(PASSWORD)).await != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    nonces.extend(sniffer.nonces());
    assert!(nonces.len() >= 5, "nonces seen: {nonces:?}");
    let mut secrets: Vec<String> = vec![
        SECRET_TOKEN.into(),
        ADMIN_TOKEN.into(),
        PASSWORD.into(),
        WRONG_ADMIN.into(),
        WRONG_TOKEN.into(),
        MARKER_IN_ENUM.into(),
        NUMBER_PASSWORD.to_string(),
        basic(PASSWORD),
    ];
    for wrong in WRONG_PASSWORDS {
        secrets.push(wrong.into());
        secrets.push(basic(wrong));
    }
    secrets.extend(nonces);

    outputs.push(server.output());
    outputs.push(ws_client.output());
    outputs.push(quic_client.output());
    let server_log = &outputs[outputs.len() - 3];
    assert!(
        server_log.contains("DEBUG") && server_log.contains("session opened"),
        "the server logged at debug level:\n{server_log}"
    );
    for (i, output) in outputs.iter().enumerate() {
        for secret in &secrets {
            if let Some(at) = output.find(secret.as_str()) {
                let from = output[..at].rfind('\n').map_or(0, |n| n + 1);
                let to = output[at..].find('\n').map_or(output.len(), |n| at + n);
                panic!(
                    "output {i} contains the secret {secret:?} ({} bytes of output):\n{}",
                    output.len(),
                    &output[from..to.min(from + 2000)]
                );
            }
        }
    }
}

/// `{:?}` of every type that holds a secret, as a log line or a panic message would print it.
#[test]
fn debug_output_of_secret_holders_shows_no_secret() {
    use clap::Parser;
    use underpass::client::{ClientOptions, HttpExpose};
    use underpass::proto::{Frame, Hello, HelloAuth, HelloOk, Join, JoinTicket};
    use underpass::server::ServerConfig;
    use underpass_transports::CarrierInfo;

    let nonce = "nonce-SECRET-6a7b8c9d";
    let mut config = ServerConfig::local(SECRET_TOKEN);
    config.admin_token = Some(ADMIN_TOKEN.into());
    let hello = Frame::Hello(Hello {
        version: "hoody-tunnel.v2".into(),
        capabilities: Vec::new(),
        auth: Some(HelloAuth {
            kind: "bearer".into(),
            token: SECRET_TOKEN.into(),
        }),
        resume: None,
        max_connections: None,
    });
    let ticket = JoinTicket {
        index: 1,
        nonce: nonce.into(),
        expires_ms: 1000,
    };
    let hello_ok = Frame::HelloOk(HelloOk {
        session_id: "s".into(),
        resumed: false,
        resumed_binds: Vec::new(),
        connections_granted: Some(2),
        join_tickets: Some(vec![ticket.clone()]),
        stream_window: 1,
        session_window: 1,
        server_version: None,
        domain: None,
        max_streams: None,
    });
    let join = Frame::Join(Join {
        session_id: "s".into(),
        index: 1,
        nonce: nonce.into(),
    });
    let info = CarrierInfo {
        bearer: Some(SECRET_TOKEN.into()),
        ..CarrierInfo::default()
    };
    let endpoint = Endpoint {
        url: "ws://x".into(),
        subprotocol: "v".into(),
        bearer: Some(SECRET_TOKEN.into()),
    };
    let expose = HttpExpose {
        basic_auth_password: Some(PASSWORD.into()),
        ..HttpExpose::default()
    };
    let options = ClientOptions::new("ws://x", SECRET_TOKEN);
    let mut printed = vec![
        format!("{config:?}"),
        format!("{hello:?}"),
        format!("{hello_ok:?}"),
        format!("{join:?}"),
        format!("{info:?}"),
        format!("{endpoint:?}"),
        format!("{expose:?}"),
        format!("{options:?}"),
    ];
    for args in [
        vec![
            "underpass",
            "server",
            "--token",
            SECRET_TOKEN,
            "--admin-token",
            ADMIN_TOKEN,
        ],
        vec![
            "underpass",
            "http",
            "3000",
            "--token",
            SECRET_TOKEN,
            "--basic-auth-password",
            PASSWORD,
        ],
        vec!["underpass", "tcp", "22", "--token", SECRET_TOKEN],
        vec![
            "underpass",
            "start",
            "--config",
            "x.toml",
            "--token",
            SECRET_TOKEN,
        ],
        vec!["underpass", "bench", "--token", SECRET_TOKEN],
        vec!["underpass", "admin", "list", "--admin-token", ADMIN_TOKEN],
    ] {
        let cli = underpass::cli::Cli::try_parse_from(&args).unwrap();
        printed.push(format!("{cli:?}"));
    }
    for text in printed {
        for secret in [SECRET_TOKEN, ADMIN_TOKEN, PASSWORD, nonce] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
