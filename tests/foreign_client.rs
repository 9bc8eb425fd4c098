//! Issue 4: a client written only from PROTOCOL.md (no `underpass::client`, no `underpass::proto`)
//! can use the server. It dials a plain WebSocket carrier, writes every frame's 9-byte header
//! and JSON payload by hand, reads frames back the same way, and serves an http expose, a tcp
//! pull, PING, and the unknown-frame rules.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use underpass::server::Server;
use underpass_transports::{CarrierRx, CarrierTx};

// Frame types, as listed in PROTOCOL.md.
const HELLO: u8 = 0x01;
const HELLO_OK: u8 = 0x02;
const BIND: u8 = 0x03;
const BIND_OK: u8 = 0x04;
const BIND_ERR: u8 = 0x05;
const STREAM_OPEN: u8 = 0x10;
const DATA: u8 = 0x12;
const EOF: u8 = 0x13;
const RESET: u8 = 0x14;
const WINDOW: u8 = 0x15;
const STREAM_RESPONSE_HEAD: u8 = 0x16;
const PING: u8 = 0x20;
const PONG: u8 = 0x21;
const GOAWAY: u8 = 0x30;

/// One frame as it is on the wire.
#[derive(Debug, Clone)]
struct RawFrame {
    ty: u8,
    stream_id: u32,
    payload: Bytes,
}

impl RawFrame {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("frame 0x{:02x} is not JSON: {e}", self.ty))
    }
}

/// Header (type u8, stream id u32, length u32, big-endian) and payload.
fn encode(ty: u8, stream_id: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(9 + payload.len());
    out.put_u8(ty);
    out.put_u32(stream_id);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

/// Splits one carrier message into its frames (a message may hold several).
fn decode(msg: &Bytes) -> Vec<RawFrame> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < msg.len() {
        assert!(msg.len() - pos >= 9, "truncated header in {msg:?}");
        let h = &msg[pos..pos + 9];
        let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
        assert!(len <= 65_536, "payload of {len} bytes");
        assert!(pos + 9 + len <= msg.len(), "truncated payload");
        frames.push(RawFrame {
            ty: h[0],
            stream_id: u32::from_be_bytes([h[1], h[2], h[3], h[4]]),
            payload: msg.slice(pos + 9..pos + 9 + len),
        });
        pos += 9 + len;
    }
    frames
}

/// A protocol peer built from the document: send frames, collect what comes back.
struct Foreign {
    tx: Box<dyn CarrierTx>,
    rx: Box<dyn CarrierRx>,
    /// Frames received but not asked for yet.
    backlog: VecDeque<RawFrame>,
}

impl Foreign {
    /// Dials one carrier to the control endpoint with `subprotocol`.
    async fn dial(server: &Server, subprotocol: &str) -> Self {
        let carrier = raw_carrier(server, subprotocol, None).await;
        Foreign {
            tx: carrier.tx,
            rx: carrier.rx,
            backlog: VecDeque::new(),
        }
    }

    /// Dials the control endpoint with subprotocol v1, sends HELLO, returns HELLO_OK's JSON.
    async fn connect(server: &Server) -> (Self, Value) {
        let mut me = Self::dial(server, "hoody-tunnel.v1").await;
        me.send_json(
            HELLO,
            0,
            json!({
                "version": "hoody-tunnel.v1",
                "capabilities": [],
                "auth": {"kind": "bearer", "token": TOKEN},
            }),
        )
        .await;
        let ok = me.expect(|f| f.ty == HELLO_OK).await.json();
        (me, ok)
    }

    async fn send(&mut self, message: Bytes) {
        self.tx.send(message).await.expect("carrier send");
    }

    async fn send_frame(&mut self, ty: u8, stream_id: u32, payload: &[u8]) {
        self.send(encode(ty, stream_id, payload)).await;
    }

    async fn send_json(&mut self, ty: u8, stream_id: u32, value: Value) {
        self.send_frame(ty, stream_id, &serde_json::to_vec(&value).unwrap())
            .await;
    }

    /// Next frame from the carrier; `None` once the server closed it.
    async fn recv(&mut self) -> Option<RawFrame> {
        if let Some(f) = self.backlog.pop_front() {
            return Some(f);
        }
        loop {
            let msg = match within(10, self.rx.recv()).await {
                Ok(Some(msg)) => msg,
                Ok(None) | Err(_) => return None,
            };
            self.backlog.extend(decode(&msg));
            if let Some(f) = self.backlog.pop_front() {
                return Some(f);
            }
        }
    }

    /// The first frame matching `want`; the others stay queued for later calls. WINDOW frames
    /// are only credit for our sends, which stay far below the initial windows here.
    async fn expect(&mut self, want: impl Fn(&RawFrame) -> bool) -> RawFrame {
        if let Some(i) = self.backlog.iter().position(&want) {
            return self.backlog.remove(i).unwrap();
        }
        let mut skipped = VecDeque::new();
        loop {
            let Some(f) = self.recv().await else {
                panic!("carrier ended while waiting; received meanwhile: {skipped:?}")
            };
            if want(&f) {
                // Keep the order of what was skipped.
                skipped.extend(self.backlog.drain(..));
                self.backlog = skipped;
                return f;
            }
            if f.ty != WINDOW {
                skipped.push_back(f);
            }
        }
    }

    /// Sends BIND built by hand and returns BIND_OK's JSON.
    async fn bind(&mut self, bind: Value) -> Value {
        let reference = bind["clientBindRef"].clone();
        self.send_json(BIND, 0, bind).await;
        let answer = self.expect(|f| f.ty == BIND_OK || f.ty == BIND_ERR).await;
        let ok = answer.json();
        assert_eq!(answer.ty, BIND_OK, "BIND refused: {ok}");
        assert_eq!(ok["clientBindRef"], reference, "answer to our BIND: {ok}");
        assert!(ok["bindId"].is_u64(), "{ok}");
        ok
    }
}

async fn foreign_session(
    f: impl FnOnce(&mut underpass::server::ServerConfig),
) -> (Server, Foreign) {
    let server = server_with(f).await;
    let (client, ok) = Foreign::connect(&server).await;
    assert!(
        ok["sessionId"].as_str().is_some_and(|s| !s.is_empty()),
        "{ok}"
    );
    assert_eq!(ok["resumed"], false);
    assert_eq!(ok["resumedBinds"], json!([]));
    assert_eq!(ok["streamWindow"], 1 << 20);
    assert_eq!(ok["sessionWindow"], 16 << 20);
    (server, client)
}

/// Reads an HTTP/1.1 response to the end: status code and (de-chunked) body.
async fn http_get(port: u16, target: &str) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Probe: 1\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full head");
    let status = head[9..12].parse().unwrap();
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break out;
            }
            out.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
    } else {
        body.to_string()
    };
    (status, head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_expose_answered_by_hand_written_frames() {
    let (server, mut client) = foreign_session(|cfg| cfg.expose_ports = 43100..=43199).await;
    let ok = client
        .bind(json!({"clientBindRef": "a", "kind": "http", "mode": "expose", "containerPort": 0}))
        .await;
    let port = ok["containerPort"].as_u64().unwrap() as u16;
    assert!((43100..=43199).contains(&port), "{ok}");
    assert_eq!(ok["publicUrl"], format!("http://127.0.0.1:{port}"));
    let bind_id = ok["bindId"].clone();

    let visitor = tokio::spawn(http_get(port, "/hello?x=1"));
    let open = client.expect(|f| f.ty == STREAM_OPEN).await;
    let sid = open.stream_id;
    assert!(sid >= 2 && sid % 2 == 0, "server streams are even: {sid}");
    let req = open.json();
    assert_eq!(req["bindId"], bind_id);
    assert_eq!(req["kind"], "http");
    assert_eq!(req["method"], "GET");
    assert_eq!(req["target"], "/hello?x=1");
    assert_eq!(req["isUpgrade"], false, "{req}");
    let headers = req["headers"].as_array().expect("headers as pairs");
    let pair = |name: &str| {
        headers.iter().find_map(|h| {
            let h = h.as_array().expect("a [name, value] pair");
            assert_eq!(h.len(), 2);
            h[0].as_str()
                .unwrap()
                .eq_ignore_ascii_case(name)
                .then(|| h[1].as_str().unwrap().to_string())
        })
    };
    assert_eq!(pair("x-probe").as_deref(), Some("1"));
    // Hop-by-hop headers stay on the visitor's side.
    assert_eq!(pair("connection"), None);
    // No body: the request half ends at once.
    client.expect(|f| f.ty == EOF && f.stream_id == sid).await;

    client
        .send_json(
            STREAM_RESPONSE_HEAD,
            sid,
            json!({"status": 200, "headers": [["content-type", "text/plain"]], "final": true}),
        )
        .await;
    client.send_frame(DATA, sid, b"hi").await;
    client.send_frame(EOF, sid, &[]).await;
    let (status, head, body) = within(10, visitor).await.unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert_eq!(body, "hi");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_pull_echoed_by_hand_written_frames_with_eof_both_ways() {
    let (server, mut client) = foreign_session(|_| {}).await;
    let ok = client
        .bind(json!({"clientBindRef": "b", "kind": "tcp", "mode": "pull", "containerPort": 0}))
        .await;
    let port = ok["containerPort"].as_u64().unwrap() as u16;
    assert_ne!(port, 0, "{ok}");
    assert_eq!(ok["publicUrl"], Value::Null);
    let bind_id = ok["bindId"].clone();

    for round in 0..2u64 {
        // Enough bytes for several DATA frames, so credit goes back more than once.
        let sent = pattern(200_000, round);
        let expected = sent.clone();
        let connector = tokio::spawn(async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (mut r, mut w) = tcp.into_split();
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            back
        });
        let open = client.expect(|f| f.ty == STREAM_OPEN).await;
        let sid = open.stream_id;
        assert!(sid >= 2 && sid % 2 == 0, "server streams are even: {sid}");
        let req = open.json();
        assert_eq!(req["bindId"], bind_id);
        assert_eq!(req["kind"], "tcp");
        // Besides the protocol's fields only the marked underpass extensions, which name the
        // connection (other clients ignore unknown keys).
        let keys: Vec<&str> = req
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            ["bindId", "kind", "serverAddr", "visitorAddr"],
            "{req}"
        );
        let visitor: std::net::SocketAddr = req["visitorAddr"].as_str().unwrap().parse().unwrap();
        assert!(visitor.ip().is_loopback(), "{req}");
        // Echo every DATA back and return its credit, until the connector's EOF.
        let mut echoed = 0usize;
        loop {
            let f = client
                .expect(|f| f.stream_id == sid && [DATA, EOF, RESET].contains(&f.ty))
                .await;
            match f.ty {
                DATA => {
                    echoed += f.payload.len();
                    let n = (f.payload.len() as u32).to_be_bytes();
                    client.send_frame(DATA, sid, &f.payload).await;
                    if !f.payload.is_empty() {
                        client.send_frame(WINDOW, sid, &n).await;
                        client.send_frame(WINDOW, 0, &n).await;
                    }
                }
                EOF => break,
                _ => panic!("stream reset: {:?}", f.payload),
            }
        }
        assert_eq!(echoed, expected.len());
        // The connector still reads after its half-close; our EOF ends its read.
        client.send_frame(EOF, sid, &[]).await;
        let back = within(10, connector).await.unwrap();
        assert!(back == expected, "round {round}: {} bytes back", back.len());
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_gets_pong_and_unknown_extension_frames_are_skipped() {
    let (server, mut client) = foreign_session(|_| {}).await;
    let nonce = 0x0123_4567_89ab_cdef_u64.to_be_bytes();
    client.send_frame(PING, 0, &nonce).await;
    let pong = client.expect(|f| f.ty == PONG).await;
    assert_eq!(pong.stream_id, 0);
    assert_eq!(&pong.payload[..], &nonce);

    // An extension frame alone, then one sharing a message with a PING: both are skipped and
    // the PING behind it is still answered.
    client.send_frame(0x55, 0, b"{\"future\":true}").await;
    let mut message = BytesMut::new();
    message.extend_from_slice(&encode(0x7f, 9, b"whatever"));
    message.extend_from_slice(&encode(PING, 0, &42u64.to_be_bytes()));
    client.send(message.freeze()).await;
    let pong = client.expect(|f| f.ty == PONG).await;
    assert_eq!(&pong.payload[..], &42u64.to_be_bytes());

    // The session still binds.
    let ok = client
        .bind(json!({"clientBindRef": 7, "kind": "tcp", "mode": "pull", "containerPort": 0}))
        .await;
    assert_ne!(ok["containerPort"], 0);
    assert_eq!(server.sessions().len(), 1);
    assert!(client.backlog.iter().all(|f| f.ty != GOAWAY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_mandatory_frame_type_ends_the_session_with_protocol_goaway() {
    let (server, mut client) = foreign_session(|_| {}).await;
    // The session enters the server's table just after HELLO_OK is sent.
    wait_for_sessions(&server, 1).await;
    client.send_frame(0x11, 0, b"").await;
    // GOAWAY {code: 1 (PROTOCOL)}, then the carrier ends.
    let mut goaway = None;
    while let Some(f) = client.recv().await {
        if f.ty == GOAWAY {
            goaway = Some(f.json());
        }
    }
    let goaway = goaway.expect("a GOAWAY before the carrier ended");
    assert_eq!(goaway["code"], 1, "{goaway}");
    assert!(goaway["message"].is_string(), "{goaway}");
    wait_for_sessions(&server, 0).await;
}

async fn wait_for_sessions(server: &Server, n: usize) {
    within(5, async {
        while server.sessions().len() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

// Frames of the v2 handshake and of the carrier re-dial extension, as PROTOCOL.md lists them.
const JOIN: u8 = 0x09;
const JOIN_OK: u8 = 0x0A;
const TICKET_REQUEST: u8 = 0x41;
const TICKET: u8 = 0x42;

/// A v2 client written from PROTOCOL.md alone, like the hoody SDK: HELLO with
/// `maxConnections`, JOIN on each extra carrier, and nothing of the underpass extensions. After
/// losing carrier 1 it does not ask for a ticket, and the server neither sends one nor ends the
/// session: new streams go over carrier 0 and the binding keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_client_that_does_not_know_tickets_runs_on_after_losing_a_carrier() {
    const ADMIN: &str = "admin-token-foreign-v2-01";
    let server = server_with(|cfg| cfg.admin_token = Some(ADMIN.into())).await;
    let mut c0 = Foreign::dial(&server, "hoody-tunnel.v2").await;
    c0.send_json(
        HELLO,
        0,
        json!({
            "version": "hoody-tunnel.v2",
            "capabilities": ["multi-ws"],
            "auth": {"kind": "bearer", "token": TOKEN},
            "maxConnections": 2,
        }),
    )
    .await;
    let ok = c0.expect(|f| f.ty == HELLO_OK).await.json();
    assert_eq!(ok["connectionsGranted"], 2, "{ok}");
    let ticket = &ok["joinTickets"][0];
    let mut c1 = Foreign::dial(&server, "hoody-tunnel.v2").await;
    c1.send_json(
        JOIN,
        0,
        json!({"sessionId": ok["sessionId"], "index": ticket["index"], "nonce": ticket["nonce"]}),
    )
    .await;
    c1.expect(|f| f.ty == JOIN_OK).await;
    let bound = c0
        .bind(json!({"clientBindRef": "p", "kind": "tcp", "mode": "pull", "containerPort": 0}))
        .await;
    let port = bound["containerPort"].as_u64().unwrap() as u16;
    let carriers_up = |server: &Server| {
        server
            .sessions()
            .first()
            .map(|(_, s)| s.inspect(|st| st.carriers_up()))
    };
    within(10, async {
        while carriers_up(&server) != Some(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // The SDK's carrier 1 goes away (its connection just drops).
    drop(c1);
    within(10, async {
        while carriers_up(&server) != Some(1) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // A pull connection now arrives on carrier 0 and is served as before.
    let visitor = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(b"ping").await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut back = Vec::new();
        tcp.read_to_end(&mut back).await.unwrap();
        back
    });
    let open = c0.expect(|f| f.ty == STREAM_OPEN).await;
    let sid = open.stream_id;
    let data = c0.expect(|f| f.ty == DATA && f.stream_id == sid).await;
    assert_eq!(&data.payload[..], b"ping");
    c0.expect(|f| f.ty == EOF && f.stream_id == sid).await;
    c0.send_frame(DATA, sid, b"pong").await;
    c0.send_frame(EOF, sid, &[]).await;
    assert_eq!(within(10, visitor).await.unwrap(), b"pong");

    // PING is still answered, the session is still there, and the server never offered a
    // ticket on its own.
    c0.send_frame(PING, 0, &7u64.to_be_bytes()).await;
    c0.expect(|f| f.ty == PONG).await;
    assert_eq!(server.sessions().len(), 1);
    assert!(
        c0.backlog
            .iter()
            .all(|f| f.ty != TICKET && f.ty != TICKET_REQUEST),
        "{:?}",
        c0.backlog
    );
    let s = admin_sessions(server.local_addr(), ADMIN).await;
    assert_eq!(s[0]["carriers"], "1/2", "{s:?}");
    assert_eq!(s[0]["carrierLosses"], 1, "{s:?}");
    assert_eq!(s[0]["carrierRejoins"], 0, "{s:?}");
}
