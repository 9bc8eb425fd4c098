//! Reading a socket for the upstream side of a splice: one system call per small request, and
//! no buffer held while the connection is quiet.

use std::future::Future;
use std::io;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::ReadHalf;

use super::splice::{CHUNK, FIRST_READ};

/// Polls one read of `tcp` into `buf`: `None` if the read had to wait (nothing there after all,
/// or the task's I/O budget is spent; the caller must yield before it tries again).
///
/// Unlike `try_read_buf`, a read through `AsyncRead` that comes back shorter than the room it was
/// offered clears the socket's readiness (tokio knows the kernel buffer is drained then), so
/// the next `readable()` waits instead of costing a system call that only says `WouldBlock`:
/// one `recvfrom` per small request instead of two.
pub(super) async fn read_once(
    tcp: &mut ReadHalf<'_>,
    buf: &mut BytesMut,
) -> Option<io::Result<usize>> {
    let mut read = std::pin::pin!(tcp.read_buf(buf));
    std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// The read buffer of a socket's upstream side, sized by what the reads bring.
///
/// A read that drained the socket releases the buffer: a quiet connection holds none (thousands
/// of idle WebSockets cost their task and socket, not a buffer each). A read that filled what
/// it was offered keeps the rest and asks for twice as much next time, up to [`CHUNK`], so bulk
/// transfers read in large pieces while small requests take small allocations.
pub(super) struct ReadSizing {
    want: usize,
    kept: BytesMut,
    drained: bool,
}

impl Default for ReadSizing {
    fn default() -> Self {
        ReadSizing {
            want: FIRST_READ,
            kept: BytesMut::new(),
            drained: true,
        }
    }
}

impl ReadSizing {
    /// The buffer for the next read: what is left of the last one, or a new one.
    pub(super) fn buffer(&mut self) -> BytesMut {
        let mut buf = std::mem::take(&mut self.kept);
        if buf.capacity() - buf.len() < self.want / 8 {
            // Small reads share one allocation until it is used up.
            buf = BytesMut::with_capacity(self.want);
        }
        buf
    }

    /// Records a read of `n` bytes into `offered` bytes of room. A short read drained the
    /// socket; a much shorter one also halves the next allocation, so a connection that once
    /// moved bulk goes back to small buffers for small requests.
    pub(super) fn filled(&mut self, n: usize, offered: usize) {
        self.drained = n < offered;
        if !self.drained {
            self.want = (self.want * 2).min(CHUNK);
        } else if n <= self.want / 4 {
            self.want = (self.want / 2).max(FIRST_READ);
        }
    }

    /// Takes back the rest of the buffer, unless the socket was drained.
    pub(super) fn keep(&mut self, rest: BytesMut) {
        if !self.drained {
            self.kept = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_socket_leaves_no_buffer_behind() {
        let mut reads = ReadSizing::default();
        let mut buf = reads.buffer();
        assert_eq!(buf.capacity(), FIRST_READ);
        buf.extend_from_slice(&[0; 100]);
        reads.filled(100, FIRST_READ);
        let _sent = buf.split().freeze();
        reads.keep(buf);
        assert_eq!(
            reads.kept.capacity(),
            0,
            "a quiet connection holds no buffer"
        );
    }

    #[test]
    fn full_reads_grow_to_a_chunk_and_small_ones_shrink_back() {
        let mut reads = ReadSizing::default();
        for _ in 0..10 {
            let mut buf = reads.buffer();
            let offered = buf.capacity();
            buf.resize(offered, 0);
            reads.filled(offered, offered);
            let _sent = buf.split().freeze();
            reads.keep(buf);
        }
        assert_eq!(reads.want, CHUNK);
        for _ in 0..10 {
            let mut buf = reads.buffer();
            let offered = buf.capacity();
            buf.extend_from_slice(&[0; 100]);
            reads.filled(100, offered);
            let _sent = buf.split().freeze();
            reads.keep(buf);
        }
        assert_eq!(reads.want, FIRST_READ);
    }

    #[test]
    fn small_reads_that_did_not_drain_share_one_allocation() {
        let mut reads = ReadSizing::default();
        let mut buf = reads.buffer();
        buf.resize(FIRST_READ / 2, 0);
        // Filled what it was offered as far as the reader knows: not drained.
        reads.filled(FIRST_READ / 2, FIRST_READ / 2);
        let first = buf.split().freeze();
        reads.keep(buf);
        let next = reads.buffer();
        assert_eq!(
            next.as_ptr(),
            first.as_ptr().wrapping_add(first.len()),
            "the next read goes right after the last one, in the same allocation"
        );
        assert_eq!(next.capacity(), FIRST_READ / 2);
    }
}
