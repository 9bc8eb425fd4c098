//! The same end-to-end cases over every carrier transport: WebSocket (4 striped carriers) and
//! QUIC (4 carriers as streams of one connection). Each case is written once and instantiated per
//! transport by `for_each_transport!`.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use underpass::client::{ClientOptions, ClientSession, HttpExpose};
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
        c.domain = Some("example.test".into());
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
            use underpass_transports::quic::{QuicTransport, QuicTrust};
            let url = format!("quic://{}", server.quic_addr().unwrap());
            let transport = QuicTransport::new(QuicTrust::PinnedSha256(pin)).unwrap();
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

type AppBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// Starts a local HTTP app; `f` answers each request.
async fn app<F, Fut>(f: F) -> u16
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<AppBody>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let f = f.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let f = f.clone();
                    async move { Ok::<_, Infallible>(f(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

fn text(s: String) -> AppBody {
    BodyExt::boxed(Full::new(Bytes::from(s)).map_err(|never| match never {}))
}

async fn send(addr: SocketAddr, req: hyper::Request<Full<Bytes>>) -> hyper::Response<Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    within(10, s.send_request(req)).await.unwrap()
}

async fn http_get_and_post(kind: Kind) {
    let h = harness(kind).await;
    let port = app(|req: hyper::Request<Incoming>| async move {
        let head = format!("{} {}", req.method(), req.uri());
        let body = req.into_body().collect().await.unwrap().to_bytes();
        hyper::Response::new(text(format!("{head} {}", body.len())))
    })
    .await;
    let client = h.client().await;
    let _b = client
        .expose_http(port, &HttpExpose::route(Some("app".into())))
        .await
        .unwrap();
    let get = hyper::Request::get("/a?x=1")
        .header("host", "app.example.test")
        .body(Full::default())
        .unwrap();
    let body = send(h.addr(), get)
        .await
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "GET /a?x=1 0");
    let payload = Bytes::from(pattern(300_000, 1));
    let post = hyper::Request::post("/b")
        .header("host", "app.example.test")
        .body(Full::new(payload))
        .unwrap();
    let body = send(h.addr(), post)
        .await
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "POST /b 300000");
}
for_each_transport!(http_get_and_post);

async fn sse_is_not_buffered(kind: Kind) {
    let h = harness(kind).await;
    let go = Arc::new(Notify::new());
    let app_go = go.clone();
    let port = app(move |_req| {
        let go = app_go.clone();
        async move {
            let stream = futures_util::stream::unfold(0, move |n| {
                let go = go.clone();
                async move {
                    match n {
                        0 => Some((Ok(Frame::data(Bytes::from_static(b"data: one\n\n"))), 1)),
                        1 => {
                            go.notified().await;
                            Some((Ok(Frame::data(Bytes::from_static(b"data: two\n\n"))), 2))
                        }
                        _ => None,
                    }
                }
            });
            let mut r = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
    })
    .await;
    let client = h.client().await;
    let _b = client
        .expose_http(port, &HttpExpose::route(Some("sse".into())))
        .await
        .unwrap();
    let req = hyper::Request::get("/events")
        .header("host", "sse.example.test")
        .body(Full::default())
        .unwrap();
    let mut body = send(h.addr(), req).await.into_body();
    let first = within(10, body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(
        first, "data: one\n\n",
        "event one arrives before event two exists"
    );
    go.notify_one();
    let second = within(10, body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(second, "data: two\n\n");
}
for_each_transport!(sse_is_not_buffered);

async fn websocket_upgrade(kind: Kind) {
    let h = harness(kind).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let client = h.client().await;
    let _b = client
        .expose_http(port, &HttpExpose::route(Some("ws".into())))
        .await
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/echo", h.addr()),
    )
    .unwrap();
    req.headers_mut()
        .insert("host", "ws.example.test".parse().unwrap());
    let (mut ws, _) = within(10, tokio_tungstenite::client_async(req, tcp))
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
    use underpass_transports::quic::{QuicTransport, QuicTrust};
    let h = harness(Kind::Quic).await;
    let url = format!("quic://{}", h.server.quic_addr().unwrap());
    let transport = QuicTransport::new(QuicTrust::PinnedSha256([7; 32])).unwrap();
    let opts = ClientOptions::new(url, TOKEN).transport(Arc::new(transport));
    let err = within(20, ClientSession::connect(&opts)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("fingerprint did not match"), "{text}");
    assert!(h.server.sessions().is_empty());
}
