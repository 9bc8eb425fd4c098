//! The request inspector through the real binary: requests through an http expose appear in its
//! ngrok-compatible API with ngrok's fields, replay (plain and edited) reaches the app again,
//! clear, caps and truncation, WebSocket marking, and its Host and Origin refusals.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const HOOK: &str = r#"{"event":"push","repo":{"name":"underpass"},"n":1}"#;

fn ids(list: &Value) -> Vec<String> {
    list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn requests_appear_with_ngroks_fields() {
    let app = echo_app("hooked").await;
    let t = inspected(app, &[]).await;
    let reply = t
        .visit(
            Method::POST,
            "/webhooks/github?delivery=7",
            &[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
            ],
            HOOK,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let got = wait_request(t.inspect, |r| r["state"] == "complete").await;

    let id = got["id"].as_str().unwrap();
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(got["uri"], format!("/api/requests/http/{id}"));
    assert_eq!(got["tunnel_name"], "hook");
    assert_eq!(got["remote_addr"], "127.0.0.1");
    let start = got["start"].as_str().unwrap();
    assert!(
        start.len() >= 20 && start.ends_with('Z') && start.contains('T'),
        "{start}"
    );
    assert!(got["duration"].as_u64().unwrap() > 0);
    assert!(got["head_duration"].as_u64().unwrap() <= got["duration"].as_u64().unwrap());
    assert_eq!(got["replay_of"], Value::Null);

    let req = &got["request"];
    assert_eq!(req["method"], "POST");
    assert_eq!(req["proto"], "HTTP/1.1");
    assert_eq!(req["uri"], "/webhooks/github?delivery=7");
    assert_eq!(req["headers"]["X-Github-Event"], json!(["push"]));
    assert_eq!(req["headers"]["Host"], json!([HOOK_HOST]));
    assert_eq!(req["headers"]["X-Forwarded-For"], json!(["127.0.0.1"]));
    let raw = String::from_utf8(raw_of(req)).unwrap();
    assert!(
        raw.starts_with("POST /webhooks/github?delivery=7 HTTP/1.1\r\n"),
        "{raw}"
    );
    assert!(
        raw.contains("\r\nContent-Type: application/json\r\n"),
        "{raw}"
    );
    assert!(raw.ends_with(&format!("\r\n\r\n{HOOK}")), "{raw}");
    assert_eq!(req["body"]["size"], HOOK.len());
    assert_eq!(req["body"]["truncated"], false);

    let resp = &got["response"];
    assert_eq!(resp["status"], "200 OK");
    assert_eq!(resp["status_code"], 200);
    assert_eq!(resp["proto"], "HTTP/1.1");
    assert_eq!(resp["headers"]["Content-Type"], json!(["application/json"]));
    let seen: Value = serde_json::from_slice(&raw_body(resp)).unwrap();
    assert_eq!(
        seen["body"], HOOK,
        "the captured response is what the visitor got"
    );
    assert_eq!(reply.json(), seen);

    // The detail is the same object; an unknown id is a 404 in ngrok's error shape.
    let detail = api_get(t.inspect, &format!("/api/requests/http/{id}")).await;
    assert_eq!(detail, got);
    let missing = api(t.inspect, Method::GET, "/api/requests/http/0000", &[], "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["status_code"], 404);
}

#[tokio::test]
async fn list_is_newest_first_with_limit_and_tunnel_name() {
    let app = echo_app("listed").await;
    let t = inspected(app, &[]).await;
    for n in 0..3 {
        t.visit(Method::GET, &format!("/n/{n}"), &[], "").await;
    }
    wait_request(t.inspect, |r| {
        r["request"]["uri"] == "/n/2" && r["state"] == "complete"
    })
    .await;
    let all = api_get(t.inspect, "/api/requests/http").await;
    assert_eq!(all["uri"], "/api/requests/http");
    let uris: Vec<&str> = all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request"]["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["/n/2", "/n/1", "/n/0"]);
    let two = api_get(t.inspect, "/api/requests/http?limit=2").await;
    assert_eq!(ids(&two), ids(&all)[..2]);
    let hook = api_get(t.inspect, "/api/requests/http?tunnel_name=hook").await;
    assert_eq!(ids(&hook).len(), 3);
    let other = api_get(t.inspect, "/api/requests/http?tunnel_name=other").await;
    assert!(ids(&other).is_empty());
    let bad = api(
        t.inspect,
        Method::GET,
        "/api/requests/http?limit=x",
        &[],
        "",
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tunnels_are_ngrok_shaped_and_jq_finds_the_public_url() {
    let app = echo_app("t").await;
    let t = inspected(app, &[]).await;
    let list = api_get(t.inspect, "/api/tunnels").await;
    assert_eq!(list["uri"], "/api/tunnels");
    let tunnel = &list["tunnels"][0];
    // `curl -s localhost:4040/api/tunnels | jq -r '.tunnels[0].public_url'`
    assert_eq!(tunnel["public_url"], t.public.as_str());
    assert_eq!(tunnel["name"], "hook");
    assert_eq!(tunnel["proto"], "http");
    assert_eq!(tunnel["config"]["addr"], format!("http://127.0.0.1:{app}"));
    assert_eq!(tunnel["uri"], "/api/tunnels/hook");
    let one = api_get(t.inspect, "/api/tunnels/hook").await;
    assert_eq!(&one, tunnel);
    // ngrok's host name works too, as scripts use it.
    let by_name = common::request(
        t.inspect,
        Method::GET,
        &format!("localhost:{}", t.inspect.port()),
        "/api/tunnels",
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(by_name.json(), list);
}

#[tokio::test]
async fn replay_reaches_the_app_again_as_a_new_linked_exchange() {
    let (app, hits) = counting_app("replayed").await;
    let t = inspected(app, &[]).await;
    t.visit(
        Method::POST,
        "/hook",
        &[("content-type", "application/json")],
        HOOK,
    )
    .await;
    let original = wait_request(t.inspect, |r| r["state"] == "complete").await;
    let id = original["id"].as_str().unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let r = api_replay(t.inspect, &json!({"id": id})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let new_id = r.headers["underpass-replay-id"]
        .to_str()
        .unwrap()
        .to_string();
    let replay = wait_request(t.inspect, |r| r["id"] == new_id && r["state"] == "complete").await;
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the app was hit again");
    assert_eq!(replay["replay_of"], id);
    assert_eq!(replay["tunnel_name"], "hook");
    assert_eq!(replay["request"]["method"], "POST");
    assert_eq!(replay["request"]["uri"], "/hook");
    let saw: Value = serde_json::from_slice(&raw_body(&replay["response"])).unwrap();
    assert_eq!(saw["body"], HOOK, "the app got the same body");
    assert_eq!(saw["method"], "POST");
    assert_eq!(saw["target"], "/hook");
    assert_eq!(seen_one(&saw, "host").as_deref(), Some(HOOK_HOST));
    // Newest first: the replay heads the list, the original is still there.
    let list = api_get(t.inspect, "/api/requests/http").await;
    assert_eq!(ids(&list), [new_id.clone(), id.to_string()]);

    let missing = api_replay(t.inspect, &json!({"id": "ffffffffffffffff"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let garbage = api_replay(t.inspect, &json!({"idd": id})).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert!(garbage.json()["msg"].as_str().unwrap().contains("id"));
}

#[tokio::test]
async fn edited_replay_sends_the_changed_method_path_headers_and_body() {
    let (app, hits) = counting_app("edited").await;
    let t = inspected(app, &[]).await;
    t.visit(
        Method::POST,
        "/hook",
        &[("content-type", "application/json")],
        HOOK,
    )
    .await;
    let original = wait_request(t.inspect, |r| r["state"] == "complete").await;
    let edit = json!({
        "id": original["id"],
        "request": {
            "method": "PUT",
            "uri": "/hook/v2?try=2",
            "headers": {"Host": [HOOK_HOST], "Content-Type": ["text/plain"], "X-Edited": ["yes", "twice"]},
            "body": "changed body",
        },
    });
    let r = api_replay(t.inspect, &edit).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let new_id = r.headers["underpass-replay-id"]
        .to_str()
        .unwrap()
        .to_string();
    let replay = wait_request(t.inspect, |r| r["id"] == new_id && r["state"] == "complete").await;
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let saw: Value = serde_json::from_slice(&raw_body(&replay["response"])).unwrap();
    assert_eq!(saw["method"], "PUT");
    assert_eq!(saw["target"], "/hook/v2?try=2");
    assert_eq!(saw["body"], "changed body");
    assert_eq!(seen(&saw, "x-edited"), ["yes", "twice"]);
    assert_eq!(
        seen_one(&saw, "content-type").as_deref(),
        Some("text/plain")
    );
    assert_eq!(seen_one(&saw, "content-length").as_deref(), Some("12"));
    assert_eq!(replay["request"]["method"], "PUT");
    assert_eq!(replay["replay_of"], original["id"]);

    // A bad edit is refused before anything is sent.
    let bad = json!({"id": original["id"], "request": {"uri": "no-slash"}});
    let r = api_replay(t.inspect, &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["msg"].as_str().unwrap().contains("path"),
        "{}",
        r.text()
    );
    let injected = json!({"id": original["id"], "request": {"headers": {"X": ["a\r\nEvil: 1"]}}});
    assert_eq!(
        api_replay(t.inspect, &injected).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "refused edits reach nothing"
    );
}

#[tokio::test]
async fn clear_deletes_every_captured_request() {
    let app = echo_app("cleared").await;
    let t = inspected(app, &[]).await;
    t.visit(Method::GET, "/one", &[], "").await;
    wait_request(t.inspect, |r| r["request"]["uri"] == "/one").await;
    let r = api(t.inspect, Method::DELETE, "/api/requests/http", &[], "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(ids(&api_get(t.inspect, "/api/requests/http").await).is_empty());
    t.visit(Method::GET, "/two", &[], "").await;
    let two = wait_request(t.inspect, |r| r["request"]["uri"] == "/two").await;
    assert_eq!(
        ids(&api_get(t.inspect, "/api/requests/http").await),
        [two["id"].as_str().unwrap()]
    );
}

#[tokio::test]
async fn bodies_are_capped_the_ring_is_bounded_and_truncated_bodies_refuse_replay() {
    let (app, hits) = counting_app("capped").await;
    let t = inspected(
        app,
        &["--inspect-body-cap", "1KiB", "--inspect-max-requests", "3"],
    )
    .await;
    let big = "x".repeat(5000);
    let reply = t.visit(Method::POST, "/big", &[], &big).await;
    assert_eq!(
        reply.json()["body"].as_str().unwrap().len(),
        5000,
        "the app got it all"
    );
    let got = wait_request(t.inspect, |r| r["state"] == "complete").await;
    let req = &got["request"];
    assert_eq!(req["body"]["size"], 5000);
    assert_eq!(req["body"]["captured"], 1024);
    assert_eq!(req["body"]["truncated"], true);
    assert_eq!(raw_body(req), big.as_bytes()[..1024]);
    let resp = &got["response"];
    assert_eq!(resp["body"]["captured"], 1024);
    assert_eq!(resp["body"]["size"], reply.body.len());
    assert_eq!(resp["body"]["truncated"], true);
    assert_eq!(raw_body(resp), reply.body[..1024]);

    // A truncated body cannot be sent again whole: a clear refusal, and nothing reaches the app.
    let r = api_replay(t.inspect, &json!({"id": got["id"]})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("truncated") && msg.contains("1024 of 5000"),
        "{msg}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // With a body of its own it goes.
    let edit = json!({"id": got["id"], "request": {"body": "short"}});
    assert_eq!(
        api_replay(t.inspect, &edit).await.status,
        StatusCode::NO_CONTENT
    );
    wait_request(t.inspect, |r| {
        r["replay_of"] == got["id"] && r["state"] == "complete"
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Only the last three exchanges are kept.
    for n in 0..4 {
        t.visit(Method::GET, &format!("/r/{n}"), &[], "").await;
    }
    wait_request(t.inspect, |r| {
        r["request"]["uri"] == "/r/3" && r["state"] == "complete"
    })
    .await;
    let list = api_get(t.inspect, "/api/requests/http").await;
    let uris: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request"]["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["/r/3", "/r/2", "/r/1"]);
}

#[tokio::test]
async fn a_request_body_the_app_never_reads_is_still_captured_and_replayable() {
    // A webhook to a route the app does not have: 404 before the body is read. The body is
    // what one wants to see, and to replay once the route exists.
    let (app, hits) = {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let port = common::app(move |_req| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                http::Response::builder()
                    .status(404)
                    .body(full_body("no such route"))
                    .unwrap()
            }
        })
        .await;
        (port, hits)
    };
    let t = inspected(app, &[]).await;
    // The visitor sends the head, reads the whole 404, and only then the body, on a raw
    // socket: hyper's client closes a connection once the answer is in, body sent or not.
    let mut visitor = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let head = format!(
        "POST /stripe HTTP/1.1\r\nHost: {HOOK_HOST}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        HOOK.len()
    );
    visitor.write_all(head.as_bytes()).await.unwrap();
    let answer = within(10, read_response(&mut visitor)).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    visitor.write_all(HOOK.as_bytes()).await.unwrap();
    let got = wait_request(t.inspect, |r| r["request"]["body"]["state"] == "complete").await;
    assert_eq!(raw_body(&got["request"]), HOOK.as_bytes());
    let r = api_replay(t.inspect, &json!({"id": got["id"]})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    wait_request(t.inspect, |r| {
        r["replay_of"] == got["id"] && r["state"] == "complete"
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn websocket_upgrades_are_marked_with_bytes_each_way() {
    let (app, _release) = full_app("ws").await;
    let t = inspected(app, &[]).await;
    let (mut ws, resp) = ws_handshake(t.addr, HOOK_HOST, "/socket").await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.send(Message::text("hello through the tunnel"))
        .await
        .unwrap();
    let echo = within(10, ws.next()).await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap(), "hello through the tunnel");
    let open = wait_request(t.inspect, |r| {
        r["upgrade"]["bytes_from_app"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(open["response"]["status_code"], 101);
    assert_eq!(open["state"], "streaming");
    assert!(
        open["upgrade"]["bytes_to_app"].as_u64().unwrap() >= 24,
        "{open}"
    );
    // Replaying an upgrade makes no sense; it is refused.
    let r = api_replay(t.inspect, &json!({"id": open["id"]})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()["msg"].as_str().unwrap().contains("WebSocket"));
    ws.close(None).await.unwrap();
    drop(ws);
    wait_request(t.inspect, |r| {
        r["id"] == open["id"] && r["state"] != "streaming"
    })
    .await;
}

#[tokio::test]
async fn a_streamed_response_still_arrives_event_by_event_while_captured() {
    let (app, release) = full_app("sse").await;
    let t = inspected(app, &[]).await;
    let mut resp = get_live(t.addr, HOOK_HOST, "/sse").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Event one reaches the visitor while the app still holds event two back...
    let first = next_chunk(resp.body_mut()).await;
    assert_eq!(first, EVENT_ONE.as_bytes());
    // ...and the inspector already shows it, with the exchange still streaming.
    let live = wait_request(t.inspect, |r| {
        r["response"]["body"]["captured"].as_u64() == Some(EVENT_ONE.len() as u64)
    })
    .await;
    assert_eq!(live["state"], "streaming");
    assert_eq!(raw_body(&live["response"]), EVENT_ONE.as_bytes());
    release.notify_one();
    let second = next_chunk(resp.body_mut()).await;
    assert_eq!(second, EVENT_TWO.as_bytes());
    let done = wait_request(t.inspect, |r| r["state"] == "complete").await;
    assert_eq!(
        raw_body(&done["response"]),
        format!("{EVENT_ONE}{EVENT_TWO}").as_bytes()
    );
}

#[tokio::test]
async fn only_its_own_host_and_origin_are_answered() {
    let (app, hits) = counting_app("guarded").await;
    let t = inspected(app, &[]).await;
    t.visit(Method::POST, "/hook", &[], HOOK).await;
    let got = wait_request(t.inspect, |r| r["state"] == "complete").await;
    let port = t.inspect.port();

    // DNS rebinding: a page at attacker.example resolved to 127.0.0.1 sends its own Host.
    let rebound = common::request(
        t.inspect,
        Method::GET,
        &format!("attacker.example:{port}"),
        "/api/requests/http",
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    assert!(!rebound.text().contains(HOOK), "nothing captured leaks");
    let wrong_port = common::request(
        t.inspect,
        Method::GET,
        &format!("127.0.0.1:{}", port.wrapping_add(1)),
        "/",
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(wrong_port.status, StatusCode::FORBIDDEN);

    // CSRF: another page's replay and clear are refused and change nothing.
    let body = json!({"id": got["id"]}).to_string();
    for origin in [
        "http://attacker.example",
        "null",
        &format!("http://localhost:{}", port + 1),
    ] {
        let r = api(
            t.inspect,
            Method::POST,
            "/api/requests/http",
            &[("origin", origin)],
            &body,
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin}");
        let r = api(
            t.inspect,
            Method::DELETE,
            "/api/requests/http",
            &[("origin", origin)],
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin}");
    }
    let cross = api(
        t.inspect,
        Method::DELETE,
        "/api/requests/http",
        &[("sec-fetch-site", "cross-site")],
        "",
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "no refused replay reached the app"
    );
    assert_eq!(
        ids(&api_get(t.inspect, "/api/requests/http").await).len(),
        1
    );

    // Its own page may.
    let own = format!("http://{}", t.inspect);
    let r = api(
        t.inspect,
        Method::POST,
        "/api/requests/http",
        &[("origin", &own)],
        &body,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    wait_request(t.inspect, |r| r["replay_of"] == got["id"]).await;
    // The page and API carry headers that keep other pages from framing or sniffing them.
    let page = api(t.inspect, Method::GET, "/", &[], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("underpass inspector"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(page.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_cut_and_not_replayed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = common::app(|_req| async {
        http::Response::builder()
            .status(404)
            .body(full_body("no such route"))
            .unwrap()
    })
    .await;
    let t = inspected(app, &[]).await;
    // A visitor announces 50 bytes and waits for 100 Continue; the app answers 404 at once and
    // the visitor leaves without sending the body (curl does this).
    let mut tcp = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let head = format!(
        "POST /short HTTP/1.1\r\nHost: {HOOK_HOST}\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // (The edge may say 100 Continue first: the inspector reads the body the app left.)
    let mut answer = Vec::new();
    within(10, async {
        while !String::from_utf8_lossy(&answer).contains("HTTP/1.1 404") {
            let mut buf = [0u8; 1024];
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the 404");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    drop(tcp);
    let got = wait_request(t.inspect, |r| {
        r["state"] == "complete" && r["request"]["body"]["state"] != "open"
    })
    .await;
    assert_eq!(got["request"]["body"]["state"], "cut", "{got}");
    assert_eq!(got["request"]["body"]["size"], 0);
    let r = api_replay(t.inspect, &json!({"id": got["id"]})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()["msg"].as_str().unwrap().contains("cut short"));
}

/// Reads one response with a `Content-Length` body from `tcp`, leaving the connection open.
async fn read_response(tcp: &mut tokio::net::TcpStream) -> RawReply {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a whole response: {raw:?}");
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let reply = parse_reply(&raw[..end + 4]);
        let length: usize = reply
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("a Content-Length");
        if raw.len() >= end + 4 + length {
            return parse_reply(&raw);
        }
    }
}
