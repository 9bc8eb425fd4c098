//! Any bytes from a peer: proptest feeds generated messages (arbitrary bytes, and frames with an
//! honest header around arbitrary or JSON-shaped payloads) to the server's handshake and to a live
//! session, over WebSocket and QUIC, and to a client from a fake server. After every case:
//! nothing panicked anywhere in the process, the memory the process holds came back to where it
//! was (the hostile connection is gone, so everything it caused must be freed) and never grew by
//! more than the documented windows allow, and a well-behaved session on the same server still
//! answers. Case counts are modest so the suite stays fast; raise `HOSTILE_CASES` to soak.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use underpass::client::{Binding, ClientOptions, ClientSession};
use underpass::proto::{decode_message, encode_frame, Frame, HelloOk};
use underpass::server::Server;
use underpass_transports::ws::WsTransport;
use underpass_transports::{Carrier, Endpoint, Transport};

/// Bytes allocated and not yet freed by the whole process, and the most there ever were.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Panics of the server's and client's tasks (which would otherwise end only that task); the
/// test threads' own failed assertions are not counted.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// One test at a time: they share the memory counters and the panic count.
fn exclusive() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_none_or(|n| n.starts_with("tokio"))
            {
                PANICS.fetch_add(1, Ordering::Relaxed);
            }
            default(info);
        }));
    });
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Memory a case may leave behind once its connection is gone (caches that fill once, timers).
const LEFT_BEHIND: usize = 8 << 20;
/// Growth of the process's memory at any moment: one session's windows both ways (16 MiB each)
/// and QUIC's, with room to spare. A peer that made the process allocate by a length it claims
/// would blow far past it.
const PEAK_GROWTH: usize = 160 << 20;

fn cases(default: u32) -> u32 {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        // A failing case costs seconds (the memory check waits); a few shrinks are enough.
        max_shrink_iters: 8,
        ..Config::default()
    })
}

/// Frame types of PROTOCOL.md, and anything else.
fn frame_type() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(vec![
            0x01u8, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x10, 0x11,
            0x12, 0x13, 0x14, 0x15, 0x16, 0x20, 0x21, 0x30, 0x40, 0x41, 0x42
        ]),
        any::<u8>(),
    ]
}

/// Arbitrary bytes, or JSON objects with the protocol's field names and odd values.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "version",
        "auth",
        "token",
        "kind",
        "mode",
        "bindId",
        "sessionId",
        "index",
        "nonce",
        "port",
        "containerPort",
        "host",
        "subdomain",
        "status",
        "headers",
        "window",
        "code",
        "message",
        "clientBindRef",
        "maxConnections",
        "resume",
        "increment",
    ]);
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[a-z0-9.*]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("null".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]".to_string()),
        Just("1e999".to_string()),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec((key, value), 0..5).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            format!("{{{}}}", body.join(",")).into_bytes()
        }),
    ]
}

/// One frame with an honest header (type, stream id, length) around `payload`.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    (frame_type(), 0u32..6, payload()).prop_map(|(ty, sid, payload)| {
        let mut out = vec![ty];
        out.extend_from_slice(&sid.to_be_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    })
}

/// What a hostile peer sends: a few carrier messages, each some frames or arbitrary bytes.
fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let message = prop_oneof![
        3 => prop::collection::vec(frame(), 1..4).prop_map(|f| f.concat()),
        1 => prop::collection::vec(any::<u8>(), 0..600),
    ];
    prop::collection::vec(message, 1..6)
}

/// A server with WebSocket and QUIC carriers and a well-behaved client whose route `good`
/// answers 200.
struct Fixture {
    plain: Option<Server>,
    #[cfg(feature = "quic")]
    quic: Option<RawQuic>,
    _good: Option<(ClientSession, Binding)>,
}

async fn fixture(with_quic: bool) -> Fixture {
    #[cfg(feature = "quic")]
    let (plain, quic) = if with_quic {
        let quic = RawQuic::start(|c| c.domain = Some(DOMAIN.into())).await;
        (None, Some(quic))
    } else {
        (Some(domain_server().await), None)
    };
    #[cfg(not(feature = "quic"))]
    let plain = {
        assert!(!with_quic);
        Some(domain_server().await)
    };
    let mut fx = Fixture {
        plain,
        #[cfg(feature = "quic")]
        quic,
        _good: None,
    };
    let good = client(fx.server()).await;
    let route = good
        .expose_http(echo_app("good").await, &named("good"))
        .await
        .unwrap();
    fx._good = Some((good, route));
    fx
}

impl Fixture {
    fn server(&self) -> &Server {
        #[cfg(feature = "quic")]
        if let Some(quic) = &self.quic {
            return &quic.server;
        }
        self.plain.as_ref().unwrap()
    }

    async fn still_well(&self, baseline: usize) {
        let status = get(self.server().local_addr(), "good.example.test", "/")
            .await
            .status;
        assert_eq!(status, 200, "the well-behaved session still answers");
        assert_eq!(PANICS.load(Ordering::Relaxed), 0, "something panicked");
        settled(baseline).await;
    }
}

/// Waits until the memory held is back within [`LEFT_BEHIND`] of `baseline`.
async fn settled(baseline: usize) {
    for _ in 0..200 {
        if LIVE.load(Ordering::Relaxed) <= baseline + LEFT_BEHIND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = LIVE.load(Ordering::Relaxed);
    assert!(
        live <= baseline + LEFT_BEHIND,
        "{live} bytes held after the hostile peer left, {baseline} before"
    );
    let peak = PEAK.load(Ordering::Relaxed);
    assert!(
        peak <= baseline + PEAK_GROWTH,
        "the process held {peak} bytes at its peak, {baseline} before"
    );
}

async fn ws_carrier(server: &Server, subprotocol: &str) -> Carrier {
    let endpoint = Endpoint {
        url: server.control_url(),
        subprotocol: subprotocol.into(),
        bearer: None,
    };
    within(10, WsTransport::new().connect(&endpoint))
        .await
        .unwrap()
}

/// Sends every message, reading whatever comes back meanwhile, then leaves.
async fn ws_send_all(carrier: &mut Carrier, messages: Vec<Vec<u8>>) {
    for m in messages {
        if carrier.tx.send(Bytes::from(m)).await.is_err() {
            break;
        }
    }
    // Whatever the server makes of it (answers, GOAWAY, a close), read it for a moment.
    let _ = tokio::time::timeout(Duration::from_millis(100), async {
        while let Ok(Some(_)) = carrier.rx.recv().await {}
    })
    .await;
}

fn run_ws(live_session: bool, default_cases: u32) {
    let _one = exclusive();
    let rt = Runtime::new().unwrap();
    let fx = rt.block_on(fixture(false));
    let baseline = rt.block_on(async {
        fx.still_well(LIVE.load(Ordering::Relaxed) + LEFT_BEHIND)
            .await;
        LIVE.load(Ordering::Relaxed)
    });
    PEAK.store(0, Ordering::Relaxed);
    runner(cases(default_cases))
        .run(&messages(), |messages| {
            rt.block_on(async {
                let mut carrier = if live_session {
                    RawPeer::session(fx.server()).await.0.carrier
                } else {
                    ws_carrier(fx.server(), "hoody-tunnel.v2").await
                };
                ws_send_all(&mut carrier, messages).await;
                drop(carrier);
                fx.still_well(baseline).await;
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_bytes_as_the_first_websocket_messages() {
    run_ws(false, 24);
}

#[test]
fn any_bytes_in_a_live_websocket_session() {
    run_ws(true, 24);
}

#[cfg(feature = "quic")]
fn run_quic(live_session: bool, default_cases: u32) {
    let _one = exclusive();
    let rt = Runtime::new().unwrap();
    let fx = rt.block_on(fixture(true));
    let quic = fx.quic.as_ref().unwrap();
    let baseline = rt.block_on(async {
        fx.still_well(LIVE.load(Ordering::Relaxed) + LEFT_BEHIND)
            .await;
        LIVE.load(Ordering::Relaxed)
    });
    PEAK.store(0, Ordering::Relaxed);
    runner(cases(default_cases))
        .run(&messages(), |messages| {
            rt.block_on(async {
                let conn = quic.connect().await.unwrap();
                let (mut send, mut recv) = if live_session {
                    quic_session(&conn).await
                } else {
                    within(10, conn.open_bi()).await.unwrap()
                };
                for m in messages {
                    if send.write_all(&m).await.is_err() {
                        break;
                    }
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), async {
                    while let Ok(Some(_)) = recv.read_chunk(usize::MAX, true).await {}
                })
                .await;
                conn.close(0u32.into(), b"done");
                drop((send, recv, conn));
                fx.still_well(baseline).await;
            });
            Ok(())
        })
        .unwrap();
}

#[cfg(feature = "quic")]
#[test]
fn any_bytes_as_the_first_quic_frames() {
    run_quic(false, 12);
}

#[cfg(feature = "quic")]
#[test]
fn any_bytes_in_a_live_quic_session() {
    run_quic(true, 12);
}

/// A fake WebSocket server: answers the first HELLO with a valid HELLO_OK, then sends each of
/// `messages` as a binary message.
async fn fake_ws_server(messages: Vec<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        #[allow(clippy::result_large_err)]
        let pick =
            |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
             mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                if let Some(p) = req.headers().get("sec-websocket-protocol") {
                    let first = p.to_str().unwrap_or("").split(',').next().unwrap_or("");
                    resp.headers_mut()
                        .insert("sec-websocket-protocol", first.trim().parse().unwrap());
                }
                Ok(resp)
            };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, pick).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Binary(data) = msg else { continue };
            if let Ok(frames) = decode_message(&data) {
                if frames.iter().any(|f| matches!(f, Frame::Hello(_))) {
                    break;
                }
            }
        }
        if ws.send(Message::binary(hello_ok())).await.is_err() {
            return;
        }
        for m in messages {
            if ws.send(Message::binary(m)).await.is_err() {
                return;
            }
        }
        // Read what the client answers for a moment, then leave.
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    });
    addr
}

/// The HELLO_OK a fake server answers with: valid, one carrier.
fn hello_ok() -> Bytes {
    let ok = Frame::HelloOk(HelloOk {
        session_id: "s_fake".into(),
        resumed: false,
        resumed_binds: Vec::new(),
        connections_granted: Some(1),
        join_tickets: Some(Vec::new()),
        stream_window: 1 << 20,
        session_window: 16 << 20,
        server_version: None,
        domain: None,
        max_streams: None,
    });
    let mut out = BytesMut::new();
    encode_frame(&ok, &mut out).unwrap();
    out.freeze()
}

/// Runs cases of a real client against a fake server that `start` makes from the messages: the
/// client connects, takes whatever comes, and ends or carries on without a panic or a leak.
fn run_client<S, F>(default_cases: u32, start: S)
where
    S: Fn(Vec<Vec<u8>>) -> F,
    F: std::future::Future<Output = ClientOptions>,
{
    let _one = exclusive();
    let rt = Runtime::new().unwrap();
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    runner(cases(default_cases))
        .run(&messages(), |messages| {
            rt.block_on(async {
                let opts = start(messages).await;
                let client = within(20, ClientSession::connect(&opts)).await.unwrap();
                // The session ends (GOAWAY, a protocol error, the server leaving) or carries on.
                let _ = tokio::time::timeout(Duration::from_millis(300), client.closed()).await;
                client.close();
                drop(client);
                assert_eq!(PANICS.load(Ordering::Relaxed), 0, "something panicked");
                settled(baseline).await;
            });
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_websocket_client_given_any_bytes_by_its_server() {
    run_client(24, |messages| async move {
        let addr = fake_ws_server(messages).await;
        ClientOptions::new(format!("ws://{addr}"), TOKEN).connections(1)
    });
}

/// A fake QUIC server: answers the first HELLO with a valid HELLO_OK, then sends `messages` as
/// they are on the carrier's byte stream.
#[cfg(feature = "quic")]
#[test]
fn a_quic_client_given_any_bytes_by_its_server() {
    use std::sync::Arc;
    use underpass_transports::quic::{QuicAcceptor, QuicServerCert, QuicTransport};
    use underpass_transports::tls::ServerTrust;
    run_client(12, |messages| async move {
        let cert = QuicServerCert::self_signed(&["localhost".into()]).unwrap();
        let pin = cert.fingerprint_sha256();
        let mut acceptor = QuicAcceptor::bind("127.0.0.1:0".parse().unwrap(), cert).unwrap();
        let addr = acceptor.local_addr();
        tokio::spawn(async move {
            let Some(mut carrier) = acceptor.accept().await else {
                return;
            };
            if !matches!(carrier.rx.recv().await, Ok(Some(_))) {
                return;
            }
            let _ = carrier.tx.send(hello_ok()).await;
            for m in messages {
                if carrier.tx.send(Bytes::from(m)).await.is_err() {
                    break;
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(300), async {
                while let Ok(Some(_)) = carrier.rx.recv().await {}
            })
            .await;
            drop(acceptor);
        });
        let transport = QuicTransport::new(ServerTrust::PinnedSha256(pin)).unwrap();
        ClientOptions::new(format!("quic://{addr}"), TOKEN)
            .connections(1)
            .transport(Arc::new(transport))
    });
}
