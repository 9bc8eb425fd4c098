//! The same end-to-end cases over every carrier transport: WebSocket (4 striped carriers) and
//! QUIC (4 carriers as streams of one connection). Each case is written once and instantiated per
//! transport by `for_each_transport!`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use underpass::client::{ClientOptions, ClientSession};
use underpass::server::Server;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Ws,
    #[cfg(feature = "quic")]
    Quic,
}

struct Harness {
    server: Server,
    opts: ClientOptions,
}

async fn harness(kind: Kind) -> Harness {
    #[cfg(feature = "quic")]
    let cert =
        underpass_transports::quic::QuicServerCert::self_signed(&["localhost".into()]).unwrap();
    #[cfg(feature = "quic")]
    let pin = cert.fingerprint_sha256();
    let server = server_with(|c| {
        c.domain = Some(DOMAIN.into());
        #[cfg(feature = "quic")]
        if matches!(kind, Kind::Quic) {
            c.quic = Some(underpass::server::QuicListen {
                addr: "127.0.0.1:0".parse().unwrap(),
                cert: cert.clone(),
            });
        }
    })
    .await;
    let opts = match kind {
        Kind::Ws => ClientOptions::new(server.control_url(), TOKEN),
        #[cfg(feature = "quic")]
        Kind::Quic => {
            use underpass_transports::quic::QuicTransport;
            use underpass_transports::tls::ServerTrust;
            let url = format!("quic://{}", server.quic_addr().unwrap());
            let transport = QuicTransport::new(ServerTrust::PinnedSha256(pin)).unwrap();
            ClientOptions::new(url, TOKEN).transport(Arc::new(transport))
        }
    };
    Harness { server, opts }
}

impl Harness {
    async fn client(&self) -> ClientSession {
        let s = within(10, ClientSession::connect(&self.opts))
            .await
            .unwrap();
        let carriers = s.mux().inspect(|st| st.carrier_count());
        assert_eq!(carriers, 4, "every granted carrier joined");
        s
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

macro_rules! for_each_transport {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn ws() {
                super::$case(super::Kind::Ws).await
            }
            #[cfg(feature = "quic")]
            #[tokio::test]
            async fn quic() {
                super::$case(super::Kind::Quic).await
            }
        }
    };
}

async fn http_get_and_post(kind: Kind) {
    let h = harness(kind).await;
    let port = app(|req: hyper::Request<Incoming>| async move {
        let head = format!("{} {}", req.method(), req.uri());
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(Full::new(Bytes::from(format!("{head} {}", body.len()))))
    })
    .await;
    let client = h.client().await;
    let _b = client.expose_http(port, &named("app")).await.unwrap();
    let r = get(h.addr(), "app.example.test", "/a?x=1").await;
    assert_eq!(r.body, "GET /a?x=1 0");
    let payload = Bytes::from(pattern(300_000, 1));
    let r = request(
        h.addr(),
        Method::POST,
        "app.example.test",
        "/b",
        &[],
        payload,
    )
    .await;
    assert_eq!(r.body, "POST /b 300000");
}
for_each_transport!(http_get_and_post);

async fn sse_is_not_buffered(kind: Kind) {
    let h = harness(kind).await;
    let go = Arc::new(Notify::new());
    let app_go = go.clone();
    let port = app(move |_req| {
        let go = app_go.clone();
        async move {
            let mut r = Response::new(two_events(go));
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
    })
    .await;
    let client = h.client().await;
    let _b = client.expose_http(port, &named("sse")).await.unwrap();
    let mut body = get_live(h.addr(), "sse.example.test", "/events")
        .await
        .into_body();
    let first = next_chunk(&mut body).await;
    assert_eq!(
        first, "data: one\n\n",
        "event one arrives before event two exists"
    );
    go.notify_one();
    let second = next_chunk(&mut body).await;
    assert_eq!(second, "data: two\n\n");
}
for_each_transport!(sse_is_not_buffered);

async fn websocket_upgrade(kind: Kind) {
    let h = harness(kind).await;
    let port = tungstenite_echo_app().await;
    let client = h.client().await;
    let _b = client.expose_http(port, &named("ws")).await.unwrap();
    let (mut ws, _) = ws_handshake(h.addr(), "ws.example.test", "/echo")
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(
        within(10, ws.next()).await.unwrap().unwrap(),
        Message::text("hello")
    );
    let blob = Bytes::from(pattern(200_000, 3));
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(
        within(10, ws.next()).await.unwrap().unwrap(),
        Message::binary(blob)
    );
}
for_each_transport!(websocket_upgrade);

async fn tcp_pull(kind: Kind) {
    let h = harness(kind).await;
    let echo = echo_server().await;
    let client = h.client().await;
    let b = client.pull(echo, 0).await.unwrap();
    let at = SocketAddr::from(([127, 0, 0, 1], b.container_port()));
    let data = pattern(1 << 20, 4);
    assert!(within(30, tcp_roundtrip(at, &data)).await == data);
}
for_each_transport!(tcp_pull);

async fn tcp_expose(kind: Kind) {
    let h = harness(kind).await;
    let echo = echo_server().await;
    let client = h.client().await;
    let b = client.expose_tcp(echo.port(), 0).await.unwrap();
    let at = SocketAddr::from(([127, 0, 0, 1], b.container_port()));
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            tokio::spawn(async move {
                let data = pattern(64 * 1024 + i as usize, i);
                assert!(tcp_roundtrip(at, &data).await == data);
            })
        })
        .collect();
    for t in tasks {
        within(30, t).await.unwrap();
    }
}
for_each_transport!(tcp_expose);

#[cfg(feature = "quic")]
#[tokio::test]
async fn quic_with_a_wrong_fingerprint_is_refused_clearly() {
    use underpass_transports::quic::QuicTransport;
    use underpass_transports::tls::ServerTrust;
    let h = harness(Kind::Quic).await;
    let url = format!("quic://{}", h.server.quic_addr().unwrap());
    let transport = QuicTransport::new(ServerTrust::PinnedSha256([7; 32])).unwrap();
    let opts = ClientOptions::new(url, TOKEN).transport(Arc::new(transport));
    let err = within(20, ClientSession::connect(&opts)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("fingerprint did not match"), "{text}");
    assert!(h.server.sessions().is_empty());
}
