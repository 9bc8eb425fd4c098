//! Graceful shutdown: readiness turns 503, new visitors get 503, a running stream finishes, then
//! the server stops well before its drain deadline.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use tokio::sync::Notify;
use underpass::client::{ClientOptions, ClientSession, HttpExpose};

async fn sse_app(go: Arc<Notify>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let go = go.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |_req: hyper::Request<hyper::body::Incoming>| {
                        let go = go.clone();
                        async move {
                            let stream = futures_util::stream::unfold(0, move |n| {
                                let go = go.clone();
                                async move {
                                    match n {
                                        0 => Some((
                                            Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                                                b"data: one\n\n",
                                            ))),
                                            1,
                                        )),
                                        1 => {
                                            go.notified().await;
                                            Some((
                                                Ok(Frame::data(Bytes::from_static(
                                                    b"data: two\n\n",
                                                ))),
                                                2,
                                            ))
                                        }
                                        _ => None,
                                    }
                                }
                            });
                            Ok::<_, Infallible>(hyper::Response::new(StreamBody::new(stream)))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    port
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> hyper::Response<hyper::body::Incoming> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .unwrap();
    within(10, send.send_request(req)).await.unwrap()
}

#[tokio::test]
async fn a_draining_server_finishes_running_streams_and_refuses_new_ones() {
    let server = server_with(|c| c.domain = Some("example.test".into())).await;
    let addr = server.local_addr();
    let go = Arc::new(Notify::new());
    let port = sse_app(go.clone()).await;
    let client = ClientSession::connect(&ClientOptions::new(server.control_url(), TOKEN))
        .await
        .unwrap();
    let _b = client
        .expose_http(port, &HttpExpose::route(Some("live".into())))
        .await
        .unwrap();

    let mut body = get(addr, "live.example.test", "/events").await.into_body();
    let one = within(10, body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(one, "data: one\n\n");

    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown_within(Duration::from_secs(20)));
    // Readiness flips to 503 while the stream is still running.
    within(10, async {
        loop {
            let r = get(addr, "any", "/__underpass__/health/ready").await;
            if r.status() == 503 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let refused = get(addr, "live.example.test", "/events").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let text = refused.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&text).contains("shutting down"));

    // The running stream is untouched and finishes normally.
    go.notify_one();
    let two = within(10, body.frame())
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(two, "data: two\n\n");
    assert!(
        within(10, body.frame()).await.is_none(),
        "the stream ends cleanly"
    );

    within(15, stopping).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped once streams were done"
    );
    within(5, client.closed()).await;
}
