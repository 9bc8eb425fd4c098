//! Client side of HTTP expose: answer a tunnel stream with a local HTTP service (a pooled
//! keep-alive hyper client to `127.0.0.1:<port>`) or with an in-process handler.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

use super::body::{MuxBody, ProxyBody};
use super::edge::hop_by_hop::{strip_hop_by_hop_keep_upgrade, HopByHop};
use super::edge::visitor_error;
use super::headers::{from_pairs, to_pairs, to_pairs_where};
use super::interim_io::MAX_INTERIM_HEADS;
use super::local_pool::{ConnPool, PoolError};
use super::tap::{self, Tap, Watch};
use super::upgraded::splice_upgraded;
use crate::mux::{MuxStream, RecvHalf, SendHalf};
use crate::proto::{ResponseHead, StreamOpen};
use crate::tcp::SpliceMeter;

/// A boxed future answering one request.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;

/// An in-process HTTP handler (`serve(handler)`): request in, response out, no socket.
pub type Handler = Arc<dyn Fn(Request<ProxyBody>) -> HandlerFuture + Send + Sync>;

/// Who answers the tunnel's HTTP streams for one binding.
#[derive(Clone)]
pub enum LocalService {
    /// A local HTTP server on `127.0.0.1:port`.
    Port(LocalPort),
    /// An in-process handler.
    Handler(Handler),
}

impl std::fmt::Debug for LocalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalService::Port(p) => write!(f, "LocalService::Port({})", p.addr),
            LocalService::Handler(_) => f.write_str("LocalService::Handler"),
        }
    }
}

/// The HTTP service a binding forwards to (on this machine's loopback, or elsewhere on the
/// client's network), reached over pooled keep-alive connections.
#[derive(Clone)]
pub struct LocalPort {
    addr: SocketAddr,
    /// `addr` as a URI authority, made once rather than per request.
    authority: Authority,
    pool: Arc<ConnPool>,
}

impl LocalPort {
    /// A pool for `127.0.0.1:port`.
    pub fn new(port: u16) -> Self {
        Self::at(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// A pool for the service at `addr`.
    pub fn at(addr: SocketAddr) -> Self {
        let authority = Authority::try_from(addr.to_string())
            .expect("a socket address is a valid URI authority");
        Self {
            addr,
            pool: ConnPool::new(addr, &authority),
            authority,
        }
    }

    /// The service's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn head_of<B>(resp: &Response<B>, upgrade: bool) -> ResponseHead {
    let headers = if upgrade {
        let mut headers = resp.headers().clone();
        strip_hop_by_hop_keep_upgrade(&mut headers);
        to_pairs(&headers)
    } else {
        // The pairs are copied anyway: skip the hop-by-hop ones then, not in a copy of the map.
        let hop = HopByHop::of(resp.headers());
        to_pairs_where(resp.headers(), |name| !hop.contains(name))
    };
    ResponseHead {
        status: resp.status().as_u16(),
        headers,
        is_final: true,
    }
}

/// Sends a whole small response (errors) on the stream.
async fn answer_with(send: &mut SendHalf, resp: Response<bytes::Bytes>, watch: Option<&Watch>) {
    tap::whole_response(watch, &resp);
    let head = head_of(&resp, false);
    if send.send_head(&head).is_ok() && send.send(resp.into_body()).await.is_ok() {
        let _ = send.finish();
    }
}

/// Streams a response (head, then body frames, then EOF) into the tunnel.
/// Logged for a request whose visitor went away before the app answered (nginx's 499).
const VISITOR_LEFT: StatusCode = match StatusCode::from_u16(499) {
    Ok(s) => s,
    Err(_) => StatusCode::BAD_REQUEST,
};

async fn pump_response(send: &mut SendHalf, resp: Response<ProxyBody>) -> StatusCode {
    let status = resp.status();
    if send.send_head(&head_of(&resp, false)).is_err() {
        return status;
    }
    let mut body = resp.into_body();
    loop {
        // A visitor that leaves resets the stream; an app that is between events (SSE, long
        // poll) would otherwise hold the stream and its connection until it writes again.
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = send.closed() => return status,
        };
        let Some(frame) = frame else { break };
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if send.send(data).await.is_err() {
                        // The visitor is gone; dropping the body stops the local response.
                        return status;
                    }
                }
            }
            Err(e) => {
                send.reset(
                    crate::proto::ErrorCode::CANCEL,
                    &format!("local response failed: {e}"),
                );
                return status;
            }
        }
    }
    let _ = send.finish();
    status
}

fn build_request(
    open: &StreamOpen,
    body: ProxyBody,
    authority: Authority,
) -> Result<Request<ProxyBody>, String> {
    let method = Method::from_bytes(open.method.as_deref().unwrap_or("GET").as_bytes())
        .map_err(|_| "invalid method".to_string())?;
    let target = open.target.as_deref().unwrap_or("/");
    if !target.starts_with('/') {
        return Err(format!("request target must start with '/': {target:?}"));
    }
    // `http://{authority}{target}`, assembled from its parts rather than formatted and parsed.
    let uri = PathAndQuery::try_from(target)
        .ok()
        .and_then(|path| {
            Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(authority)
                .path_and_query(path)
                .build()
                .ok()
        })
        .ok_or_else(|| "invalid request target".to_string())?;
    let mut headers = from_pairs(&open.headers)?;
    // HTTP/1.1: a request has a body only with Content-Length or Transfer-Encoding. Without
    // either the body is empty, so the local server never sees a chunked GET.
    let has_body = headers.contains_key(http::header::CONTENT_LENGTH)
        || headers.remove(http::header::TRANSFER_ENCODING).is_some();
    let body = if has_body { body } else { super::body::empty() };
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

fn path_of(open: &StreamOpen) -> &str {
    let t = open.target.as_deref().unwrap_or("/");
    t.split('?').next().unwrap_or(t)
}

fn host_of(open: &StreamOpen) -> &str {
    open.header("host").unwrap_or("-")
}

/// Answers one HTTP stream opened by the server; `tap` (the request inspector) sees it pass.
pub async fn serve_stream(
    stream: MuxStream,
    open: StreamOpen,
    service: LocalService,
    tap: Option<Arc<dyn Tap>>,
) {
    // The head is shared by the log line and the inspector rather than copied for each.
    let open = Arc::new(open);
    let exchange = Exchange {
        started: Instant::now(),
        watch: tap.and_then(|t| t.begin_shared(&open)),
        open,
    };
    let open = &exchange.open;
    let watch = exchange.watch.as_ref();
    let status = match &service {
        LocalService::Port(local) if open.is_upgrade => {
            match serve_upgrade(stream, open, local, watch).await {
                Upgrade::Answered(status) => status,
                // The raw bytes get a task of their own: this request's state (its head, the
                // HTTP client, the futures above) is freed now, not when the WebSocket closes.
                Upgrade::Switched(upgraded, recv, send) => {
                    let exchange = exchange.slim();
                    tokio::spawn(async move {
                        let meter = exchange.watch.clone().map(WatchMeter);
                        let meter = meter.as_ref().map(|m| m as &dyn SpliceMeter);
                        let _ = splice_upgraded(upgraded, recv, send, meter).await;
                        exchange.end(StatusCode::SWITCHING_PROTOCOLS);
                    });
                    return;
                }
            }
        }
        LocalService::Port(local) => serve_port(stream, open, local, watch).await,
        LocalService::Handler(handler) => serve_handler(stream, open, handler, watch).await,
    };
    exchange.end(status);
}

/// What the request log line and the inspector need once an exchange is over (for a
/// WebSocket: when its connection closes).
struct Exchange {
    started: Instant,
    /// The request head: the log line's method, host and path are read from it at the end.
    open: Arc<StreamOpen>,
    watch: Option<Watch>,
}

impl Exchange {
    /// The exchange keeping only what its log line needs of the head: a WebSocket may stay
    /// open for hours, and its request headers (cookies, keys) should not stay with it.
    fn slim(self) -> Self {
        let open = StreamOpen {
            method: self.open.method.clone(),
            target: Some(path_of(&self.open).to_string()),
            headers: vec![("host".to_string(), host_of(&self.open).to_string())],
            ..StreamOpen::tcp(self.open.bind_id)
        };
        Self {
            open: Arc::new(open),
            ..self
        }
    }

    fn end(self, status: StatusCode) {
        if let Some(w) = &self.watch {
            w.finish(status);
        }
        tracing::info!(
            method = %self.open.method.as_deref().unwrap_or_default(),
            host = %host_of(&self.open),
            path = %path_of(&self.open),
            status = status.as_u16(),
            ms = self.started.elapsed().as_millis() as u64,
            "request"
        );
    }
}

/// Tells the inspector the bytes of an upgraded connection as they move; the splice's socket
/// is the app.
struct WatchMeter(Watch);

impl SpliceMeter for WatchMeter {
    fn moved(&self, to_socket: u64, from_socket: u64) {
        self.0.upgraded_bytes(to_socket, from_socket);
    }
}

/// How an upgrade request ended: answered (the app declined, or failed), or switched to raw
/// bytes that still have to be spliced.
enum Upgrade {
    Answered(StatusCode),
    Switched(Upgraded, RecvHalf, SendHalf),
}

async fn serve_port(
    stream: MuxStream,
    open: &StreamOpen,
    local: &LocalPort,
    watch: Option<&Watch>,
) -> StatusCode {
    let (recv, mut send) = stream.split();
    let mut req = match build_request(open, MuxBody::new(recv).boxed(), local.authority.clone()) {
        Ok(r) => tap::request(watch, r),
        Err(e) => return bad_request(&mut send, &e, watch).await,
    };
    // Interim responses (103 Early Hints, ...) travel as `final: false` heads while the request
    // is still waiting for its final answer.
    let (interim_tx, mut interim_rx) = tokio::sync::mpsc::unbounded_channel();
    forward_interim(&mut req, interim_tx.clone());
    // The same request again, for the pool to send once more if the service closed a reused
    // connection under it (bodiless requests only; an empty body needs no tap).
    let again = || {
        let mut req = build_request(open, super::body::empty(), local.authority.clone()).ok()?;
        forward_interim(&mut req, interim_tx);
        Some(req)
    };
    let request = local.pool.send(req, again);
    tokio::pin!(request);
    let answer = loop {
        tokio::select! {
            biased;
            Some(head) = interim_rx.recv() => {
                let _ = send.send_head(&head);
            }
            answer = &mut request => break answer,
            // The visitor left (or the server gave up with a 504): stop waiting for the app.
            () = send.closed() => return VISITOR_LEFT,
        }
    };
    // Interim heads that raced the final one still go first.
    while let Ok(head) = interim_rx.try_recv() {
        let _ = send.send_head(&head);
    }
    match answer {
        Ok((resp, lease)) => {
            let resp = resp.map(|b| b.map_err(std::io::Error::other).boxed());
            let status = pump_response(&mut send, tap::response(watch, resp)).await;
            // Reused only if the response was read whole (else the connection closes).
            lease.give_back();
            status
        }
        Err(e) => {
            let resp = local_failure(local.addr, &e);
            let status = resp.status();
            answer_with(&mut send, resp, watch).await;
            status
        }
    }
}

/// Passes the app's interim responses for `req` to `tx`; an app that sends them without end is
/// cut off after [`MAX_INTERIM_HEADS`] (the channel is bounded by that, per request).
fn forward_interim(
    req: &mut Request<ProxyBody>,
    tx: tokio::sync::mpsc::UnboundedSender<ResponseHead>,
) {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    hyper::ext::on_informational(req, move |res| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= MAX_INTERIM_HEADS {
            return;
        }
        let _ = tx.send(ResponseHead {
            status: res.status().as_u16(),
            headers: to_pairs(res.headers()),
            is_final: false,
        });
    });
}

/// What a visitor gets when the local service cannot be reached or fails mid-request.
fn local_failure(addr: SocketAddr, e: &PoolError) -> Response<bytes::Bytes> {
    tracing::debug!(service = %addr, error = %e, "local service failed");
    match e {
        PoolError::Connect(_) => visitor_error::upstream_refused(addr),
        PoolError::Request(_) => visitor_error::upstream_reset(addr),
    }
}

async fn bad_request(send: &mut SendHalf, why: &str, watch: Option<&Watch>) -> StatusCode {
    let mut resp = Response::new(bytes::Bytes::from(format!(
        "underpass: invalid request from the tunnel server: {why}\n"
    )));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    answer_with(send, resp, watch).await;
    StatusCode::BAD_REQUEST
}

/// An upgrade needs its own connection (it is consumed by the upgrade); once the app switched,
/// the connection is handed back to be spliced.
async fn serve_upgrade(
    stream: MuxStream,
    open: &StreamOpen,
    local: &LocalPort,
    watch: Option<&Watch>,
) -> Upgrade {
    let (recv, mut send) = stream.split();
    let empty = Empty::new().map_err(|never| match never {}).boxed();
    let mut req = match build_request(open, empty, local.authority.clone()) {
        Ok(r) => tap::request(watch, r),
        Err(e) => return Upgrade::Answered(bad_request(&mut send, &e, watch).await),
    };
    // A connection-level client writes the URI as given: use origin form, as a browser would.
    if let Some(origin) = req
        .uri()
        .path_and_query()
        .and_then(|p| p.as_str().parse().ok())
    {
        *req.uri_mut() = origin;
    }
    let tcp = match tokio::net::TcpStream::connect(local.addr).await {
        Ok(tcp) => tcp,
        Err(_) => {
            answer_with(
                &mut send,
                visitor_error::upstream_refused(local.addr),
                watch,
            )
            .await;
            return Upgrade::Answered(StatusCode::BAD_GATEWAY);
        }
    };
    crate::tcp::tune(&tcp);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await
    else {
        answer_with(&mut send, visitor_error::upstream_reset(local.addr), watch).await;
        return Upgrade::Answered(StatusCode::BAD_GATEWAY);
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let answer = tokio::select! {
        answer = sender.send_request(req) => answer,
        () = send.closed() => return Upgrade::Answered(VISITOR_LEFT),
    };
    let resp = match answer {
        Ok(resp) => resp,
        Err(_) => {
            answer_with(&mut send, visitor_error::upstream_reset(local.addr), watch).await;
            return Upgrade::Answered(StatusCode::BAD_GATEWAY);
        }
    };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let resp = resp.map(|b| b.map_err(std::io::Error::other).boxed());
        return Upgrade::Answered(pump_response(&mut send, tap::response(watch, resp)).await);
    }
    if let Some(w) = watch {
        w.response_head(resp.status(), resp.headers());
    }
    if send.send_head(&head_of(&resp, true)).is_err() {
        return Upgrade::Answered(StatusCode::SWITCHING_PROTOCOLS);
    }
    match hyper::upgrade::on(resp).await {
        Ok(upgraded) => Upgrade::Switched(upgraded, recv, send),
        Err(e) => {
            send.reset(
                crate::proto::ErrorCode::CANCEL,
                &format!("local upgrade failed: {e}"),
            );
            Upgrade::Answered(StatusCode::SWITCHING_PROTOCOLS)
        }
    }
}

async fn serve_handler(
    stream: MuxStream,
    open: &StreamOpen,
    handler: &Handler,
    watch: Option<&Watch>,
) -> StatusCode {
    let (recv, mut send) = stream.split();
    let req = handler_authority(open)
        .and_then(|authority| build_request(open, MuxBody::new(recv).boxed(), authority));
    let req = match req {
        Ok(r) => tap::request(watch, r),
        Err(e) => return bad_request(&mut send, &e, watch).await,
    };
    let resp = tokio::select! {
        resp = handler(req) => resp,
        () = send.closed() => return VISITOR_LEFT,
    };
    pump_response(&mut send, tap::response(watch, resp)).await
}

/// The authority a handler's request carries: the public host, as the visitor asked.
fn handler_authority(open: &StreamOpen) -> Result<Authority, String> {
    let host = match host_of(open) {
        "-" => "localhost",
        host => host,
    };
    Authority::try_from(host).map_err(|_| "invalid request target".to_string())
}

impl LocalService {
    /// Answers a request given as a stream head and a whole body without a tunnel (the request
    /// inspector's replay): built as a tunnel request is and sent to the same local port or
    /// handler. A refused or reset connection is the 502 a visitor would get; `Err` names a
    /// head that cannot be sent.
    pub async fn call(
        &self,
        open: &StreamOpen,
        body: bytes::Bytes,
    ) -> Result<Response<ProxyBody>, String> {
        match self {
            LocalService::Port(local) => {
                let build = || {
                    build_request(
                        open,
                        super::body::full(body.clone()),
                        local.authority.clone(),
                    )
                };
                let again = || build().ok();
                Ok(match local.pool.send(build()?, again).await {
                    Ok((resp, lease)) => {
                        // Pooled again once the caller has read the body (or closed).
                        lease.give_back();
                        resp.map(|b| b.map_err(std::io::Error::other).boxed())
                    }
                    Err(e) => local_failure(local.addr, &e).map(super::body::full),
                })
            }
            LocalService::Handler(handler) => {
                let authority = handler_authority(open)?;
                let req = build_request(open, super::body::full(body), authority)?;
                Ok(handler(req).await)
            }
        }
    }
}
