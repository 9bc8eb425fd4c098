//! The responses a public visitor gets when the edge, not the app, answers (DESIGN.md
//! section 5, "Errors the visitor sees").
//!
//! Each is plain text naming the cause, prefixed `underpass:` so a visitor (or the app's
//! developer) can tell a tunnel problem from an app error at a glance.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

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
    text(
        StatusCode::NOT_FOUND,
        format!("underpass: no tunnel for host {host}\n"),
    )
}

/// 400: the request has no host at all, so it cannot be routed.
pub fn missing_host() -> Response<Bytes> {
    text(
        StatusCode::BAD_REQUEST,
        "underpass: request has no Host header\n".into(),
    )
}

/// 401 with `WWW-Authenticate: Basic realm="underpass"`: the binding requires Basic Auth and
/// the request had none or the wrong credentials.
pub fn auth_required() -> Response<Bytes> {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "underpass: authentication required\n".into(),
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
    let mut response = text(
        StatusCode::TOO_MANY_REQUESTS,
        "underpass: too many requests from your address; slow down\n".into(),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// 403: the binding's address policy (`--cidr-allow`, `--cidr-deny`) refuses `visitor`.
pub fn not_allowed(visitor: IpAddr) -> Response<Bytes> {
    text(
        StatusCode::FORBIDDEN,
        format!("underpass: this tunnel does not admit visitors from {visitor}\n"),
    )
}

/// 502: the client reached nothing listening at its local service `addr`.
pub fn upstream_refused(addr: SocketAddr) -> Response<Bytes> {
    text(
        StatusCode::BAD_GATEWAY,
        format!(
            "underpass: local service on {} refused the connection\n",
            service(addr)
        ),
    )
}

/// 502: the local service at `addr` closed or reset the connection before answering.
pub fn upstream_reset(addr: SocketAddr) -> Response<Bytes> {
    text(
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
    text(
        StatusCode::GATEWAY_TIMEOUT,
        format!("underpass: local service did not respond within {limit}\n"),
    )
}

/// 503 while the server drains before stopping; the visitor may retry shortly.
pub fn shutting_down() -> Response<Bytes> {
    let mut resp = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "underpass: the server is shutting down, retry shortly\n".into(),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

/// 503 with `Retry-After: 5`: the tunnel's session lost its carriers and is within its resume
/// grace period, so a retry in a few seconds is likely to succeed.
pub fn tunnel_resuming() -> Response<Bytes> {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "underpass: tunnel is reconnecting, retry shortly\n".into(),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// 503: a server limit (streams, connections, memory) is reached.
pub fn overloaded() -> Response<Bytes> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "underpass: server is over capacity, try again later\n".into(),
    )
}

fn text(status: StatusCode, body: String) -> Response<Bytes> {
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
