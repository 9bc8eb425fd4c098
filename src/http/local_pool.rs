//! Keep-alive HTTP/1 connections to one local service, reused across tunnel requests.
//!
//! It replaces hyper-util's legacy pooled client for the one thing the client needs from it:
//! that client keys its pool by scheme and authority (a SipHash of the key on checkout and on
//! return), and spawns a task per request to hand the connection back; one service per pool
//! needs neither (about 4 k of the 7.8 k instructions its request path took per keep-alive
//! request, docs/benchmarks.md). What the legacy client did is kept: origin-form targets
//! (authority form for CONNECT), a `Host` from the service's address when the request has none,
//! a request sent on a reused connection the service had just closed is sent again once on a
//! new connection, idle connections are dropped after [`IDLE_TIMEOUT`] on tokio's clock, and a
//! failure to connect is told apart from a failure after (the visitor's 502 says which).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use http::uri::{Authority, Parts};
use http::{HeaderValue, Method, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::body::ProxyBody;

/// How long an unused connection is kept (hyper-util's setting before).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Unused connections kept at most: more than a busy service sees at once through one tunnel
/// (each visitor connection has one request in flight), and a bound on the sockets held.
pub const MAX_IDLE: usize = 256;
/// How long a finished exchange's connection may take to become reusable (the app's answer came
/// before the visitor's upload ended) before it is closed instead.
const RETURN_WAIT: Duration = Duration::from_secs(5);

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The service could not be reached (refused, unreachable).
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    /// The connection failed after it was made (reset, closed mid-answer, bad response).
    #[error("{0}")]
    Request(hyper::Error),
}

/// The connections to one service.
#[derive(Debug)]
pub struct ConnPool {
    addr: SocketAddr,
    /// `Host` for a request without one: the address, without port 80 (as hyper-util wrote it).
    host: HeaderValue,
    idle: Mutex<Vec<Idle>>,
    /// Whether the task dropping expired idle connections runs (started with the first one).
    reaping: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

/// A connection busy with one exchange: hand it back once the response is read whole.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<ConnPool>,
    sender: SendRequest<ProxyBody>,
}

impl ConnPool {
    /// An empty pool for the service at `addr` (`authority` is `addr` as a URI authority).
    pub fn new(addr: SocketAddr, authority: &Authority) -> Arc<Self> {
        let host = match authority.port_u16() {
            Some(80) => authority.host(),
            _ => authority.as_str(),
        };
        Arc::new(Self {
            addr,
            host: HeaderValue::from_str(host).unwrap_or_else(|_| HeaderValue::from_static("")),
            idle: Mutex::new(Vec::new()),
            reaping: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `req` (an absolute `http://` URI) on an idle connection or a new one; the lease
    /// goes back with [`Lease::give_back`] once the response body is read.
    ///
    /// `again` builds the same request anew. It is called at most once, only when a replayable
    /// request (see [`replayable`]) went out on a reused connection that the service closed or
    /// reset before answering: the service's keep-alive timer ran out while the request was on
    /// its way, which no check before sending can rule out. The request is then sent once more
    /// on a new connection, as browsers and Go's `net/http` do; anything else gets the error.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
        again: impl FnOnce() -> Option<Request<ProxyBody>>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        self.prepare(&mut req);
        let replayable = replayable(&req);
        while let Some(mut sender) = self.checkout() {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lease(sender))),
                Err(mut e) => match e.take_message() {
                    // Not sent: the service closed this idle connection just now. Another.
                    Some(back) => req = back,
                    None if replayable && closed_before_answer(e.error()) => {
                        let Some(fresh) = again() else {
                            return Err(PoolError::Request(e.into_error()));
                        };
                        tracing::debug!(service = %self.addr, "service closed a reused connection under a request; sending it again");
                        req = fresh;
                        self.prepare(&mut req);
                        break;
                    }
                    None => return Err(PoolError::Request(e.into_error())),
                },
            }
        }
        let mut sender = self.connect().await?;
        match sender.try_send_request(req).await {
            Ok(resp) => Ok((resp, self.lease(sender))),
            Err(e) => Err(PoolError::Request(e.into_error())),
        }
    }

    /// Origin form (authority form for CONNECT) and a `Host`, as hyper-util's client sent them.
    fn prepare(&self, req: &mut Request<ProxyBody>) {
        if !req.headers().contains_key(http::header::HOST) {
            req.headers_mut()
                .insert(http::header::HOST, self.host.clone());
        }
        let mut parts = Parts::default();
        if req.method() == Method::CONNECT {
            parts.authority = req.uri().authority().cloned();
        } else {
            parts.path_and_query = req.uri().path_and_query().cloned();
        }
        *req.uri_mut() = match Uri::from_parts(parts) {
            Ok(uri) if uri.path_and_query().is_none_or(|p| p.as_str() != "/") => uri,
            _ => Uri::from_static("/"),
        };
    }

    /// The most recently used idle connection that is still usable.
    fn checkout(&self) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.idle();
        while let Some(Idle { sender, since }) = idle.pop() {
            if sender.is_ready() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<ProxyBody>, PoolError> {
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(PoolError::Connect)?;
        crate::tcp::tune(&tcp);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(PoolError::Request)?;
        tokio::spawn(async move {
            // The connection ends when the service closes it or every handle is dropped.
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn lease(self: &Arc<Self>, sender: SendRequest<ProxyBody>) -> Lease {
        Lease {
            pool: self.clone(),
            sender,
        }
    }

    fn put(self: &Arc<Self>, sender: SendRequest<ProxyBody>) {
        {
            let mut idle = self.idle();
            if idle.len() >= MAX_IDLE {
                return;
            }
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
        if !self
            .reaping
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }
}

impl Lease {
    /// Returns the connection for the next request once it can take one; a connection that
    /// cannot (closed by the service, or its exchange cut short) is dropped, which closes it.
    pub fn give_back(mut self) {
        if self.sender.is_ready() {
            return self.pool.clone().put(self.sender);
        }
        if self.sender.is_closed() {
            return;
        }
        // Still finishing (the request body is still arriving): wait a little, off the path.
        tokio::spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(RETURN_WAIT, self.sender.ready()).await {
                self.pool.clone().put(self.sender);
            }
        });
    }
}

/// Whether a request may go out a second time: a method that RFC 9110 calls idempotent and
/// safe to repeat without the user asking (GET, HEAD, OPTIONS, TRACE, as Go's `net/http`), and no
/// body (one streamed from the tunnel cannot be read twice).
fn replayable(req: &Request<ProxyBody>) -> bool {
    use hyper::body::Body;
    matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) && req.body().is_end_stream()
}

/// Whether a request's failure is the connection ending before any answer: the service's
/// close (an end of stream before a whole response) or reset, not a response hyper rejected.
fn closed_before_answer(e: &hyper::Error) -> bool {
    use std::error::Error as _;
    use std::io::ErrorKind;
    e.is_incomplete_message()
        || e.source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| {
                matches!(
                    io.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                )
            })
}

/// Drops expired idle connections every [`IDLE_TIMEOUT`] while the pool lives, so an unused
/// service's sockets close even if no request comes to find them expired.
async fn reap(pool: Weak<ConnPool>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        pool.idle()
            .retain(|i| !i.sender.is_closed() && i.since.elapsed() < IDLE_TIMEOUT);
    }
}
