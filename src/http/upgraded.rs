//! Raw bytes after an HTTP upgrade (WebSocket): the connection hyper hands over is taken back
//! down to its TCP socket, so the splice waits on the socket itself and holds no buffer while
//! the connection is quiet, and hyper's wrappers and buffers are gone.

use std::io;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::interim_io::InterimIo;
use crate::mux::{RecvHalf, SendHalf};
use crate::tcp::{splice_halves, splice_io, Held, SpliceMeter};

/// Splices an upgraded connection onto a stream until both directions ended. The public edge
/// serves visitors over [`InterimIo`]; the client dials its local service as a plain socket.
/// Anything else (never expected) is spliced through its generic reader and writer. `meter`, if
/// any, is told the bytes as they move.
pub async fn splice_upgraded(
    upgraded: Upgraded,
    recv: RecvHalf,
    send: SendHalf,
    meter: Option<&dyn SpliceMeter>,
) -> io::Result<(u64, u64)> {
    let upgraded = match upgraded.downcast::<TokioIo<InterimIo<Held<TcpStream>>>>() {
        Ok(parts) => {
            return match parts.io.into_inner().into_inner() {
                Ok(held) => {
                    // The admission (fd permit, per-address place) lives as long as the splice.
                    let (tcp, _admission) = held.into_parts();
                    splice_halves(tcp, parts.read_buf, recv, send, meter).await
                }
                Err(edge) => splice_io(edge, parts.read_buf, recv, send, meter).await,
            };
        }
        Err(upgraded) => upgraded,
    };
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => splice_halves(parts.io.into_inner(), parts.read_buf, recv, send, meter).await,
        Err(upgraded) => splice_io(TokioIo::new(upgraded), Bytes::new(), recv, send, meter).await,
    }
}
