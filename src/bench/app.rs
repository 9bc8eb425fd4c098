//! The small local HTTP app the request-rate test calls: every request gets `200 ok`.
//! A real hyper server on a loopback socket, so both the direct and the tunnelled runs go
//! through the same HTTP/1.1 stack a user's app would.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The body every response carries: tiny, so the test measures per-request cost, not bytes.
const BODY: &[u8] = b"ok\n";

/// The running app. Dropping it stops accepting.
pub struct App {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl App {
    /// Starts the app on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                // Small responses: without this, Nagle plus delayed ACKs can add tens of
                // milliseconds to a keep-alive request and swamp what the test is measuring.
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = service_fn(|req| async move { Ok::<_, Infallible>(answer(req)) });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Ok(Self { addr, accept })
    }

    /// Where the app listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn answer(_req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
