//! The routes of the inspector's listener: ngrok's agent API paths, the live event stream and
//! the page.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{assets, events, guard, Web};
use crate::http::body::{full, ProxyBody};
use crate::inspect::replay::{ReplayEdit, ReplayError};
use crate::inspect::{ngrok, Inspector};

/// Largest API request body: an edited replay carries a body of its own.
const MAX_API_BODY: usize = 64 * 1024 * 1024;

/// Answers one request to the inspector.
pub(super) async fn handle(web: Arc<Web>, req: Request<Incoming>) -> Response<ProxyBody> {
    let port = web.addr.port();
    if let Err(refusal) = guard::check(req.method(), req.headers(), port) {
        return text(StatusCode::FORBIDDEN, refusal.message(port));
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let inspector = &web.inspector;
    match path.as_str() {
        "/" | "/app.js" | "/style.css" | "/favicon.svg" => match method {
            Method::GET | Method::HEAD => assets::file(&path),
            _ => not_allowed("GET, HEAD"),
        },
        // ngrok's page lives here; old bookmarks land on ours.
        "/inspect/http" => redirect("/"),
        "/api/tunnels" => match method {
            Method::GET => tunnels(inspector),
            _ => not_allowed("GET"),
        },
        "/api/events" => match method {
            Method::GET => events::response(inspector.clone()),
            _ => not_allowed("GET"),
        },
        "/api/requests/http" => match method {
            Method::GET => list(inspector, &query),
            Method::POST => replay(inspector, req).await,
            Method::DELETE => {
                inspector.clear();
                empty(StatusCode::NO_CONTENT)
            }
            _ => not_allowed("GET, POST, DELETE"),
        },
        p => match (
            p.strip_prefix("/api/requests/http/"),
            p.strip_prefix("/api/tunnels/"),
        ) {
            (Some(id), _) if method == Method::GET => match inspector.get(id) {
                Some(ex) => json_ok(ngrok::exchange(&ex.snapshot())),
                None => error(
                    StatusCode::NOT_FOUND,
                    &format!("no captured request '{id}'"),
                ),
            },
            (_, Some(name)) if method == Method::GET => {
                match inspector.tunnels().iter().find(|t| t.name == name) {
                    Some(t) => json_ok(ngrok::tunnel(t)),
                    None => error(StatusCode::NOT_FOUND, &format!("no tunnel '{name}'")),
                }
            }
            (Some(_), _) | (_, Some(_)) => not_allowed("GET"),
            _ if p.starts_with("/api/") => error(StatusCode::NOT_FOUND, "no such API resource"),
            _ => text(StatusCode::NOT_FOUND, "not found".into()),
        },
    }
}

fn tunnels(inspector: &Inspector) -> Response<ProxyBody> {
    let list: Vec<Value> = inspector.tunnels().iter().map(ngrok::tunnel).collect();
    json_ok(json!({"tunnels": list, "uri": "/api/tunnels"}))
}

/// `GET /api/requests/http?limit=N&tunnel_name=NAME`: newest first.
fn list(inspector: &Inspector, query: &str) -> Response<ProxyBody> {
    let mut limit = usize::MAX;
    let mut tunnel = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "limit" => match v.parse() {
                Ok(n) => limit = n,
                Err(_) => return error(StatusCode::BAD_REQUEST, "limit must be a number"),
            },
            "tunnel_name" => tunnel = Some(v.into_owned()),
            _ => {}
        }
    }
    let requests: Vec<Value> = inspector
        .exchanges()
        .iter()
        .filter(|e| tunnel.as_deref().is_none_or(|t| e.tunnel_name() == t))
        .take(limit)
        .map(|e| ngrok::exchange(&e.snapshot()))
        .collect();
    json_ok(json!({"uri": "/api/requests/http", "requests": requests}))
}

/// The body of `POST /api/requests/http`: ngrok's `id` and `tunnel_name`, and underpass's
/// optional edited `request`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    id: String,
    #[serde(default)]
    tunnel_name: Option<String>,
    #[serde(default)]
    request: Option<EditBody>,
}

/// The edits: headers as ngrok shows them (`{"Name": ["value", ...]}`), the body as text or
/// base64.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    headers: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

impl EditBody {
    fn into_edit(self) -> Result<ReplayEdit, String> {
        let headers = match self.headers {
            None => None,
            Some(map) => {
                let mut pairs = Vec::new();
                for (name, values) in map {
                    match values {
                        Value::String(v) => pairs.push((name.to_ascii_lowercase(), v)),
                        Value::Array(vs) => {
                            for v in vs {
                                let Value::String(v) = v else {
                                    return Err(format!("header {name}: values must be strings"));
                                };
                                pairs.push((name.to_ascii_lowercase(), v));
                            }
                        }
                        _ => return Err(format!("header {name}: expected a list of strings")),
                    }
                }
                Some(pairs)
            }
        };
        let body = match (self.body, self.body_base64) {
            (Some(_), Some(_)) => return Err("give body or body_base64, not both".into()),
            (Some(text), None) => Some(Bytes::from(text)),
            (None, Some(b64)) => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| format!("body_base64 is not base64: {e}"))?;
                Some(Bytes::from(raw))
            }
            (None, None) => None,
        };
        Ok(ReplayEdit {
            method: self.method,
            target: self.uri,
            headers,
            body,
        })
    }
}

/// `POST /api/requests/http {"id": ...}`: 204 as ngrok answers, plus the new exchange's id in
/// `Underpass-Replay-Id`.
async fn replay(inspector: &Inspector, req: Request<Incoming>) -> Response<ProxyBody> {
    let body = match Limited::new(req.into_body(), MAX_API_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
        }
    };
    let parsed: ReplayBody = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected JSON like {{\"id\": \"...\"}}: {e}"),
            )
        }
    };
    let edit = match parsed.request.map(EditBody::into_edit).transpose() {
        Ok(edit) => edit.unwrap_or_default(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match inspector.replay(&parsed.id, parsed.tunnel_name.as_deref(), edit) {
        Ok(new) => {
            let mut resp = empty(StatusCode::NO_CONTENT);
            if let Ok(v) = HeaderValue::from_str(new.id()) {
                resp.headers_mut().insert("underpass-replay-id", v);
            }
            resp
        }
        Err(e) => {
            let status = match e {
                ReplayError::NotFound(_) => StatusCode::NOT_FOUND,
                ReplayError::Invalid(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::CONFLICT,
            };
            error(status, &e.to_string())
        }
    }
}

fn json_ok(v: Value) -> Response<ProxyBody> {
    let mut resp = Response::new(full(v.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An error as ngrok's agent API writes one: `status_code`, `msg`, `details`.
fn error(status: StatusCode, msg: &str) -> Response<ProxyBody> {
    let mut resp = json_ok(json!({"status_code": status.as_u16(), "msg": msg, "details": {}}));
    *resp.status_mut() = status;
    resp
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(full(body + "\n"));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut resp = Response::new(crate::http::body::empty());
    *resp.status_mut() = status;
    resp
}

fn not_allowed(allow: &'static str) -> Response<ProxyBody> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

fn redirect(to: &'static str) -> Response<ProxyBody> {
    let mut resp = empty(StatusCode::FOUND);
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    resp
}
