//! The admin API and Prometheus metrics on the main listener (DESIGN.md section 7, PROTOCOL.md
//! "Listeners"), all behind the bearer admin token (`--admin-token`):
//!
//! - `GET /__underpass__/api/v1/health`: `{status, version}`;
//! - `GET /__underpass__/api/v1/tunnels`, `.../sessions`, `.../bindings`: listings;
//! - `DELETE /__underpass__/api/v1/sessions/{id}?grace_ms=N` (0-5000, default 50): 202, and the
//!   session is closed after the grace period;
//! - `POST /__underpass__/api/v1/reload`: re-reads the clients file (`--clients`);
//! - `GET /__underpass__/metrics`: OpenMetrics text. It needs the admin token too, because
//!   its labels name every session; give Prometheus the token (`authorization` in the scrape
//!   config).
//!
//! Without an admin token every one of these paths answers 404, so the API cannot be opened by
//! accident. Answers are computed from the session table at request time.

mod json;
mod metrics;
mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;

use super::state::ServerState;
use crate::http::body::{full, ProxyBody};
use crate::http::edge::token::{parse_bearer, tokens_equal};
use crate::proto::ErrorCode;

/// Prefix of the JSON API; every path under it is answered here.
pub const API_PREFIX: &str = "/__underpass__/api/";
/// Version 1 of the JSON API.
pub const API_V1: &str = "/__underpass__/api/v1";
/// Prometheus scrape path.
pub const METRICS_PATH: &str = "/__underpass__/metrics";
/// Grace period of a kill when `grace_ms` is not given.
pub const DEFAULT_GRACE_MS: u64 = 50;
/// Longest grace period a kill accepts.
pub const MAX_GRACE_MS: u64 = 5000;
/// Reason a killed session is closed with (code CANCEL), as the client sees it in GOAWAY.
pub const KILL_REASON: &str = "killed by admin";

const DISABLED: &str = "admin API disabled (start the server with --admin-token)";
const READ_METHODS: &str = "GET, HEAD";

/// Prefix of the hoody-compatible admin paths on the control listener (PROTOCOL.md).
pub const HOODY_PREFIX: &str = "/api/v1/tunnel/";

/// Answers an admin or metrics request, or `None` when `req` is for another path.
pub fn answer<B>(state: &Arc<ServerState>, req: &Request<B>) -> Option<Response<ProxyBody>> {
    let path = req.uri().path();
    if path != METRICS_PATH && !path.starts_with(API_PREFIX) {
        return None;
    }
    Some(answer_at(state, req, path))
}

/// Answers the hoody-compatible paths of the control listener (`/api/v1/tunnel/{health,
/// metrics,tunnels,sessions,bindings}`, `DELETE /api/v1/tunnel/sessions/{id}`) with the same
/// handlers, or `None` for other paths.
pub fn answer_hoody<B>(state: &Arc<ServerState>, req: &Request<B>) -> Option<Response<ProxyBody>> {
    let rest = req.uri().path().strip_prefix(HOODY_PREFIX)?;
    let path = if rest == "metrics" {
        METRICS_PATH.to_string()
    } else {
        format!("{API_V1}/{rest}")
    };
    Some(answer_at(state, req, &path))
}

/// Authenticates, then routes `path` (one of ours).
fn answer_at<B>(state: &Arc<ServerState>, req: &Request<B>, path: &str) -> Response<ProxyBody> {
    let Some(expected) = state.config.admin_token.as_deref() else {
        return error(StatusCode::NOT_FOUND, DISABLED);
    };
    // Authentication comes before routing so that unauthenticated callers learn nothing about
    // which endpoints exist.
    let authorized = parse_bearer(req.headers()).is_some_and(|t| tokens_equal(t, expected));
    if !authorized {
        tracing::debug!(path, "admin request without a valid admin token");
        let mut resp = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token: send Authorization: Bearer <admin token>",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"underpass admin\""),
        );
        return resp;
    }
    route(state, req.method(), path, req.uri().query())
}

/// An authorized request, by path and method.
fn route(
    state: &Arc<ServerState>,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response<ProxyBody> {
    let read = method == Method::GET || method == Method::HEAD;
    if path == METRICS_PATH {
        if !read {
            return not_allowed(READ_METHODS);
        }
        return metrics(state);
    }
    let Some(rest) = path.strip_prefix(API_V1) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such admin API version (use /__underpass__/api/v1/...)",
        );
    };
    match rest {
        "/health" | "/tunnels" | "/sessions" | "/bindings" if !read => not_allowed(READ_METHODS),
        "/health" => ok_json(&json::Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            draining: state.is_draining(),
        }),
        "/tunnels" => ok_json(&json::tunnels(
            &snapshot::sessions(state),
            Some(state.fd_budget.available() as u64),
        )),
        "/sessions" => ok_json(&json::sessions(&snapshot::sessions(state))),
        "/bindings" => ok_json(&json::bindings(&snapshot::sessions(state))),
        "/reload" if method != Method::POST => not_allowed("POST"),
        "/reload" => reload(state),
        _ => match rest.strip_prefix("/sessions/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                if method != Method::DELETE {
                    return not_allowed("DELETE");
                }
                kill(state, id, query)
            }
            _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
        },
    }
}

fn metrics(state: &Arc<ServerState>) -> Response<ProxyBody> {
    let views = snapshot::sessions(state);
    let facts = metrics::ServerFacts {
        clients: snapshot::clients(state, &views),
        routes: state.routes.snapshot().len(),
        fd_permits_available: Some(state.fd_budget.available() as u64),
        draining: state.is_draining(),
        counters: state.counters.snapshot(),
        over_budget: state.fd_budget.refused(),
    };
    let text = metrics::render(&views, facts);
    let mut resp = Response::new(full(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    no_store(resp)
}

/// `DELETE .../sessions/{id}`: answers 202 at once and closes the session after the grace
/// period, so the caller is not held up and streams get the grace period to finish.
fn kill(state: &Arc<ServerState>, id: &str, query: Option<&str>) -> Response<ProxyBody> {
    let grace_ms = match grace_ms(query) {
        Ok(ms) => ms,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let Some(entry) = state.sessions.get(id) else {
        return error(StatusCode::NOT_FOUND, &format!("no session {id}"));
    };
    tracing::info!(session = %entry.id, client = %entry.client.name, grace_ms, "session killed by admin");
    // An admin kill skips the resume grace (PROTOCOL.md, "Liveness and resume"), even if the
    // carrier drops during the grace period.
    entry.forbid_parking();
    let killed = entry.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(grace_ms)).await;
        // Closing the mux ends the session task, which releases every binding and removes the
        // session from the table; the client reads the reason in GOAWAY. The mux is looked up
        // only now in case a resume replaced it during the grace period.
        killed.session().close(ErrorCode::CANCEL, KILL_REASON);
    });
    json_response(
        StatusCode::ACCEPTED,
        &json::Killing {
            session_id: entry.id.clone(),
            client: entry.client.name.to_string(),
            status: "closing",
        },
    )
}

/// `POST .../reload`: re-reads the clients file. 200 with what changed; 409 without a clients
/// file; 422 when the file is refused (the previous clients stay in force).
fn reload(state: &Arc<ServerState>) -> Response<ProxyBody> {
    if state.clients.file().is_none() {
        return error(
            StatusCode::CONFLICT,
            "the server runs without --clients; there is nothing to reload",
        );
    }
    match crate::server::clients::reload(state) {
        Ok(report) => ok_json(&json::Reloaded::from(report)),
        Err(message) => error(StatusCode::UNPROCESSABLE_ENTITY, &message),
    }
}

/// The `grace_ms` query parameter: absent means [`DEFAULT_GRACE_MS`]; anything but a whole
/// number from 0 to [`MAX_GRACE_MS`] is an error message for a 400.
fn grace_ms(query: Option<&str>) -> Result<u64, String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(|(k, _)| *k == "grace_ms")
        .map(|(_, v)| v)
        .next_back();
    let Some(value) = value else {
        return Ok(DEFAULT_GRACE_MS);
    };
    match value.parse::<u64>() {
        Ok(ms) if ms <= MAX_GRACE_MS => Ok(ms),
        _ => Err(format!(
            "grace_ms must be a whole number of milliseconds from 0 to {MAX_GRACE_MS}, got '{value}'"
        )),
    }
}

fn ok_json<T: Serialize>(body: &T) -> Response<ProxyBody> {
    json_response(StatusCode::OK, body)
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<ProxyBody> {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        // Only plain structs of strings and numbers are serialized; kept as a 500 anyway.
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{{\"error\":\"cannot encode the answer: {e}\"}}").into_bytes(),
        ),
    };
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(resp)
}

fn error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    json_response(
        status,
        &json::ErrorBody {
            error: message.to_string(),
        },
    )
}

fn not_allowed(allow: &'static str) -> Response<ProxyBody> {
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed here; use {allow}"),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Admin answers describe the moment they were made; caches must not replay them.
fn no_store(mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_period_parsing() {
        assert_eq!(grace_ms(None), Ok(DEFAULT_GRACE_MS));
        assert_eq!(grace_ms(Some("")), Ok(DEFAULT_GRACE_MS));
        assert_eq!(grace_ms(Some("other=1")), Ok(DEFAULT_GRACE_MS));
        assert_eq!(grace_ms(Some("grace_ms=0")), Ok(0));
        assert_eq!(grace_ms(Some("x=1&grace_ms=5000")), Ok(5000));
        assert!(grace_ms(Some("grace_ms=5001")).is_err());
        assert!(grace_ms(Some("grace_ms=9999")).is_err());
        assert!(grace_ms(Some("grace_ms=-1")).is_err());
        assert!(grace_ms(Some("grace_ms=abc")).is_err());
        assert!(grace_ms(Some("grace_ms=")).is_err());
        assert!(grace_ms(Some("grace_ms")).is_err());
    }
}
