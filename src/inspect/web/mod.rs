//! The inspector's own listener (default `127.0.0.1:4040`): the web page, the ngrok-compatible
//! API and the live event stream, behind the Host and Origin checks of [`guard`].

mod api;
mod assets;
mod events;
mod guard;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Response};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Inspector;
use crate::http::body::ProxyBody;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

/// Ports tried after a taken default port (4040, 4041, ... as ngrok does) before any free one.
const NEXT_PORTS: u16 = 10;

struct Web {
    inspector: Inspector,
    addr: SocketAddr,
}

/// A running inspector listener; stops when dropped.
#[derive(Debug)]
pub struct InspectServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl InspectServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open: `http://127.0.0.1:4040` (loopback for an all-interfaces listener).
    pub fn url(&self) -> String {
        let mut shown = self.addr;
        if shown.ip().is_unspecified() {
            shown.set_ip(match shown {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{shown}")
    }
}

impl Drop for InspectServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `inspector` on exactly `addr` (port 0: any free port).
pub async fn serve(inspector: Inspector, addr: SocketAddr) -> std::io::Result<InspectServer> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for the inspector: {e}"),
        )
    })?;
    Ok(start(inspector, listener))
}

/// Serves `inspector` on `addr`, or when that port is taken on one of the next ten, or on any
/// free port of the same address: a second client on the machine still gets an inspector.
pub async fn serve_first_free(
    inspector: Inspector,
    addr: SocketAddr,
) -> std::io::Result<InspectServer> {
    if addr.port() != 0 {
        for offset in 0..NEXT_PORTS {
            let Some(port) = addr.port().checked_add(offset) else {
                break;
            };
            let mut at = addr;
            at.set_port(port);
            if let Ok(listener) = TcpListener::bind(at).await {
                return Ok(start(inspector, listener));
            }
        }
    }
    let mut any = addr;
    any.set_port(0);
    serve(inspector, any).await
}

fn start(inspector: Inspector, listener: TcpListener) -> InspectServer {
    let addr = listener.local_addr().unwrap_or_else(|_| {
        // Only a closed socket has no address; report the unspecified one.
        SocketAddr::from(([0, 0, 0, 0], 0))
    });
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the request inspector listens beyond loopback: anyone who reaches {addr} sees every \
             request and response through the tunnel (cookies, Authorization headers) and can \
             replay them"
        );
    }
    let web = Arc::new(Web { inspector, addr });
    let task = tokio::spawn(accept_loop(listener, web));
    InspectServer { addr, task }
}

async fn accept_loop(listener: TcpListener, web: Arc<Web>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends pass; do not spin on them.
                tracing::debug!(error = %e, "inspector accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let web = web.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let web = web.clone();
                async move { Ok::<_, Infallible>(secured(api::handle(web, req).await)) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
            drop(permit);
        });
    }
}

/// Headers every answer carries: no framing by other pages (a hidden Replay button), no
/// scripts or styles from anywhere else, nothing cached, no referrer leaking the page.
fn secured(mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
