//! HTTP through a route end to end: methods, targets and bodies both ways, the Host and
//! forwarded headers the app sees, keep-alive on one visitor connection, concurrent requests and
//! large bodies (with and without Content-Length).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{header, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Barrier};

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_post_reach_the_app_with_host_and_forwarded_headers() {
    within(20, async {
        let demo = demo(echo_app("app").await).await;
        let addr = demo.addr();
        assert_eq!(demo.binding.subdomain(), Some("demo"));
        assert_eq!(demo.binding.container_port(), 0);

        let r = get(addr, DEMO_HOST, "/path/to?x=1&y=two").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["method"], "GET");
        assert_eq!(v["target"], "/path/to?x=1&y=two");
        assert_eq!(v["body"], "");
        assert_eq!(seen_one(&v, "host").as_deref(), Some(DEMO_HOST));
        assert_eq!(
            seen_one(&v, "x-forwarded-for").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(seen_one(&v, "x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(seen_one(&v, "x-forwarded-host").as_deref(), Some(DEMO_HOST));
        // A GET without a body stays without one on the last hop.
        assert!(seen(&v, "transfer-encoding").is_empty(), "{v}");

        // HEAD: the app's Content-Length comes back, no body.
        let r = request(addr, Method::HEAD, DEMO_HOST, "/path/to?x=1&y=two", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.body.is_empty());
        assert!(r.headers.contains_key(header::CONTENT_LENGTH));

        // Host case and port are ignored for routing, and the Host reaches the app unchanged.
        let r = request(
            addr,
            Method::POST,
            "Demo.Example.Test:8443",
            "/submit?q=a%20b",
            &[("content-type", "text/plain"), ("x-custom", "kept")],
            "hello body",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["target"], "/submit?q=a%20b");
        assert_eq!(v["body"], "hello body");
        assert_eq!(
            seen_one(&v, "host").as_deref(),
            Some("Demo.Example.Test:8443")
        );
        assert_eq!(seen_one(&v, "x-custom").as_deref(), Some("kept"));
        assert_eq!(seen_one(&v, "content-type").as_deref(), Some("text/plain"));
        assert_eq!(
            seen_one(&v, "x-forwarded-host").as_deref(),
            Some("Demo.Example.Test:8443")
        );

        // Other methods and an empty-bodied PUT/DELETE.
        for m in [Method::PUT, Method::DELETE, Method::PATCH] {
            let r = request(addr, m.clone(), DEMO_HOST, "/m", &[], "x").await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.json()["method"], m.as_str());
        }
        drop(demo.binding);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_visitor_connection_carries_many_requests() {
    within(20, async {
        let (port, release) = full_app("app").await;
        let demo = demo(port).await;
        let tcp = TcpStream::connect(demo.addr()).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        release.notify_one();
        for i in 0..10 {
            sender.ready().await.expect("connection kept alive");
            let (target, body) = if i % 3 == 2 {
                ("/sse".to_string(), Bytes::new())
            } else {
                (format!("/{i}"), Bytes::from(format!("body {i}")))
            };
            let req = build(
                Method::POST,
                DEMO_HOST,
                &target,
                &[],
                full_body(body.clone()),
            );
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let got = resp.into_body().collect().await.unwrap().to_bytes();
            if target == "/sse" {
                assert_eq!(got, format!("{EVENT_ONE}{EVENT_TWO}"));
                release.notify_one();
            } else {
                let v: Value = serde_json::from_slice(&got).unwrap();
                assert_eq!(v["target"], target);
                assert_eq!(v["body"].as_str(), std::str::from_utf8(&body).ok());
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_are_isolated() {
    within(30, async {
        // The app answers only once all 20 requests are inside it, so they really are
        // concurrent (a tunnel that serialised them would time out here).
        let barrier = Arc::new(Barrier::new(20));
        let b = barrier.clone();
        let port = app(move |req| {
            let b = b.clone();
            async move {
                let v = describe("app", req).await;
                b.wait().await;
                json_response(v)
            }
        })
        .await;
        let demo = demo(port).await;
        let addr = demo.addr();

        let tasks: Vec<_> = (0..20)
            .map(|i| {
                tokio::spawn(async move {
                    let body = format!("body-{i}-").repeat(i + 1);
                    let r = request(
                        addr,
                        Method::POST,
                        DEMO_HOST,
                        &format!("/req/{i}?n={i}"),
                        &[("x-request", &i.to_string())],
                        body.clone(),
                    )
                    .await;
                    (i, body, r)
                })
            })
            .collect();
        for t in tasks {
            let (i, body, r) = t.await.unwrap();
            assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
            let v = r.json();
            assert_eq!(v["target"], format!("/req/{i}?n={i}"));
            assert_eq!(v["body"], body);
            assert_eq!(seen_one(&v, "x-request"), Some(i.to_string()));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_and_chunked_download_are_byte_exact() {
    within(30, async {
        const CHUNK: usize = 64 * 1024;
        let download = Bytes::from(pattern(16 * CHUNK, 42));
        let d = download.clone();
        let port = app(move |req| {
            let download = d.clone();
            async move {
                if req.uri().path() == "/download" {
                    let (tx, rx) = mpsc::channel(2);
                    tokio::spawn(async move {
                        for i in 0..16 {
                            let chunk = download.slice(i * CHUNK..(i + 1) * CHUNK);
                            if tx.send(chunk).await.is_err() {
                                return;
                            }
                        }
                    });
                    return Response::new(ChanBody(rx).boxed());
                }
                let body = req.into_body().collect().await.unwrap().to_bytes();
                json_response(json!({"len": body.len(), "fnv": fnv1a(&body).to_string()}))
            }
        })
        .await;
        let demo = demo(port).await;
        let addr = demo.addr();

        // 1 MiB with Content-Length.
        let upload = pattern(1024 * 1024, 9);
        let r = request(
            addr,
            Method::POST,
            DEMO_HOST,
            "/upload",
            &[],
            upload.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["len"], upload.len());
        assert_eq!(v["fnv"], fnv1a(&upload).to_string());

        // 1 MiB again, chunked (no Content-Length), 16 x 64 KiB.
        let upload = pattern(1024 * 1024, 10);
        let (tx, rx) = mpsc::channel(2);
        let chunks = Bytes::from(upload.clone());
        tokio::spawn(async move {
            for i in 0..16 {
                let _ = tx.send(chunks.slice(i * CHUNK..(i + 1) * CHUNK)).await;
            }
        });
        let r = send(
            addr,
            build(Method::PUT, DEMO_HOST, "/upload", &[], ChanBody(rx).boxed()),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["len"], upload.len());
        assert_eq!(v["fnv"], fnv1a(&upload).to_string());

        // 16 x 64 KiB streamed by the app.
        let r = get(addr, DEMO_HOST, "/download").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.len(), download.len());
        assert!(r.body == download, "download differs");
    })
    .await;
}
