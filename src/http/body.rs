//! HTTP bodies that stream straight from a mux stream, and the boxed body type the proxy uses.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};

use crate::mux::RecvHalf;

/// Body type of every response the server and client build.
pub type ProxyBody = BoxBody<Bytes, io::Error>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body read chunk by chunk from a stream's receive half: each DATA payload becomes one body
/// frame without copying, and credit goes back as hyper consumes it.
#[derive(Debug)]
pub struct MuxBody {
    recv: Option<RecvHalf>,
}

impl MuxBody {
    /// Streams the rest of `recv` as a body.
    pub fn new(recv: RecvHalf) -> Self {
        Self { recv: Some(recv) }
    }

    /// Boxed, for [`ProxyBody`].
    pub fn boxed(self) -> ProxyBody {
        BodyExt::boxed(self)
    }
}

impl Body for MuxBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let Some(recv) = self.recv.as_mut() else {
            return Poll::Ready(None);
        };
        match recv.poll_chunk(cx) {
            Poll::Ready(Ok(Some(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(Ok(None)) => {
                // Keep the half until the body is dropped so the stream is not cancelled early.
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                self.recv = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
