//! Liveness and readiness probes (`/__underpass__/health/live`, `/ready`).

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::state::ServerState;
use crate::http::body::{full, ProxyBody};

/// Liveness path: 200 while the process runs.
pub const LIVE_PATH: &str = "/__underpass__/health/live";
/// Readiness path: 200 while accepting, 503 while draining.
pub const READY_PATH: &str = "/__underpass__/health/ready";

/// Answers a probe, or `None` if `req` is not one.
pub fn answer<B>(state: &ServerState, req: &Request<B>) -> Option<Response<ProxyBody>> {
    let path = req.uri().path();
    if path != LIVE_PATH && path != READY_PATH {
        return None;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = Response::new(full("underpass: health probes accept GET and HEAD\n"));
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(resp);
    }
    let (status, body) = if path == READY_PATH && state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
    } else {
        (StatusCode::OK, r#"{"status":"ok"}"#)
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}
