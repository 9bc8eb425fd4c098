//! The responses a public visitor gets when the edge, not the app, answers (DESIGN.md
//! section 5, "Errors the visitor sees").
//!
//! Each is plain text naming the cause, prefixed `underpass:` so a visitor (or the app's
//! developer) can tell a tunnel problem from an app error at a glance. Every one is built by
//! [`edge_response`], so all carry the same headers; [`to_http1_bytes`] writes one on a
//! connection hyper never took (over the connection budget or a per-address cap).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::authority::HostError;
use super::basic_auth::challenge_header_value;

/// Longest host echoed back in a 404; anything longer is cut, since the value is
/// visitor-controlled and only there to help a human.
const MAX_ECHOED_HOST: usize = 255;

/// 404: no tunnel is registered for `host`.
pub fn no_route(host: &str) -> Response<Bytes> {
    let host: String = host
        .chars()
        .take(MAX_ECHOED_HOST)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    edge_response(
        StatusCode::NOT_FOUND,
        format!("underpass: no tunnel for host {host}\n"),
    )
}

/// 400: the request has no host at all, so it cannot be routed.
pub fn missing_host() -> Response<Bytes> {
    edge_response(
        StatusCode::BAD_REQUEST,
        "underpass: request has no Host header\n",
    )
}

/// 400: two Host headers, or a host that is not `host[:port]` (RFC 9112 section 3.2).
pub fn bad_host(error: HostError) -> Response<Bytes> {
    edge_response(StatusCode::BAD_REQUEST, format!("underpass: {error}\n"))
}

/// 404 for a path under `/__underpass__/` that names nothing; `what` says where.
pub fn no_endpoint(what: &str) -> Response<Bytes> {
    edge_response(
        StatusCode::NOT_FOUND,
        format!("underpass: no such endpoint{what}\n"),
    )
}

/// 429 with `Retry-After`: this address sent too many wrong Basic Auth credentials; nothing is
/// checked until `retry_secs` have passed.
pub fn auth_throttled(retry_secs: u64) -> Response<Bytes> {
    let mut response = edge_response(
        StatusCode::TOO_MANY_REQUESTS,
        "underpass: too many failed authentication attempts from your address; retry later\n",
    );
    retry_after(&mut response, retry_secs.max(1));
    response
}

/// 429 with `Retry-After: 5`: this address already holds `--max-connections-per-ip`
/// connections.
pub fn too_many_connections() -> Response<Bytes> {
    let mut response = edge_response(
        StatusCode::TOO_MANY_REQUESTS,
        "underpass: too many connections from your address\n",
    );
    retry_after(&mut response, 5);
    response
}

/// 503 with `Retry-After: 5`: the server's connection budget (`--fd-budget`) is spent.
pub fn over_budget() -> Response<Bytes> {
    let mut response = edge_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "underpass: server is out of connection capacity, retry shortly\n",
    );
    retry_after(&mut response, 5);
    response
}

/// 431: the request head does not fit in one STREAM_OPEN frame.
pub fn head_too_large() -> Response<Bytes> {
    edge_response(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "underpass: request head too large for the tunnel\n",
    )
}

/// 502: the stream ended (reset, session gone) before the client sent a response head.
pub fn tunnel_client_failed(cause: &dyn std::fmt::Display) -> Response<Bytes> {
    edge_response(
        StatusCode::BAD_GATEWAY,
        format!("underpass: the tunnel client could not answer: {cause}\n"),
    )
}

/// 502: the client's response head is unusable (`what`: "an invalid status", "a bad header").
pub fn bad_response_head(what: &str) -> Response<Bytes> {
    edge_response(
        StatusCode::BAD_GATEWAY,
        format!("underpass: the tunnel client sent {what}\n"),
    )
}

/// 401 with `WWW-Authenticate: Basic realm="underpass"`: the binding requires Basic Auth and
/// the request had none or the wrong credentials.
pub fn auth_required() -> Response<Bytes> {
    let mut response = edge_response(
        StatusCode::UNAUTHORIZED,
        "underpass: authentication required\n",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge_header_value()),
    );
    response
}

/// How a visitor error names the client's service: `port 3000` on this machine's loopback,
/// the whole address for a service elsewhere on the client's network.
fn service(addr: SocketAddr) -> String {
    if addr.ip().is_loopback() {
        format!("port {}", addr.port())
    } else {
        addr.to_string()
    }
}

/// 429 with `Retry-After: 1`: this visitor started more requests this second than the
/// server's `--visitor-rate` allows.
pub fn too_many_requests() -> Response<Bytes> {
    let mut response = edge_response(
        StatusCode::TOO_MANY_REQUESTS,
        "underpass: too many requests from your address; slow down\n",
    );
    retry_after(&mut response, 1);
    response
}

/// 403: the binding's address policy (`--cidr-allow`, `--cidr-deny`) refuses `visitor`.
pub fn not_allowed(visitor: IpAddr) -> Response<Bytes> {
    edge_response(
        StatusCode::FORBIDDEN,
        format!("underpass: this tunnel does not admit visitors from {visitor}\n"),
    )
}

/// 502: the client reached nothing listening at its local service `addr`.
pub fn upstream_refused(addr: SocketAddr) -> Response<Bytes> {
    edge_response(
        StatusCode::BAD_GATEWAY,
        format!(
            "underpass: local service on {} refused the connection\n",
            service(addr)
        ),
    )
}

/// 502: the local service at `addr` closed or reset the connection before answering.
pub fn upstream_reset(addr: SocketAddr) -> Response<Bytes> {
    edge_response(
        StatusCode::BAD_GATEWAY,
        format!(
            "underpass: local service on {} reset the connection\n",
            service(addr)
        ),
    )
}

/// 504: no response head arrived within `timeout` (named in whole seconds, or in milliseconds
/// when it is not a whole number of seconds, so a sub-second limit never reads "0 s").
pub fn upstream_timeout(timeout: Duration) -> Response<Bytes> {
    let limit = if timeout.subsec_millis() == 0 {
        format!("{} s", timeout.as_secs())
    } else {
        format!("{} ms", timeout.as_millis())
    };
    edge_response(
        StatusCode::GATEWAY_TIMEOUT,
        format!("underpass: local service did not respond within {limit}\n"),
    )
}

/// 503 while the server drains before stopping; the visitor may retry shortly.
pub fn shutting_down() -> Response<Bytes> {
    let mut resp = edge_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "underpass: the server is shutting down, retry shortly\n",
    );
    retry_after(&mut resp, 5);
    resp
}

/// 503 with `Retry-After: 5`: the tunnel's session lost its carriers and is within its resume
/// grace period, so a retry in a few seconds is likely to succeed.
pub fn tunnel_resuming() -> Response<Bytes> {
    let mut response = edge_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "underpass: tunnel is reconnecting, retry shortly\n",
    );
    retry_after(&mut response, 5);
    response
}

/// 503: a server limit (streams, connections, memory) is reached.
pub fn overloaded() -> Response<Bytes> {
    edge_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "underpass: server is over capacity, try again later\n",
    )
}

fn retry_after(response: &mut Response<Bytes>, secs: u64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
}

/// The one builder of the edge's own answers: `text/plain` UTF-8, `nosniff` (bodies may echo
/// visitor input) and `no-store` (a cached error would outlive the outage).
pub fn edge_response(status: StatusCode, body: impl Into<String>) -> Response<Bytes> {
    let body: String = body.into();
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // The echoed host is visitor input: never let a browser sniff it into HTML.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A cached 404/502 would outlive the outage: the tunnel may be back a second later.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `response` as HTTP/1.1 bytes with `Content-Length` and `Connection: close`, for a connection
/// that is answered once and closed without hyper (it was never admitted).
pub fn to_http1_bytes(response: &Response<Bytes>) -> Vec<u8> {
    let status = response.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in response.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body = response.body();
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response<Bytes>) -> &str {
        std::str::from_utf8(r.body()).unwrap()
    }

    fn assert_plain(r: &Response<Bytes>) {
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).unwrap(),
            "text/plain; charset=utf-8"
        );
        assert_eq!(r.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert!(body(r).starts_with("underpass: "));
        assert!(body(r).ends_with('\n'));
    }

    #[test]
    fn no_route_names_the_host() {
        let r = no_route("demo.example.com");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(&r), "underpass: no tunnel for host demo.example.com\n");
        assert_plain(&r);
    }

    #[test]
    fn no_route_sanitises_hostile_hosts() {
        let r = no_route("a\r\nb\x00");
        assert_eq!(body(&r), "underpass: no tunnel for host a??b?\n");
        let r = no_route(&"x".repeat(10_000));
        assert!(r.body().len() < 400);
        assert_plain(&r);
        let r = no_route("");
        assert_eq!(body(&r), "underpass: no tunnel for host \n");
    }

    #[test]
    fn missing_host_is_400() {
        let r = missing_host();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(body(&r).contains("Host"));
        assert_plain(&r);
    }

    #[test]
    fn auth_required_has_challenge() {
        let r = auth_required();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Basic realm=\"underpass\""
        );
        assert!(body(&r).contains("authentication"));
        assert_plain(&r);
    }

    #[test]
    fn upstream_errors() {
        let r = upstream_refused(SocketAddr::from(([127, 0, 0, 1], 3000)));
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            body(&r),
            "underpass: local service on port 3000 refused the connection\n"
        );
        assert_plain(&r);

        let r = upstream_reset(SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert!(body(&r).contains("port 8080 reset"));
        let r = upstream_refused(SocketAddr::from(([192, 168, 1, 5], 80)));
        assert!(
            body(&r).contains("on 192.168.1.5:80 refused"),
            "{}",
            body(&r)
        );
        assert_plain(&r);

        let r = upstream_timeout(Duration::from_secs(30));
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(body(&r).contains("within 30 s"));
        assert_plain(&r);
        let r = upstream_timeout(Duration::from_millis(300));
        assert!(body(&r).contains("within 300 ms"), "{}", body(&r));
    }

    #[test]
    fn raw_bytes_carry_the_same_headers() {
        let r = over_budget();
        let raw = String::from_utf8(to_http1_bytes(&r)).unwrap();
        assert!(
            raw.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{raw}"
        );
        for line in [
            "content-type: text/plain; charset=utf-8\r\n",
            "x-content-type-options: nosniff\r\n",
            "cache-control: no-store\r\n",
            "retry-after: 5\r\n",
            "connection: close\r\n",
        ] {
            assert!(raw.contains(line), "{line:?} in {raw}");
        }
        let body = std::str::from_utf8(r.body()).unwrap();
        assert!(raw.ends_with(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )));
        assert_plain(&r);
        assert_plain(&auth_throttled(0));
        assert_eq!(auth_throttled(0).headers()[header::RETRY_AFTER], "1");
        assert_plain(&bad_host(HostError::Duplicate));
        assert_eq!(
            bad_host(HostError::Duplicate).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn resuming_and_overloaded_are_503() {
        let r = tunnel_resuming();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "5");
        assert!(body(&r).contains("reconnecting"));
        assert_plain(&r);

        let r = overloaded();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        assert!(body(&r).contains("capacity"));
        assert_plain(&r);
    }
}
