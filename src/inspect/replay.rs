//! Replay: send a captured request again, straight to the tunnel's local service (not through
//! the public server), optionally edited, and capture the new exchange linked to the original.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body_util::BodyExt;

use super::capture::BodyState;
use super::record::{Exchange, NewRequest, Record, RequestHead, Watched};
use super::store::Inspector;
use crate::http::local::LocalService;
use crate::http::tap::{self, Watch};
use crate::proto::{BindKind, StreamOpen};

/// Changes to a replayed request ("Edit and replay"); `None` keeps the original's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayEdit {
    /// Method.
    pub method: Option<String>,
    /// Path and query, starting with `/`.
    pub target: Option<String>,
    /// Every header, replacing the original's (`Content-Length` is set from the body).
    pub headers: Option<Vec<(String, String)>>,
    /// The body; lets a request whose body was truncated be replayed.
    pub body: Option<Bytes>,
}

/// Why a request cannot be replayed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplayError {
    /// No exchange with that id is kept.
    #[error("no captured request with id '{0}'")]
    NotFound(String),
    /// The tunnel to replay against is gone.
    #[error("tunnel '{0}' is not running")]
    NoTunnel(String),
    /// Only part of the body was captured.
    #[error(
        "the request body was truncated: {captured} of {total} bytes were captured \
         (raise --inspect-body-cap, or replay with an edited body)"
    )]
    Truncated {
        /// Bytes kept.
        captured: usize,
        /// Bytes the body had.
        total: u64,
    },
    /// The body has not fully arrived yet.
    #[error("the request body is still arriving; replay it once the request is over")]
    Incomplete,
    /// The visitor went away mid-body.
    #[error("the request body was cut short by the visitor, so it cannot be sent again whole")]
    Cut,
    /// Upgrades (WebSocket) are not replayed.
    #[error("a WebSocket (upgrade) request cannot be replayed")]
    Upgrade,
    /// The edited request is not a valid HTTP request.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl Inspector {
    /// Sends exchange `id` again (edited by `edit`) to the local service of `tunnel` (default:
    /// the tunnel that captured it), and returns the new exchange at once; its response is
    /// captured as it comes, and [`Exchange::replay_of`] names the original. Call it inside a
    /// tokio runtime.
    pub fn replay(
        &self,
        id: &str,
        tunnel: Option<&str>,
        edit: ReplayEdit,
    ) -> Result<Exchange, ReplayError> {
        let original = self
            .get(id)
            .ok_or_else(|| ReplayError::NotFound(id.to_string()))?
            .snapshot();
        if original.request.upgrade {
            return Err(ReplayError::Upgrade);
        }
        let tunnel = tunnel.unwrap_or(&original.tunnel_name);
        let service = self
            .service_of(tunnel)
            .ok_or_else(|| ReplayError::NoTunnel(tunnel.to_string()))?;
        let body = match edit.body {
            Some(body) => body,
            None => whole_body(&original.request_body)?,
        };
        let head = edited_head(
            original.request,
            edit.method,
            edit.target,
            edit.headers,
            &body,
        )?;
        let open = StreamOpen {
            bind_id: 0,
            kind: BindKind::Http,
            method: Some(head.method.clone()),
            target: Some(head.target.clone()),
            headers: head.headers.clone(),
            is_upgrade: false,
            visitor_addr: None,
            server_addr: None,
        };
        let record = self.insert(
            tunnel.into(),
            NewRequest::Head(head),
            Some(id.to_string()),
            Some(body.clone()),
        );
        tokio::spawn(run(service, open, body, record.clone()));
        Ok(Exchange(record))
    }
}

fn whole_body(body: &super::capture::BodyCapture) -> Result<Bytes, ReplayError> {
    match body.state() {
        BodyState::Open => Err(ReplayError::Incomplete),
        BodyState::Cut => Err(ReplayError::Cut),
        BodyState::Complete if body.truncated() => Err(ReplayError::Truncated {
            captured: body.captured(),
            total: body.total(),
        }),
        BodyState::Complete => Ok(body.bytes()),
    }
}

/// The request to send: the original with the edits, checked, and framed by `Content-Length`
/// (the body goes whole, so a captured `Transfer-Encoding` no longer applies).
fn edited_head(
    original: RequestHead,
    method: Option<String>,
    target: Option<String>,
    headers: Option<Vec<(String, String)>>,
    body: &Bytes,
) -> Result<RequestHead, ReplayError> {
    let method = method.unwrap_or(original.method);
    Method::from_bytes(method.as_bytes())
        .map_err(|_| ReplayError::Invalid(format!("'{method}' is not an HTTP method")))?;
    let target = target.unwrap_or(original.target);
    let valid_target = target.starts_with('/') && target.parse::<Uri>().is_ok();
    if !valid_target {
        return Err(ReplayError::Invalid(format!(
            "the path must start with '/' and be a valid request target, got {target:?}"
        )));
    }
    let mut headers = headers.unwrap_or(original.headers);
    let framed = |k: &str| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    };
    let had_body = headers.iter().any(|(k, _)| framed(k));
    headers.retain(|(k, _)| !framed(k));
    if had_body || !body.is_empty() {
        headers.push(("content-length".into(), body.len().to_string()));
    }
    crate::http::headers::from_pairs(&headers).map_err(ReplayError::Invalid)?;
    Ok(RequestHead {
        method,
        target,
        headers,
        upgrade: false,
    })
}

/// Sends the replay and captures the answer to its end (or until the exchange is cleared).
async fn run(service: LocalService, open: StreamOpen, body: Bytes, record: Arc<Record>) {
    let watch: Watch = Arc::new(Watched(record.clone()));
    let status = match service.call(&open, body).await {
        Ok(resp) => {
            let status = resp.status();
            let mut body = tap::response(Some(&watch), resp).into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() || !record.is_retained() {
                    break;
                }
            }
            status
        }
        Err(e) => {
            tracing::debug!(error = %e, "replay could not be sent");
            StatusCode::BAD_REQUEST
        }
    };
    watch.finish(status);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original() -> RequestHead {
        RequestHead {
            method: "POST".into(),
            target: "/hook".into(),
            headers: vec![
                ("host".into(), "demo.example.com".into()),
                ("transfer-encoding".into(), "chunked".into()),
            ],
            upgrade: false,
        }
    }

    #[test]
    fn edits_apply_and_the_body_is_framed_by_its_length() {
        let body = Bytes::from_static(b"{\"a\":1}");
        let head = edited_head(original(), Some("PUT".into()), None, None, &body).unwrap();
        assert_eq!(head.method, "PUT");
        assert_eq!(head.target, "/hook");
        assert_eq!(
            head.headers,
            vec![
                ("host".to_string(), "demo.example.com".to_string()),
                ("content-length".to_string(), "7".to_string()),
            ]
        );
    }

    #[test]
    fn bad_edits_are_refused_with_a_reason() {
        let none = Bytes::new();
        let bad_method = edited_head(original(), Some("GE T".into()), None, None, &none);
        assert!(matches!(bad_method, Err(ReplayError::Invalid(m)) if m.contains("method")));
        let bad_path = edited_head(original(), None, Some("nope".into()), None, &none);
        assert!(matches!(bad_path, Err(ReplayError::Invalid(m)) if m.contains("path")));
        let bad_header = vec![("x".to_string(), "a\r\nb: c".to_string())];
        let injected = edited_head(original(), None, None, Some(bad_header), &none);
        assert!(matches!(injected, Err(ReplayError::Invalid(_))));
    }
}
