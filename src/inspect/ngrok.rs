//! The JSON of ngrok's agent API (`/api/tunnels`, `/api/requests/http`), field for field, plus
//! underpass's additions (marked below); and the summaries the web UI lists.

use std::time::{Duration, SystemTime};

use base64::Engine;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::capture::{BodyCapture, BodyState};
use super::record::{RequestHead, ResponseHead, Snapshot};
use super::tunnel::TunnelInfo;

/// Every request and response is shown as HTTP/1.1: the client speaks HTTP/1.1 to the app.
const PROTO: &str = "HTTP/1.1";

/// `content-type` -> `Content-Type`, as Go (and so ngrok) writes header names.
pub(crate) fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// ngrok's header object: canonical name -> every value, in order.
fn headers_json(pairs: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (name, value) in pairs {
        let entry = map
            .entry(canonical(name))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::String(value.clone()));
        }
    }
    Value::Object(map)
}

/// RFC 3339 in UTC, as ngrok's `start` (which uses the local offset).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn nanos(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_nanos() as u64))
}

/// The request as bytes on the wire: request line, headers, blank line, captured body. Rebuilt
/// from what the client received through the tunnel (after the server's header hygiene).
pub(crate) fn raw_request(head: &RequestHead, body: &BodyCapture) -> Vec<u8> {
    let mut raw = format!("{} {} {PROTO}\r\n", head.method, head.target).into_bytes();
    append_head_and_body(&mut raw, &head.headers, body);
    raw
}

/// The response as bytes on the wire: status line, headers, blank line, captured body.
pub(crate) fn raw_response(head: &ResponseHead, body: &BodyCapture) -> Vec<u8> {
    let mut raw = format!("{PROTO} {}\r\n", status_text(head.status)).into_bytes();
    append_head_and_body(&mut raw, &head.headers, body);
    raw
}

fn append_head_and_body(raw: &mut Vec<u8>, headers: &[(String, String)], body: &BodyCapture) {
    for (name, value) in headers {
        raw.extend_from_slice(canonical(name).as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&body.bytes());
}

/// `200 OK`, as ngrok's `status`.
fn status_text(code: u16) -> String {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{code} {reason}").trim_end().to_string()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// *(underpass)* Sizes of a body: what passed, what was kept, whether it ended whole.
fn body_json(body: &BodyCapture) -> Value {
    json!({
        "size": body.total(),
        "captured": body.captured(),
        "truncated": body.truncated(),
        "state": match body.state() {
            BodyState::Open => "open",
            BodyState::Complete => "complete",
            BodyState::Cut => "cut",
        },
    })
}

/// One captured request as `GET /api/requests/http/{id}` shows it.
pub(crate) fn exchange(s: &Snapshot) -> Value {
    let response = s.response.as_ref().map_or(Value::Null, |r| {
        json!({
            "status": status_text(r.status),
            "status_code": r.status,
            "proto": PROTO,
            "headers": headers_json(&r.headers),
            "raw": b64(&raw_response(r, &s.response_body)),
            "body": body_json(&s.response_body),
        })
    });
    json!({
        "uri": format!("/api/requests/http/{}", s.id),
        "id": s.id,
        "tunnel_name": s.tunnel_name,
        "remote_addr": s.request.visitor().unwrap_or_default(),
        "start": rfc3339(s.started_at),
        // ngrok: nanoseconds. While the exchange runs: 0.
        "duration": s.duration.map_or(0, |d| d.as_nanos() as u64),
        "request": {
            "method": s.request.method,
            "proto": PROTO,
            "headers": headers_json(&s.request.headers),
            "uri": s.request.target,
            "raw": b64(&raw_request(&s.request, &s.request_body)),
            "body": body_json(&s.request_body),
        },
        "response": response,
        // underpass additions:
        "replay_of": s.replay_of,
        "state": s.state.as_str(),
        "head_duration": nanos(s.time_to_head),
        "upgrade": s.upgrade.map(|u| json!({"bytes_to_app": u.to_app, "bytes_from_app": u.from_app})),
    })
}

/// *(underpass)* One row of the web UI's list: no headers, no bodies.
pub(crate) fn summary(s: &Snapshot) -> Value {
    let content_type = s
        .response
        .as_ref()
        .and_then(|r| r.headers.iter().find(|(k, _)| k == "content-type"))
        .map(|(_, v)| v.clone());
    json!({
        "id": s.id,
        "tunnel_name": s.tunnel_name,
        "replay_of": s.replay_of,
        "start": rfc3339(s.started_at),
        "duration": nanos(s.duration),
        "head_duration": nanos(s.time_to_head),
        "method": s.request.method,
        "uri": s.request.target,
        "remote_addr": s.request.visitor().unwrap_or_default(),
        "status_code": s.response.as_ref().map(|r| r.status),
        "state": s.state.as_str(),
        "upgrade": s.request.upgrade,
        "request_size": s.request_body.total(),
        "response_size": s.response_body.total(),
        "content_type": content_type,
    })
}

/// One tunnel as `GET /api/tunnels` shows it.
pub(crate) fn tunnel(t: &TunnelInfo) -> Value {
    json!({
        "name": t.name,
        "uri": format!("/api/tunnels/{}", t.name),
        "public_url": t.public_url,
        "proto": t.proto(),
        "config": {"addr": t.addr, "inspect": true},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical_and_repeats_kept() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-GITHUB-event"), "X-Github-Event");
        let h = headers_json(&[
            ("set-cookie".into(), "a=1".into()),
            ("set-cookie".into(), "b=2".into()),
        ]);
        assert_eq!(h, json!({"Set-Cookie": ["a=1", "b=2"]}));
    }

    #[test]
    fn raw_request_is_head_blank_line_body() {
        let head = RequestHead {
            method: "POST".into(),
            target: "/hook?x=1".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            upgrade: false,
        };
        let body = BodyCapture::whole(&bytes::Bytes::from_static(b"{}"), 10);
        assert_eq!(
            raw_request(&head, &body),
            b"POST /hook?x=1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}"
        );
        assert_eq!(status_text(502), "502 Bad Gateway");
        assert_eq!(status_text(599), "599");
    }

    #[test]
    fn start_is_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
    }
}
