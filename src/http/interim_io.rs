//! Interim (1xx) responses on a hyper HTTP/1.1 server connection.
//!
//! hyper 1.x's HTTP/1 server has no API to send an informational response before the final one
//! (it only writes its own `100 Continue`), yet a proxy must relay an app's `103 Early Hints` or
//! `102 Processing` to the visitor. [`InterimIo`] wraps the connection's socket and hands out an
//! [`InterimWriter`] that writes a whole 1xx head straight onto the socket while the service is
//! still waiting for its final answer.
//!
//! Byte order is what makes this safe. hyper calls `poll_flush` on the socket only once its own
//! write buffer is empty, so "the last thing hyper did was a successful flush" means none of its
//! bytes are pending. An interim head is accepted only in that state (otherwise it is dropped: the
//! visitor is pipelining and has not read the previous answer yet); once accepted, it is queued
//! in front of anything hyper writes later, so the two never interleave.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Interim heads relayed per request at most, at either end of the tunnel: neither an app nor a
/// tunnel client can keep a stream busy with an endless run of 1xx answers.
pub const MAX_INTERIM_HEADS: usize = 16;

/// What became of an interim head handed to [`InterimWriter::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterimOutcome {
    /// The whole head reached the socket.
    Sent,
    /// hyper still had unwritten bytes of an earlier answer, so the head was not sent.
    Skipped,
}

struct Shared<T> {
    io: T,
    /// Interim bytes that go out before anything hyper writes next.
    queued: Bytes,
    /// hyper wrote since its last successful flush, so it may still hold unsent bytes.
    hyper_unflushed: bool,
}

impl<T: AsyncWrite + Unpin> Shared<T> {
    fn poll_drain_queue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.queued.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &self.queued))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.queued.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

/// A socket that hyper serves and that [`InterimWriter`]s can slip 1xx heads into.
pub struct InterimIo<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// Writes interim heads onto the connection of one [`InterimIo`]; cloned into each request.
pub struct InterimWriter<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

impl<T> Clone for InterimWriter<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

fn lock<T>(shared: &Mutex<Shared<T>>) -> MutexGuard<'_, Shared<T>> {
    // Every holder only does non-blocking polls under the lock; a poisoned lock still guards
    // consistent state.
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<T> InterimIo<T> {
    /// Wraps `io`; the writer shares it.
    pub fn new(io: T) -> (Self, InterimWriter<T>) {
        let shared = Arc::new(Mutex::new(Shared {
            io,
            queued: Bytes::new(),
            hyper_unflushed: false,
        }));
        (
            Self {
                shared: shared.clone(),
            },
            InterimWriter { shared },
        )
    }
}

impl<T> InterimIo<T> {
    /// The socket itself, once every writer is gone and nothing is queued (after an upgrade the
    /// raw bytes can then go straight to the socket); otherwise `Err(self)`.
    pub fn into_inner(self) -> Result<T, Self> {
        let shared = Arc::try_unwrap(self.shared)
            .map_err(|shared| Self { shared })?
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shared.queued.is_empty() {
            Ok(shared.io)
        } else {
            Err(Self {
                shared: Arc::new(Mutex::new(shared)),
            })
        }
    }
}

impl<T: AsyncWrite + Unpin> InterimWriter<T> {
    /// Writes one interim head unless hyper has unsent bytes of an earlier answer. Call it only
    /// while the request's final response has not been returned to hyper.
    pub async fn send(&self, head: Bytes) -> io::Result<InterimOutcome> {
        {
            let mut shared = lock(&self.shared);
            if shared.hyper_unflushed || !shared.queued.is_empty() {
                return Ok(InterimOutcome::Skipped);
            }
            shared.queued = head;
        }
        std::future::poll_fn(|cx| {
            let mut shared = lock(&self.shared);
            std::task::ready!(shared.poll_drain_queue(cx))?;
            Pin::new(&mut shared.io).poll_flush(cx)
        })
        .await?;
        Ok(InterimOutcome::Sent)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for InterimIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for InterimIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(&self.shared);
        shared.hyper_unflushed = true;
        std::task::ready!(shared.poll_drain_queue(cx))?;
        Pin::new(&mut shared.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut shared = lock(&self.shared);
        shared.hyper_unflushed = true;
        std::task::ready!(shared.poll_drain_queue(cx))?;
        Pin::new(&mut shared.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        lock(&self.shared).io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        std::task::ready!(shared.poll_drain_queue(cx))?;
        let flushed = std::task::ready!(Pin::new(&mut shared.io).poll_flush(cx));
        if flushed.is_ok() {
            shared.hyper_unflushed = false;
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = lock(&self.shared);
        std::task::ready!(shared.poll_drain_queue(cx))?;
        Pin::new(&mut shared.io).poll_shutdown(cx)
    }
}

/// Serialises an HTTP/1.1 interim head: status line, headers, blank line.
pub fn encode_interim_head(status: StatusCode, headers: &HeaderMap) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + headers.len() * 48);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(
        status
            .canonical_reason()
            .unwrap_or("Informational")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::future::Future;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn early_hints() -> Bytes {
        let mut headers = HeaderMap::new();
        headers.insert("link", HeaderValue::from_static("</a.css>; rel=preload"));
        encode_interim_head(StatusCode::EARLY_HINTS, &headers)
    }

    #[test]
    fn an_interim_head_is_a_status_line_headers_and_a_blank_line() {
        assert_eq!(
            &early_hints()[..],
            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn an_interim_head_goes_out_before_what_hyper_writes_next() {
        let (near, mut far) = tokio::io::duplex(1024);
        let (mut io, writer) = InterimIo::new(near);
        assert_eq!(
            writer.send(early_hints()).await.unwrap(),
            InterimOutcome::Sent
        );
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        io.flush().await.unwrap();
        drop((io, writer));
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert!(got.starts_with(b"HTTP/1.1 103 Early Hints\r\n"));
        assert!(got.ends_with(b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"));
    }

    #[test]
    fn the_socket_comes_back_only_when_no_writer_is_left() {
        let (near, _far) = tokio::io::duplex(16);
        let (io, writer) = InterimIo::new(near);
        let io = io
            .into_inner()
            .expect_err("a writer still shares the socket");
        drop(writer);
        assert!(io.into_inner().is_ok());
    }

    #[tokio::test]
    async fn an_interim_head_is_skipped_while_hyper_has_unflushed_bytes() {
        let (near, mut far) = tokio::io::duplex(1024);
        let (mut io, writer) = InterimIo::new(near);
        io.write_all(b"tail of an earlier answer").await.unwrap();
        assert_eq!(
            writer.send(early_hints()).await.unwrap(),
            InterimOutcome::Skipped
        );
        io.flush().await.unwrap();
        assert_eq!(
            writer.send(early_hints()).await.unwrap(),
            InterimOutcome::Sent
        );
        drop((io, writer));
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert!(got.starts_with(b"tail of an earlier answer"));
        assert!(got.ends_with(&early_hints()));
    }

    #[tokio::test]
    async fn a_half_written_interim_head_finishes_before_hyper_bytes() {
        // A 16-byte pipe forces the head out in pieces; hyper's write must wait for all of it.
        let (near, mut far) = tokio::io::duplex(16);
        let (mut io, writer) = InterimIo::new(near);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.unwrap();
            got
        });
        let head = early_hints();
        {
            let send = writer.send(head.clone());
            tokio::pin!(send);
            // Poll the interim write once so it stops part-way, then let "hyper" write.
            std::future::poll_fn(|cx| {
                assert!(send.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            let hyper = async {
                io.write_all(b"FINAL").await.unwrap();
                io.flush().await.unwrap();
            };
            let (sent, ()) = tokio::join!(send, hyper);
            assert_eq!(sent.unwrap(), InterimOutcome::Sent);
        }
        drop((io, writer));
        let got = reader.await.unwrap();
        assert_eq!(&got[..head.len()], &head[..]);
        assert_eq!(&got[head.len()..], b"FINAL");
    }
}
