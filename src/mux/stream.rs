//! Stream handles: tokio `AsyncRead`/`AsyncWrite`, plus zero-copy chunk and HTTP head methods.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::driver::Shared;
use super::error::MuxError;
use super::stream_slot::RecvItem;
use crate::proto::{ErrorCode, ResponseHead};

/// One stream of a session, both directions. Dropping it without [`SendHalf::finish`] (or
/// `shutdown`) resets the stream with CANCEL.
#[derive(Debug)]
pub struct MuxStream {
    recv: RecvHalf,
    send: SendHalf,
}

/// Receiving half of a stream.
pub struct RecvHalf {
    shared: Arc<Shared>,
    id: u32,
}

/// Sending half of a stream.
pub struct SendHalf {
    shared: Arc<Shared>,
    id: u32,
}

impl std::fmt::Debug for RecvHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecvHalf({})", self.id)
    }
}

impl std::fmt::Debug for SendHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SendHalf({})", self.id)
    }
}

impl MuxStream {
    pub(crate) fn new(shared: Arc<Shared>, id: u32) -> Self {
        // The slot starts with one handle; the second half adds its own.
        shared.lock().add_handle(id);
        Self {
            recv: RecvHalf {
                shared: shared.clone(),
                id,
            },
            send: SendHalf { shared, id },
        }
    }

    /// Stream id.
    pub fn id(&self) -> u32 {
        self.recv.id
    }

    /// Splits into halves that can be used from different tasks.
    pub fn split(self) -> (RecvHalf, SendHalf) {
        (self.recv, self.send)
    }

    /// See [`RecvHalf::recv_chunk`].
    pub async fn recv_chunk(&mut self) -> io::Result<Option<Bytes>> {
        self.recv.recv_chunk().await
    }

    /// See [`RecvHalf::recv_head`].
    pub async fn recv_head(&mut self) -> io::Result<ResponseHead> {
        self.recv.recv_head().await
    }

    /// See [`SendHalf::send`].
    pub async fn send(&mut self, data: Bytes) -> io::Result<()> {
        self.send.send(data).await
    }

    /// See [`SendHalf::send_head`].
    pub fn send_head(&mut self, head: &ResponseHead) -> io::Result<()> {
        self.send.send_head(head)
    }

    /// See [`SendHalf::finish`].
    pub fn finish(&mut self) -> io::Result<()> {
        self.send.finish()
    }

    /// See [`SendHalf::reset`].
    pub fn reset(&mut self, code: ErrorCode, reason: &str) {
        self.send.reset(code, reason)
    }
}

fn reset_error(code: ErrorCode, reason: &str) -> io::Error {
    io::Error::from(MuxError::Reset(code, reason.to_string()))
}

impl RecvHalf {
    /// Stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn poll_item(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<RecvItem> {
        self.shared.lock().poll_recv(self.id, max, cx)
    }

    /// Poll form of [`recv_chunk`](Self::recv_chunk), for `Body` and `Stream` adapters.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            return match ready!(self.poll_item(cx, usize::MAX)) {
                RecvItem::Data(b) => Poll::Ready(Ok(Some(b))),
                RecvItem::Eof => Poll::Ready(Ok(None)),
                RecvItem::Head(_) => continue,
                RecvItem::Reset(code, reason) => Poll::Ready(Err(reset_error(code, &reason))),
            };
        }
    }

    /// Next chunk of bytes as received (no copy); `None` at EOF. Stray heads are skipped.
    pub async fn recv_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match poll_fn(|cx| self.poll_item(cx, usize::MAX)).await {
                RecvItem::Data(b) => return Ok(Some(b)),
                RecvItem::Eof => return Ok(None),
                RecvItem::Head(_) => continue,
                RecvItem::Reset(code, reason) => return Err(reset_error(code, &reason)),
            }
        }
    }

    /// Every chunk already received (at least one: waits for one if there is none), up to
    /// `max_chunks` chunks and about `max_bytes` bytes, appended to `out` as received (no copy),
    /// so that a writer can hand them to one vectored write. Returns `false` at EOF, with
    /// nothing appended; a reset after some chunks is reported by the next call. Stray heads
    /// are skipped.
    pub async fn recv_chunks(
        &mut self,
        out: &mut Vec<Bytes>,
        max_chunks: usize,
        max_bytes: usize,
    ) -> io::Result<bool> {
        let first = out.len();
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            let mut taken = 0;
            loop {
                let got_some = out.len() > first;
                match st.poll_recv(self.id, usize::MAX, cx) {
                    Poll::Ready(RecvItem::Data(b)) => {
                        taken += b.len();
                        out.push(b);
                        if taken >= max_bytes || out.len() - first >= max_chunks {
                            return Poll::Ready(Ok(true));
                        }
                    }
                    Poll::Ready(RecvItem::Head(_)) => {}
                    Poll::Ready(RecvItem::Eof) => return Poll::Ready(Ok(got_some)),
                    Poll::Ready(RecvItem::Reset(code, reason)) if !got_some => {
                        return Poll::Ready(Err(reset_error(code, &reason)))
                    }
                    Poll::Ready(RecvItem::Reset(..)) => return Poll::Ready(Ok(true)),
                    Poll::Pending if got_some => return Poll::Ready(Ok(true)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await
    }

    /// Next STREAM_RESPONSE_HEAD (interim or final).
    pub async fn recv_head(&mut self) -> io::Result<ResponseHead> {
        match poll_fn(|cx| self.poll_item(cx, 0)).await {
            RecvItem::Head(h) => Ok(h),
            RecvItem::Data(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "peer sent data before the response head",
            )),
            RecvItem::Eof => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended before a response head",
            )),
            RecvItem::Reset(code, reason) => Err(reset_error(code, &reason)),
        }
    }
}

impl SendHalf {
    /// Stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let cap = ready!(self.shared.lock().poll_send_capacity(self.id, cx));
        Poll::Ready(cap.map_err(io::Error::from))
    }

    /// Sends bytes without copying them, waiting for credit as needed.
    pub async fn send(&mut self, mut data: Bytes) -> io::Result<()> {
        while !data.is_empty() {
            let cap = poll_fn(|cx| self.poll_capacity(cx)).await?;
            let chunk = data.split_to(cap.min(data.len()));
            self.shared.lock().push_data(self.id, chunk)?;
        }
        Ok(())
    }

    /// Sends a STREAM_RESPONSE_HEAD.
    pub fn send_head(&mut self, head: &ResponseHead) -> io::Result<()> {
        Ok(self.shared.lock().send_head(self.id, head)?)
    }

    /// Half-closes: EOF follows everything already queued.
    pub fn finish(&mut self) -> io::Result<()> {
        Ok(self.shared.lock().close_write(self.id)?)
    }

    /// Resets the stream both ways.
    pub fn reset(&mut self, code: ErrorCode, reason: &str) {
        self.shared.lock().reset_stream(self.id, code, reason)
    }

    /// Resolves once the stream was reset or the session ended: nothing sent from now on would
    /// arrive. Race it against a slow source so the source is dropped when the reader leaves.
    /// Not meant to be awaited while a [`send`](Self::send) of the same half is pending.
    pub async fn closed(&mut self) {
        poll_fn(|cx| self.shared.lock().poll_send_closed(self.id, cx)).await
    }
}

impl Drop for RecvHalf {
    fn drop(&mut self) {
        self.shared.lock().drop_handle(self.id);
    }
}

impl Drop for SendHalf {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.abandon_writer(self.id);
        st.drop_handle(self.id);
    }
}

impl AsyncRead for RecvHalf {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match ready!(self.poll_item(cx, buf.remaining())) {
                RecvItem::Data(b) => {
                    buf.put_slice(&b);
                    return Poll::Ready(Ok(()));
                }
                RecvItem::Head(_) => continue,
                RecvItem::Eof => return Poll::Ready(Ok(())),
                RecvItem::Reset(code, reason) => {
                    return Poll::Ready(Err(reset_error(code, &reason)))
                }
            }
        }
    }
}

impl AsyncWrite for SendHalf {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let cap = ready!(self.poll_capacity(cx))?;
        let n = cap.min(buf.len());
        self.shared
            .lock()
            .push_data(self.id, Bytes::copy_from_slice(&buf[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Queued frames are the writer task's job; credit already bounds what is queued.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.finish())
    }
}

impl AsyncRead for MuxStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.send).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.send).poll_shutdown(cx)
    }
}
