//! The two halves of a QUIC carrier: one bidirectional stream of a connection.

use crate::rx_end::RxEnd;
use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use quinn::VarInt;

use super::errors::{connection_error, read_error, write_error};
use super::framing::FrameReader;
use super::gate::Gate;
use super::{ALPN_STR, CODE_DROPPED};
use crate::{Carrier, CarrierInfo, CarrierRx, CarrierTx};

/// One carrier of `conn`; `gate` is the server connection's unauthenticated limits (none on a
/// client).
pub(super) fn carrier(
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    conn: quinn::Connection,
    gate: Option<Arc<Gate>>,
) -> Carrier {
    let info = CarrierInfo {
        transport: "quic",
        peer: Some(conn.remote_address()),
        subprotocol: Some(ALPN_STR.to_owned()),
        bearer: None,
    };
    Carrier {
        tx: Box::new(QuicTx {
            stream: send,
            conn,
            closed: false,
        }),
        rx: Box::new(QuicRx {
            stream: recv,
            reader: FrameReader::default(),
            state: RxEnd::Open,
            gate,
        }),
        info,
    }
}

struct QuicTx {
    stream: quinn::SendStream,
    /// To report a dead connection from `close`, which the stream alone does not tell.
    conn: quinn::Connection,
    closed: bool,
}

#[async_trait]
impl CarrierTx for QuicTx {
    async fn send(&mut self, message: Bytes) -> io::Result<()> {
        self.send_parts(vec![message]).await
    }

    async fn send_parts(&mut self, mut parts: Vec<Bytes>) -> io::Result<()> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "QUIC carrier is closed",
            ));
        }
        // Hands the buffers themselves to quinn: no copy. Resolves once quinn has taken all of
        // them, which waits while QUIC flow control or the send window is exhausted.
        self.stream
            .write_all_chunks(&mut parts)
            .await
            .map_err(write_error)
    }

    async fn close(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        if let Some(e) = self.conn.close_reason() {
            return Err(connection_error(e));
        }
        self.closed = true;
        // Sends FIN after the queued data; quinn delivers it as long as the connection lives,
        // which the client transport and the server's connection task ensure.
        self.stream.finish().map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, "QUIC carrier was already reset")
        })
    }
}

impl Drop for QuicTx {
    fn drop(&mut self) {
        // quinn would finish a dropped stream, which the peer would take for a clean close.
        if !self.closed {
            let _ = self.stream.reset(VarInt::from_u32(CODE_DROPPED));
        }
    }
}

struct QuicRx {
    stream: quinn::RecvStream,
    reader: FrameReader,
    state: RxEnd,
    gate: Option<Arc<Gate>>,
}

impl QuicRx {
    async fn next_frame(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                return Ok(Some(frame));
            }
            // Cancel safe: quinn removes a chunk from its buffer only in the poll that returns
            // it, and the chunk is in `self.reader` before that poll ends.
            match self.stream.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => self.reader.pending = chunk.bytes,
                Ok(None) if self.reader.is_between_frames() => return Ok(None),
                Ok(None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "QUIC carrier ended in the middle of a frame",
                    ))
                }
                Err(e) => return Err(read_error(e)),
            }
        }
    }
}

#[async_trait]
impl CarrierRx for QuicRx {
    async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        if let Some(end) = self.state.replay("QUIC carrier") {
            return end;
        }
        let result = self.next_frame().await;
        self.state.record(&result);
        result
    }

    fn peer_authenticated(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.open();
        }
    }
}
