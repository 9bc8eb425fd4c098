//! A connection that carries what admitted it (a file-descriptor permit, a per-address place)
//! for as long as the socket lives. The guard travels inside the I/O object, so it stays held
//! when hyper hands the connection over after an upgrade (a visitor's WebSocket, a carrier
//! still waiting for its HELLO) and is released only when the socket is dropped.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `io` together with the guard that admitted it.
pub struct Held<T> {
    io: T,
    _guard: Box<dyn Any + Send + Sync>,
}

impl<T> Held<T> {
    /// Wraps `io`; `guard` is dropped with it.
    pub fn new(io: T, guard: impl Any + Send + Sync) -> Self {
        Self {
            io,
            _guard: Box::new(guard),
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The connection and its guard apart (a splice that waits on the bare socket); keep the
    /// guard as long as the connection.
    pub fn into_parts(self) -> (T, Box<dyn Any + Send + Sync>) {
        (self.io, self._guard)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Held<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Held<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
