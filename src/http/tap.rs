//! A narrow hook on the client's HTTP answering path. An observer (the request inspector,
//! `crate::inspect`) is handed each exchange's heads and body chunks as they pass: the chunks are
//! the same `Bytes` the proxy forwards (a clone is a reference count, not a copy) and nothing
//! waits for the observer, so a streamed body (SSE, a download) reaches the visitor as before.
//! A binding without an observer pays one `Option` check per request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use super::body::ProxyBody;
use crate::proto::StreamOpen;

/// Observes the HTTP exchanges one binding answers.
pub trait Tap: Send + Sync {
    /// A request reached the binding: the observer of this one exchange, or `None` to let it
    /// pass unobserved.
    fn begin(&self, open: &StreamOpen) -> Option<Watch>;

    /// [`begin`](Self::begin) with the request shared: an observer that keeps the head keeps
    /// this reference instead of copying it (the client's answering path calls this one).
    fn begin_shared(&self, open: &Arc<StreamOpen>) -> Option<Watch> {
        self.begin(open)
    }
}

/// The observer of one exchange.
pub type Watch = Arc<dyn ExchangeTap>;

/// Which body a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The visitor's request body, on its way to the app.
    Request,
    /// The app's response body, on its way to the visitor.
    Response,
}

/// What an observer is told about one exchange, in order: body chunks of either side (the
/// request body may still be arriving while the response streams), the response head, each
/// body's end, and the outcome. Calls never block: they run on the data path.
pub trait ExchangeTap: Send + Sync {
    /// A body chunk passed (the proxy's own buffer: keep a clone, do not copy it here).
    fn chunk(&self, side: Side, data: &Bytes);
    /// Whether the observer still keeps more of this body (it has room left).
    fn wants(&self, side: Side) -> bool;
    /// A body ended: `complete` is false when it was cut (the visitor or the app went away).
    fn body_end(&self, side: Side, complete: bool);
    /// The app's final response head (or the error the client answered in its place).
    fn response_head(&self, status: StatusCode, headers: &HeaderMap);
    /// Bytes of an upgraded connection (WebSocket) moved since the last call.
    fn upgraded_bytes(&self, to_app: u64, from_app: u64);
    /// The exchange is over; `status` is the one logged (499 when the visitor left first).
    fn finish(&self, status: StatusCode);
}

/// `req` with its body observed as [`Side::Request`] (unchanged without a watch).
pub fn request(watch: Option<&Watch>, req: Request<ProxyBody>) -> Request<ProxyBody> {
    match watch {
        Some(w) => req.map(|body| Tapped::new(body, w.clone(), Side::Request).boxed()),
        None => req,
    }
}

/// Records `resp`'s head and observes its body as [`Side::Response`].
pub fn response(watch: Option<&Watch>, resp: Response<ProxyBody>) -> Response<ProxyBody> {
    match watch {
        Some(w) => {
            w.response_head(resp.status(), resp.headers());
            resp.map(|body| Tapped::new(body, w.clone(), Side::Response).boxed())
        }
        None => resp,
    }
}

/// Records a whole small response the client answers itself (a 502 naming the local port).
pub fn whole_response(watch: Option<&Watch>, resp: &Response<Bytes>) {
    if let Some(w) = watch {
        w.response_head(resp.status(), resp.headers());
        w.chunk(Side::Response, resp.body());
        w.body_end(Side::Response, true);
    }
}

/// A body that shows every data frame to a watch as it passes.
struct Tapped {
    inner: ProxyBody,
    watch: Watch,
    side: Side,
    ended: bool,
}

impl Tapped {
    fn new(inner: ProxyBody, watch: Watch, side: Side) -> Self {
        Self {
            inner,
            watch,
            side,
            ended: false,
        }
    }

    fn end(&mut self, complete: bool) {
        if !self.ended {
            self.ended = true;
            self.watch.body_end(self.side, complete);
        }
    }
}

impl Body for Tapped {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.watch.chunk(self.side, data);
                }
                // hyper stops polling a body that says it is done.
                if self.inner.is_end_stream() {
                    self.end(true);
                }
            }
            Poll::Ready(Some(Err(_))) => self.end(false),
            Poll::Ready(None) => self.end(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tapped {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // An empty body is never polled.
        if self.inner.is_end_stream() {
            return self.end(true);
        }
        // The app answered without reading the request body (a 404 or 401 before the body):
        // the visitor's body is what one wants to see then, and to replay once the app is
        // fixed. The rest is read in the background, only as far as the observer keeps it.
        if self.side == Side::Request && self.watch.wants(Side::Request) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let rest = std::mem::replace(&mut self.inner, super::body::empty());
                self.ended = true;
                runtime.spawn(read_rest(Tapped::new(
                    rest,
                    self.watch.clone(),
                    Side::Request,
                )));
                return;
            }
        }
        self.end(false);
    }
}

/// Reads a request body nobody else reads, while the observer keeps it; dropping it at the
/// end reports the body whole, or cut where the observer stopped.
async fn read_rest(mut body: Tapped) {
    while body.watch.wants(Side::Request) {
        match body.frame().await {
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}
