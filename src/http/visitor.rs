//! Server side of HTTP expose: one visitor request becomes one mux stream. The request head
//! travels in STREAM_OPEN, bodies stream both ways under flow control, and an upgrade turns the
//! stream into raw bytes after the 101.

use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use tokio::time::Instant;

use super::body::{full, MuxBody, ProxyBody};
use super::edge::forwarded::write_forwarded_headers;
use super::edge::hop_by_hop::{strip_hop_by_hop, strip_hop_by_hop_keep_upgrade, wants_upgrade};
use super::edge::request::EdgeRequest;
use super::edge::visitor_error;
use super::headers::{from_pairs, to_pairs};
use super::interim_io::{encode_interim_head, InterimOutcome, InterimWriter, MAX_INTERIM_HEADS};
use super::throttled_body::ThrottledBody;
use crate::mux::{MuxError, SendHalf, Session};
use crate::proto::{BindId, BindKind, ErrorCode, ResponseHead, StreamOpen};
use crate::tcp::{Throttle, TokenBucket};

/// Where a visitor's request goes and what the edge knows about the visitor.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Session that serves the binding.
    pub session: &'a Session,
    /// Binding id for STREAM_OPEN.
    pub bind_id: BindId,
    /// The binding has Basic Auth and the caller checked it: the credentials were for the
    /// edge and are removed before the app.
    pub checked_auth: bool,
    /// The bandwidth buckets of the binding's client, when it has a limit.
    pub throttle: Option<&'a Throttle>,
}

/// Edge facts for one request.
#[derive(Debug, Clone)]
pub struct Visitor<'a> {
    /// The edge's view of the request: its authority and the visitor behind it.
    pub edge: &'a EdgeRequest,
    /// How long to wait for the response head.
    pub response_timeout: Duration,
}

/// The interim writer of a public edge connection; the listener puts it in each request's
/// extensions.
pub type EdgeInterim = InterimWriter<crate::tcp::Held<tokio::net::TcpStream>>;

fn into_proxy(resp: Response<bytes::Bytes>) -> Response<ProxyBody> {
    resp.map(full)
}

/// Proxies one request through the tunnel and returns the visitor's response.
pub async fn proxy(
    mut req: Request<Incoming>,
    target: Target<'_>,
    visitor: Visitor<'_>,
) -> Response<ProxyBody> {
    if target.checked_auth {
        // The credentials were for the edge, not for the app.
        req.headers_mut().remove(http::header::AUTHORIZATION);
    }
    let is_upgrade = wants_upgrade(req.headers());
    let chunked = req.headers().contains_key(http::header::TRANSFER_ENCODING)
        && !req.headers().contains_key(http::header::CONTENT_LENGTH);
    // The head moves into STREAM_OPEN; the request keeps its body and upgrade handle.
    let mut headers = std::mem::take(req.headers_mut());
    if is_upgrade {
        strip_hop_by_hop_keep_upgrade(&mut headers);
    } else {
        strip_hop_by_hop(&mut headers);
    }
    write_forwarded_headers(&mut headers, &visitor.edge.client);
    if chunked {
        // Transfer-Encoding is hop-by-hop, but the client must know a body of unknown length
        // follows: this marker says so (the client's HTTP stack re-frames it).
        headers.insert(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    // The authority the request was routed by is the one the app sees (RFC 9112 section
    // 3.2.2: an absolute-form target replaces Host).
    if let Some(authority) = &visitor.edge.authority {
        headers.insert(http::header::HOST, authority.header_value());
    }
    let open = StreamOpen {
        bind_id: target.bind_id,
        kind: BindKind::Http,
        method: Some(req.method().as_str().to_string()),
        target: Some(
            req.uri()
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        ),
        headers: to_pairs(&headers),
        is_upgrade,
        // The app learns the visitor from X-Forwarded-For; these are for raw TCP.
        visitor_addr: None,
        server_addr: None,
    };
    let stream = match target.session.open(&open) {
        Ok(s) => s,
        Err(MuxError::TooManyStreams(_)) => return into_proxy(visitor_error::overloaded()),
        Err(MuxError::Encode(_)) => return into_proxy(visitor_error::head_too_large()),
        Err(_) => return into_proxy(visitor_error::tunnel_resuming()),
    };
    let (mut recv, send) = stream.split();
    let on_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut req));
    // HTTP/1.0 visitors must never see a 1xx (RFC 9110, section 15.2).
    let interim = req.extensions_mut().remove::<EdgeInterim>();
    let interim = interim.filter(|_| req.version() == http::Version::HTTP_11);
    let mut interim_relayed = 0;
    // For an upgrade the send half waits here: raw bytes follow only after the 101.
    let upgrade_send = if is_upgrade {
        Some(send)
    } else {
        let bucket = target.throttle.map(|t| t.to_client.clone());
        tokio::spawn(pump_request_body(req.into_body(), send, bucket));
        None
    };
    let deadline = Instant::now() + visitor.response_timeout;
    let head = loop {
        match tokio::time::timeout_at(deadline, recv.recv_head()).await {
            Err(_) => return into_proxy(visitor_error::upstream_timeout(visitor.response_timeout)),
            Ok(Err(e)) => return into_proxy(visitor_error::tunnel_client_failed(&e)),
            Ok(Ok(head)) if head.is_final => break head,
            Ok(Ok(head)) => {
                if let Some(writer) = interim
                    .as_ref()
                    .filter(|_| interim_relayed < MAX_INTERIM_HEADS)
                {
                    interim_relayed += 1;
                    // A visitor that does not read is caught by the deadline on the next head.
                    let _ = tokio::time::timeout_at(deadline, relay_interim(writer, &head)).await;
                }
            }
        }
    };
    let Ok(status) = StatusCode::from_u16(head.status) else {
        return into_proxy(visitor_error::bad_response_head("an invalid status"));
    };
    let mut resp_headers = match from_pairs(&head.headers) {
        Ok(h) => h,
        Err(e) => {
            return into_proxy(visitor_error::bad_response_head(&format!(
                "a bad header: {e}"
            )))
        }
    };
    let upgraded = match (status, on_upgrade, upgrade_send) {
        (StatusCode::SWITCHING_PROTOCOLS, Some(on_upgrade), Some(send)) => Some((on_upgrade, send)),
        (_, _, Some(mut send)) => {
            // The app declined the upgrade: the request had no body, so end it cleanly.
            let _ = send.finish();
            None
        }
        _ => None,
    };
    if let Some((on_upgrade, send)) = upgraded {
        strip_hop_by_hop_keep_upgrade(&mut resp_headers);
        let throttle = target.throttle.cloned();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let _ = match throttle {
                        // A limited client's bytes go through its throttle, and so through the
                        // buffered splice.
                        Some(t) => {
                            let io = t.wrap(hyper_util::rt::TokioIo::new(upgraded));
                            crate::tcp::splice_io(io, bytes::Bytes::new(), recv, send, None).await
                        }
                        None => super::upgraded::splice_upgraded(upgraded, recv, send, None).await,
                    };
                }
                Err(e) => tracing::debug!(error = %e, "visitor upgrade failed"),
            }
        });
        let mut resp = Response::new(super::body::empty());
        *resp.status_mut() = status;
        *resp.headers_mut() = resp_headers;
        return resp;
    }
    strip_hop_by_hop(&mut resp_headers);
    let body = match target.throttle {
        Some(t) => ThrottledBody::new(MuxBody::new(recv), t.from_client.clone()).boxed(),
        None => MuxBody::new(recv).boxed(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = resp_headers;
    resp
}

/// Writes one interim head to the visitor. 100 is left to hyper, which answers
/// `Expect: 100-continue` itself when the body is read, and 101 may only be final.
async fn relay_interim(writer: &EdgeInterim, head: &ResponseHead) {
    let Some(status) = StatusCode::from_u16(head.status)
        .ok()
        .filter(|s| s.is_informational() && !matches!(s.as_u16(), 100 | 101))
    else {
        tracing::debug!(status = head.status, "interim head not relayed");
        return;
    };
    let Ok(mut headers) = from_pairs(&head.headers) else {
        tracing::debug!(
            status = head.status,
            "interim head with a bad header not relayed"
        );
        return;
    };
    strip_hop_by_hop(&mut headers);
    match writer.send(encode_interim_head(status, &headers)).await {
        Ok(InterimOutcome::Sent) => {}
        Ok(InterimOutcome::Skipped) => {
            tracing::debug!(
                status = head.status,
                "visitor is pipelining; interim head skipped"
            );
        }
        Err(e) => tracing::debug!(error = %e, "interim head not written"),
    }
}

/// Streams the visitor's request body into the tunnel, then EOF. A visitor that goes away
/// mid-body resets the stream so the client stops waiting. With a `bucket`, each frame waits
/// for it first (the client's bandwidth limit).
async fn pump_request_body(
    mut body: Incoming,
    mut send: SendHalf,
    bucket: Option<std::sync::Arc<TokenBucket>>,
) {
    loop {
        if let Some(bucket) = &bucket {
            bucket.ready().await;
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if let Some(bucket) = &bucket {
                        bucket.take(data.len());
                    }
                    if send.send(data).await.is_err() {
                        return;
                    }
                }
                // hyper ends a body with a Content-Length by `is_end_stream`, not always by a
                // last `None`: when the answer went out before the body came in (a 404 before
                // the upload), the connection waits for the next request head and the `None`
                // never comes, so the app would wait for the end of the body forever.
                if body.is_end_stream() {
                    let _ = send.finish();
                    return;
                }
            }
            Some(Err(_)) => {
                send.reset(ErrorCode::CANCEL, "visitor aborted the request body");
                return;
            }
            None => {
                let _ = send.finish();
                return;
            }
        }
    }
}
