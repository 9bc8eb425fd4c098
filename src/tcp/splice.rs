//! Raw bytes over a mux stream (TCP connections, upgraded WebSockets): both directions at once,
//! half-close preserved, no extra copy of received bytes.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Throttle;
use crate::mux::{MuxStream, RecvHalf, SendHalf};
use crate::proto::ErrorCode;

/// Read size per TCP read; also the largest DATA payload.
const CHUNK: usize = 64 * 1024;

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
    match tokio::net::TcpStream::connect(addr).await {
        Ok(mut tcp) => {
            super::tune(&tcp);
            if let Err(e) = tcp.write_all(&preamble).await {
                tracing::debug!(%addr, error = %e, "{what} closed before the PROXY header");
                stream.reset(ErrorCode::CANCEL, &format!("{what} {addr} closed: {e}"));
                return;
            }
            let spliced = match throttle {
                Some(t) => splice(t.wrap(tcp), stream).await,
                None => splice(tcp, stream).await,
            };
            if let Err(e) = spliced {
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

/// Copies `io` <-> `stream` until both directions ended. An EOF on either side becomes a
/// half-close on the other; an error on either side drops both, which resets the stream.
/// Returns the bytes moved (tcp -> stream, stream -> tcp).
pub async fn splice<T>(io: T, stream: MuxStream) -> io::Result<(u64, u64)>
where
    T: AsyncRead + AsyncWrite + Send,
{
    let (recv, send) = stream.split();
    splice_halves(io, recv, send).await
}

/// [`splice`] for a stream already split into halves.
pub async fn splice_halves<T>(
    io: T,
    mut mux_read: RecvHalf,
    mut mux_write: SendHalf,
) -> io::Result<(u64, u64)>
where
    T: AsyncRead + AsyncWrite + Send,
{
    let (mut tcp_read, mut tcp_write) = tokio::io::split(io);
    let upstream = async move {
        let mut total = 0u64;
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            // Small reads share one allocation until it is used up.
            if buf.capacity() - buf.len() < CHUNK / 8 {
                buf.reserve(CHUNK);
            }
            let n = tcp_read.read_buf(&mut buf).await?;
            if n == 0 {
                mux_write.finish()?;
                return Ok::<_, io::Error>(total);
            }
            total += n as u64;
            mux_write.send(buf.split().freeze()).await?;
        }
    };
    let downstream = async move {
        let mut total = 0u64;
        while let Some(chunk) = mux_read.recv_chunk().await? {
            total += chunk.len() as u64;
            tcp_write.write_all(&chunk).await?;
        }
        tcp_write.shutdown().await?;
        Ok::<_, io::Error>(total)
    };
    tokio::try_join!(upstream, downstream)
}
