//! Interim (1xx) responses of a local app travel through the tunnel as `final: false` heads
//! ahead of the final head (PROTOCOL.md, Streams).

mod common;

use common::*;
use std::sync::Arc;

use http::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use underpass::proto::{BindKind, StreamOpen};
use underpass::server::Server;

const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n";

/// A raw keep-alive HTTP/1.1 app: for each request it writes `interim`, then, once `gate` hands
/// out a permit (at once without a gate), the final `200 ok`.
async fn interim_app(interim: &'static [u8], gate: Option<Arc<Semaphore>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let gate = gate.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                loop {
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    got.drain(..end);
                    if tcp.write_all(interim).await.is_err() {
                        return;
                    }
                    if let Some(gate) = &gate {
                        gate.acquire().await.unwrap().forget();
                    }
                    let last = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if tcp.write_all(last).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn early_hints_app() -> u16 {
    interim_app(EARLY_HINTS, None).await
}

/// A server with route `hints` to an [`interim_app`] that sends `interim`, visited once with
/// the raw `request`; what came back.
async fn visit_interim_app(interim: &'static [u8], request: &[u8]) -> String {
    let server = domain_server().await;
    let client = client(&server).await;
    let _binding = client
        .expose_http(interim_app(interim, None).await, &named("hints"))
        .await
        .unwrap();
    raw_visit(&server, request).await
}

/// Sends a raw request to the server's public port and reads until the server closes.
async fn raw_visit(server: &Server, request: &[u8]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    tcp.write_all(request).await.unwrap();
    let mut got = Vec::new();
    within(10, tcp.read_to_end(&mut got)).await.unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_103_from_the_app_reaches_the_server_before_the_final_head() {
    let server = domain_server().await;
    let client = client(&server).await;
    let binding = client
        .expose_http(early_hints_app().await, &named("hints"))
        .await
        .unwrap();
    let server_side = server.sessions().pop().unwrap().1;
    let open = StreamOpen {
        bind_id: binding.bind_id(),
        kind: BindKind::Http,
        method: Some("GET".into()),
        target: Some("/".into()),
        headers: vec![("host".into(), "hints.example.test".into())],
        is_upgrade: false,
        visitor_addr: None,
        server_addr: None,
    };
    let mut stream = server_side.open(&open).unwrap();
    stream.finish().unwrap();
    let first = within(10, stream.recv_head()).await.unwrap();
    assert_eq!((first.status, first.is_final), (103, false));
    assert!(first
        .headers
        .iter()
        .any(|(k, v)| k == "link" && v.contains("preload")));
    let last = within(10, stream.recv_head()).await.unwrap();
    assert_eq!((last.status, last.is_final), (200, true));
    assert_eq!(
        &within(10, stream.recv_chunk()).await.unwrap().unwrap()[..],
        b"ok"
    );
}

#[tokio::test]
async fn a_visitor_gets_early_hints_before_the_app_has_decided_its_answer() {
    let server = domain_server().await;
    let client = client(&server).await;
    let gate = Arc::new(Semaphore::new(0));
    let port = interim_app(EARLY_HINTS, Some(gate.clone())).await;
    let _binding = client.expose_http(port, &named("hints")).await.unwrap();

    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    // Two requests on one keep-alive connection: each gets its own 103, then its 200.
    for round in 0..2 {
        let mut req = build(Method::GET, "hints.example.test", "/", &[], empty_body());
        let (hints_tx, mut hints_rx) = mpsc::unbounded_channel();
        hyper::ext::on_informational(&mut req, move |res| {
            let _ = hints_tx.send((res.status(), res.headers().clone()));
        });
        let answer = sender.send_request(req);
        let answer = tokio::spawn(answer);
        // The app holds its final answer until the visitor has seen the hint.
        let (status, headers) = within(10, hints_rx.recv()).await.unwrap();
        assert_eq!(status, StatusCode::EARLY_HINTS, "round {round}");
        assert_eq!(headers["link"], "</style.css>; rel=preload");
        gate.add_permits(1);
        let resp = within(10, answer).await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"ok");
        assert!(hints_rx.try_recv().is_err(), "one hint per request");
    }
}

#[tokio::test]
async fn an_http_1_0_visitor_never_sees_an_interim_head() {
    let text = visit_interim_app(
        EARLY_HINTS,
        b"GET / HTTP/1.0\r\nHost: hints.example.test\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(!text.contains("103"), "{text}");
    assert!(text.ends_with("ok"), "{text}");
}

#[tokio::test]
async fn the_apps_100_continue_and_interim_hop_by_hop_headers_stay_behind() {
    const INTERIM: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\nconnection: x-hop\r\nx-hop: 1\r\n\r\n";
    let text = visit_interim_app(
        INTERIM,
        b"GET / HTTP/1.1\r\nHost: hints.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        text.starts_with(
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
        ),
        "{text}"
    );
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("x-hop"), "{text}");
}

#[tokio::test]
async fn an_endless_run_of_interim_heads_is_cut_at_sixteen() {
    let flood: &'static [u8] = EARLY_HINTS.repeat(40).leak();
    let text = visit_interim_app(
        flood,
        b"GET / HTTP/1.1\r\nHost: hints.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        text.matches("HTTP/1.1 103 Early Hints").count(),
        16,
        "{text}"
    );
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
}

#[tokio::test]
async fn pipelined_requests_get_whole_answers_in_order() {
    let text = visit_interim_app(
        EARLY_HINTS,
        b"GET /a HTTP/1.1\r\nHost: hints.example.test\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: hints.example.test\r\n\r\n\
          GET /c HTTP/1.1\r\nHost: hints.example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    // Whatever interim heads made it, each final answer is whole: head, then its 2-byte body,
    // and an interim head never lands inside another answer.
    let finals: Vec<&str> = text.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
    assert_eq!(finals.len(), 3, "{text}");
    for answer in finals {
        let body_start = answer.find("\r\n\r\n").expect("end of head") + 4;
        let rest = &answer[body_start..];
        assert!(rest.starts_with("ok"), "{text}");
        let after = &rest[2..];
        assert!(
            after.is_empty() || after.starts_with("HTTP/1.1 103 Early Hints\r\n"),
            "{text}"
        );
    }
}
