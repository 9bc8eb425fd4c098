//! A response body that waits for a bandwidth bucket before each frame, so the answers of a
//! rate-limited tunnel client reach visitors at its rate (see [`crate::tcp::Throttle`]). The
//! frames pass unchanged; while the body waits, the mux stream is not read and the client gets
//! no credit back.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::tcp::TokenBucket;

/// `B`, with every data frame counted against `bucket` and delayed while it is in debt.
#[derive(Debug)]
pub struct ThrottledBody<B> {
    inner: B,
    bucket: Arc<TokenBucket>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> ThrottledBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, bucket: Arc<TokenBucket>) -> Self {
        Self {
            inner,
            bucket,
            sleep: None,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for ThrottledBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        ready!(this.bucket.poll_ready(&mut this.sleep, cx));
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
            this.bucket.take(data.len());
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
