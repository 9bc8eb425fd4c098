//! The two halves of a WebSocket carrier: one binary WebSocket message per carrier message.
//!
//! After the upgrade (tungstenite's and hyper's handshakes) the frames are read and written
//! here, by [`WsReader`] and [`WsWriter`], so that payload bytes are neither zero-filled, copied
//! into a write buffer, nor joined before a vectored write.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::sync::Mutex;

use super::reader::{Incoming, WsReader};
use super::writer::WsWriter;
use crate::rx_end::RxEnd;
use crate::{Carrier, CarrierInfo, CarrierRx, CarrierTx, CloseReason};

/// Which end of the WebSocket connection this is; the client masks what it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Client,
    Server,
}

/// Wraps an upgraded connection. `prefix` holds bytes already read past the upgrade response.
pub(super) fn into_carrier<S>(io: S, prefix: Bytes, side: Side, info: CarrierInfo) -> Carrier
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    // The receiving half answers pings and close frames itself, so it shares the writer. It is
    // an async mutex because it is held for the write of one frame.
    let writer = Arc::new(Mutex::new(WsWriter::new(write, side == Side::Client)));
    Carrier {
        tx: Box::new(WsTx {
            writer: writer.clone(),
        }),
        rx: Box::new(WsRx {
            reader: WsReader::new(read, prefix, side == Side::Server),
            writer,
            reply: None,
            state: RxEnd::Open,
        }),
        info,
    }
}

type SharedWriter<S> = Arc<Mutex<WsWriter<WriteHalf<S>>>>;

struct WsTx<S> {
    writer: SharedWriter<S>,
}

#[async_trait]
impl<S> CarrierTx for WsTx<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    async fn send(&mut self, message: Bytes) -> io::Result<()> {
        self.writer.lock().await.send(&[message]).await
    }

    async fn send_parts(&mut self, parts: Vec<Bytes>) -> io::Result<()> {
        self.writer.lock().await.send(&parts).await
    }

    async fn close(&mut self) -> io::Result<()> {
        // Sends the close frame and flushes; does not wait for the peer's answering close,
        // which the receiving half sees.
        self.close_with(1000, "").await
    }

    async fn close_with(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut writer = self.writer.lock().await;
        writer.queue_close(Some(code), reason);
        writer.flush_control().await
    }
}

/// A control frame the receiving half still has to answer.
enum Reply {
    Pong(Bytes),
    /// The peer's close: echo it, then end with this result.
    Close(Option<(u16, String)>),
}

struct WsRx<S> {
    reader: WsReader<ReadHalf<S>>,
    writer: SharedWriter<S>,
    /// Kept here while the writer is awaited, so a cancelled `recv` answers it next time.
    reply: Option<Reply>,
    state: RxEnd,
}

impl<S> WsRx<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    async fn next_message(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(reply) = &self.reply {
                let (pong, close) = match reply {
                    Reply::Pong(payload) => (Some(payload.clone()), None),
                    Reply::Close(frame) => (None, Some(frame.clone())),
                };
                let mut writer = self.writer.lock().await;
                if let Some(payload) = pong {
                    // Queued in the writer now: a cancelled flush is resumed by the next write.
                    writer.queue_pong(&payload);
                    self.reply = None;
                }
                if let Some(frame) = &close {
                    // RFC 6455 section 5.5.1: answer with the code received. Nothing is sent
                    // if we closed first, or on a second pass after a cancelled flush.
                    writer.queue_close(frame.as_ref().map(|f| f.0), "");
                }
                // An error writing the answer shows on the next send; a close ends here anyway.
                let _ = writer.flush_control().await;
                drop(writer);
                if let Some(frame) = close {
                    self.reply = None;
                    return close_result(frame);
                }
            }
            match self.reader.next().await? {
                Incoming::Message(message) => return Ok(Some(message)),
                Incoming::Ping(payload) => self.reply = Some(Reply::Pong(payload)),
                Incoming::Close(frame) => self.reply = Some(Reply::Close(frame)),
            }
        }
    }
}

/// A close with code 1000 (normal), 1001 (going away) or none is clean; any other code is
/// reported as a [`CloseReason`].
fn close_result(frame: Option<(u16, String)>) -> io::Result<Option<Bytes>> {
    match frame {
        Some((code, reason)) if code != 1000 && code != 1001 => {
            Err(CloseReason { code, reason }.into_io_error())
        }
        _ => Ok(None),
    }
}

#[async_trait]
impl<S> CarrierRx for WsRx<S>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        if let Some(end) = self.state.replay("WebSocket carrier") {
            return end;
        }
        let result = self.next_message().await;
        self.state.record(&result);
        result
    }
}
