//! Long soaks, ignored by default. Run with:
//! `cargo test --release --test soak -- --ignored --nocapture`
//!
//! A 1 GiB upload and a 1 GiB download through an HTTP expose, checking that the process's peak
//! resident memory grows by far less than the transfer (bodies stream, they are never buffered).

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

const GIB: u64 = 1 << 30;
const CHUNK: usize = 256 * 1024;

/// Peak resident set size of this process in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn gib_body() -> http_body_util::combinators::BoxBody<Bytes, std::io::Error> {
    let chunk = Bytes::from(vec![0x5a; CHUNK]);
    let stream = futures_util::stream::iter(
        (0..GIB / CHUNK as u64).map(move |_| Ok(Frame::data(chunk.clone()))),
    );
    BodyExt::boxed(StreamBody::new(stream))
}

/// App: `/up` counts the request body; `/down` streams 1 GiB.
async fn soak_app() -> u16 {
    app(|req: hyper::Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/down" {
            return hyper::Response::new(gib_body());
        }
        let mut body = req.into_body();
        let mut n = 0u64;
        while let Some(Ok(f)) = body.frame().await {
            n += f.data_ref().map_or(0, |d| d.len() as u64);
        }
        let text = Bytes::from(n.to_string());
        hyper::Response::new(BodyExt::boxed(
            http_body_util::Full::new(text).map_err(|never| match never {}),
        ))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: moves 2 GiB; run with --ignored, preferably in release"]
async fn one_gib_up_and_down_use_bounded_memory() {
    let server = server_with(|c| c.domain = Some("soak.test".into())).await;
    let addr = server.local_addr();
    let port = soak_app().await;
    let session = client(&server).await;
    let _b = session.expose_http(port, &named("big")).await.unwrap();
    let before = peak_rss_kib();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);

    let started = Instant::now();
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/up")
        .header("host", "big.soak.test")
        .header("content-length", GIB.to_string())
        .body(gib_body())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, Bytes::from(GIB.to_string()));
    let up = started.elapsed();

    let started = Instant::now();
    let req = hyper::Request::builder()
        .uri("/down")
        .header("host", "big.soak.test")
        .body(BodyExt::boxed(
            http_body_util::Empty::<Bytes>::new().map_err(|never| match never {}),
        ))
        .unwrap();
    let mut body = send.send_request(req).await.unwrap().into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        n += f.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(n, GIB);
    let down = started.elapsed();
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    println!(
        "1 GiB up in {:.1}s ({:.0} MiB/s), down in {:.1}s ({:.0} MiB/s); peak RSS grew {grown_mib} MiB",
        up.as_secs_f64(),
        1024.0 / up.as_secs_f64(),
        down.as_secs_f64(),
        1024.0 / down.as_secs_f64()
    );
    assert!(
        grown_mib < 256,
        "peak RSS grew {grown_mib} MiB for a 1 GiB transfer"
    );
}
