//! Raw bytes over a mux stream (TCP connections, upgraded WebSockets): both directions at once,
//! half-close preserved, no extra copy of received bytes.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::read_sizing::{read_once, ReadSizing};
use super::vectored;
use super::Throttle;
use crate::mux::{MuxStream, RecvHalf, SendHalf};
use crate::proto::ErrorCode;

/// Read size per TCP read; also the largest DATA payload.
pub(super) const CHUNK: usize = 64 * 1024;
/// First read size of [`splice_io`], which cannot wait for readiness without a buffer, and of
/// every read of a socket that was drained.
pub(super) const FIRST_READ: usize = 4 * 1024;

/// Room for chunk handles a splice's socket writer keeps between writes (32 bytes each): what a
/// request-sized exchange needs, not what a bulk burst grew to.
const KEPT_CHUNK_SLOTS: usize = 4;

/// Told the bytes a splice moves as they move (the request inspector shows a WebSocket's
/// traffic while it is open).
pub trait SpliceMeter: Send + Sync {
    /// `to_socket` bytes were written to the socket, `from_socket` bytes read from it.
    fn moved(&self, to_socket: u64, from_socket: u64);
}

fn meter_moved(meter: Option<&dyn SpliceMeter>, to_socket: u64, from_socket: u64) {
    if let Some(m) = meter {
        m.moved(to_socket, from_socket);
    }
}

/// Connects to `addr`, writes `preamble` (a PROXY protocol header, or nothing) and splices
/// `stream` to it; a refused connection resets the stream with REFUSED_STREAM and a reason
/// naming `what` (the local service, a server port), so the other end can tell the visitor.
pub async fn connect_and_splice(addr: SocketAddr, stream: MuxStream, what: &str, preamble: Bytes) {
    connect_and_splice_with(addr, stream, what, preamble, None).await
}

/// [`connect_and_splice`], with the connection's bytes drawn from `throttle` when given.
pub async fn connect_and_splice_with(
    addr: SocketAddr,
    mut stream: MuxStream,
    what: &str,
    preamble: Bytes,
    throttle: Option<Throttle>,
) {
    match TcpStream::connect(addr).await {
        Ok(mut tcp) => {
            super::tune(&tcp);
            if let Err(e) = tcp.write_all(&preamble).await {
                tracing::debug!(%addr, error = %e, "{what} closed before the PROXY header");
                stream.reset(ErrorCode::CANCEL, &format!("{what} {addr} closed: {e}"));
                return;
            }
            if let Err(e) = splice_with(tcp, stream, throttle).await {
                tracing::debug!(%addr, error = %e, "tcp stream ended");
            }
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "{what} refused the connection");
            stream.reset(
                ErrorCode::REFUSED_STREAM,
                &format!("{what} {addr} refused: {e}"),
            );
        }
    }
}

/// Copies `tcp` <-> `stream` until both directions ended. An EOF on either side becomes a
/// half-close on the other; an error on either side drops both, which resets the stream.
/// Returns the bytes moved (tcp -> stream, stream -> tcp).
pub async fn splice(tcp: TcpStream, stream: MuxStream) -> io::Result<(u64, u64)> {
    let (recv, send) = stream.split();
    splice_halves(tcp, Bytes::new(), recv, send, None).await
}

/// [`splice`], with the bytes drawn from `throttle` when given (a limited client's stream): the
/// throttle wraps the socket's reads and writes, so that stream takes the buffered [`splice_io`].
pub async fn splice_with(
    tcp: TcpStream,
    stream: MuxStream,
    throttle: Option<Throttle>,
) -> io::Result<(u64, u64)> {
    match throttle {
        Some(t) => {
            let (recv, send) = stream.split();
            splice_io(t.wrap(tcp), Bytes::new(), recv, send, None).await
        }
        None => splice(tcp, stream).await,
    }
}

/// [`splice`] for a stream already split into halves. `prefix` is what was read from `tcp`
/// before (the bytes an HTTP stack read past an upgrade); it goes into the stream first.
/// `meter`, if any, is told the bytes as they move.
///
/// A quiet connection holds no buffer: the read side waits for the socket to become readable
/// and only then takes a buffer, and gives it back as soon as the socket has nothing more.
/// Thousands of idle WebSockets cost their task and socket, not 64 KiB each.
pub async fn splice_halves(
    mut tcp: TcpStream,
    prefix: Bytes,
    mut mux_read: RecvHalf,
    mut mux_write: SendHalf,
    meter: Option<&dyn SpliceMeter>,
) -> io::Result<(u64, u64)> {
    let (mut tcp_read, mut tcp_write) = tcp.split();
    let upstream = async move {
        let mut total = send_prefix(&mut mux_write, prefix, meter).await?;
        let mut reads = ReadSizing::default();
        loop {
            tcp_read.readable().await?;
            let mut buf = reads.buffer();
            let offered = buf.capacity();
            match read_once(&mut tcp_read, &mut buf).await {
                // Nothing read, and the buffer is dropped while we wait. Either the readiness
                // was stale (the read cleared it) or tokio's per-poll I/O budget is spent (data
                // is there, but the read is told to wait). Yield either way: `readable()` does
                // not count against the budget, so going straight back to it would spin on a
                // socket that stays readable (tests/splice_budget.rs).
                None => tokio::task::yield_now().await,
                Some(Ok(0)) => {
                    mux_write.finish()?;
                    return Ok::<_, io::Error>(total);
                }
                Some(Ok(n)) => {
                    total += n as u64;
                    meter_moved(meter, 0, n as u64);
                    reads.filled(n, offered);
                    mux_write.send(buf.split().freeze()).await?;
                    reads.keep(buf);
                }
                Some(Err(e)) => return Err(e),
            }
        }
    };
    let downstream = async move {
        let mut total = 0u64;
        // Everything already received goes out in one vectored write: fewer system calls, and
        // the payloads are written from the buffers they arrived in.
        // The list is kept between writes (a keep-alive exchange then allocates none for it),
        // emptied as soon as the bytes are written so no payload outlives its write, and let go
        // after a bulk burst grew it.
        let mut chunks = Vec::new();
        loop {
            if !mux_read
                .recv_chunks(&mut chunks, vectored::MAX_CHUNKS, vectored::MAX_BYTES)
                .await?
            {
                break;
            }
            let n = chunks.iter().map(|c| c.len() as u64).sum::<u64>();
            total += n;
            vectored::write_all_chunks(&mut tcp_write, &chunks).await?;
            meter_moved(meter, n, 0);
            chunks.clear();
            if chunks.capacity() > KEPT_CHUNK_SLOTS {
                chunks = Vec::new();
            }
        }
        tcp_write.shutdown().await?;
        Ok::<_, io::Error>(total)
    };
    tokio::try_join!(upstream, downstream)
}

/// Sends the bytes read before the splice began. Consumes `prefix` either way: even empty, it
/// may share the allocation of a whole HTTP read buffer, which must not live as long as the
/// connection.
async fn send_prefix(
    mux_write: &mut SendHalf,
    prefix: Bytes,
    meter: Option<&dyn SpliceMeter>,
) -> io::Result<u64> {
    let len = prefix.len() as u64;
    if len > 0 {
        meter_moved(meter, 0, len);
        mux_write.send(prefix).await?;
    }
    Ok(len)
}

/// [`splice_halves`] for any byte stream that is not a plain TCP socket. Without a readiness
/// signal the read side holds a buffer while it waits; reads are sized as on a socket
/// ([`ReadSizing`]): small at first, larger only while reads fill what they are offered.
pub async fn splice_io<T>(
    io: T,
    prefix: Bytes,
    mut mux_read: RecvHalf,
    mut mux_write: SendHalf,
    meter: Option<&dyn SpliceMeter>,
) -> io::Result<(u64, u64)>
where
    T: AsyncRead + AsyncWrite + Send,
{
    let (mut io_read, mut io_write) = tokio::io::split(io);
    let upstream = async move {
        let mut total = send_prefix(&mut mux_write, prefix, meter).await?;
        // Sized as the TCP side's reads are; the buffer of the read that waits is the one held.
        let mut reads = ReadSizing::default();
        loop {
            let mut buf = reads.buffer();
            let offered = buf.capacity();
            let n = io_read.read_buf(&mut buf).await?;
            if n == 0 {
                mux_write.finish()?;
                return Ok::<_, io::Error>(total);
            }
            total += n as u64;
            meter_moved(meter, 0, n as u64);
            reads.filled(n, offered);
            mux_write.send(buf.split().freeze()).await?;
            reads.keep(buf);
        }
    };
    let downstream = async move {
        let mut total = 0u64;
        while let Some(chunk) = mux_read.recv_chunk().await? {
            total += chunk.len() as u64;
            io_write.write_all(&chunk).await?;
            meter_moved(meter, chunk.len() as u64, 0);
        }
        io_write.shutdown().await?;
        Ok::<_, io::Error>(total)
    };
    tokio::try_join!(upstream, downstream)
}
