//! The two halves of a WebSocket carrier: one binary WebSocket message per carrier message.

use crate::rx_end::RxEnd;
use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{Carrier, CarrierInfo, CarrierRx, CarrierTx, CloseReason, MAX_MESSAGE_BYTES};

pub(super) fn into_carrier<S>(ws: WebSocketStream<S>, info: CarrierInfo) -> Carrier
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    Carrier {
        tx: Box::new(WsTx { sink }),
        rx: Box::new(WsRx {
            stream,
            state: RxEnd::Open,
        }),
        info,
    }
}

struct WsTx<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
}

#[async_trait]
impl<S> CarrierTx for WsTx<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn send(&mut self, message: Bytes) -> io::Result<()> {
        // SinkExt::send flushes, so the message is on the socket when this returns.
        self.sink
            .send(Message::Binary(message))
            .await
            .map_err(io_error)
    }

    async fn close(&mut self) -> io::Result<()> {
        // Sends the close frame and flushes; does not wait for the peer's answering close,
        // which the receiving half sees.
        match self.sink.close().await {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn close_with(&mut self, code: u16, reason: &str) -> io::Result<()> {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        match self.sink.send(Message::Close(Some(frame))).await {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }
}

struct WsRx<S> {
    stream: SplitStream<WebSocketStream<S>>,
    state: RxEnd,
}

impl<S> WsRx<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn next_message(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Binary(message))) => return Ok(Some(message)),
                // Pongs to pings were queued by tungstenite and go out with the next read.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message on a binary carrier",
                    ))
                }
                Some(Ok(Message::Close(Some(frame))))
                    if !matches!(frame.code, CloseCode::Normal | CloseCode::Away) =>
                {
                    return Err(CloseReason {
                        code: frame.code.into(),
                        reason: frame.reason.as_str().to_owned(),
                    }
                    .into_io_error())
                }
                // tokio-tungstenite ends the stream only after a completed close handshake.
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Err(e)) => return Err(io_error(e)),
            }
        }
    }
}

#[async_trait]
impl<S> CarrierRx for WsRx<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        if let Some(end) = self.state.replay("WebSocket carrier") {
            return end;
        }
        // Cancel safe: `next` keeps partial frames inside the WebSocketStream, and a message is
        // only taken out of it in the poll that returns it; the state changes only after that.
        let result = self.next_message().await;
        self.state.record(&result);
        result
    }
}

/// Turns a tungstenite error on an open carrier into the `io::Error` the mux sees.
pub(super) fn io_error(err: WsError) -> io::Error {
    match err {
        WsError::Io(e) => e,
        WsError::Capacity(e) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket message over the {MAX_MESSAGE_BYTES}-byte limit: {e}"),
        ),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => io::Error::new(
            io::ErrorKind::ConnectionReset,
            "peer dropped the WebSocket connection without closing it",
        ),
        WsError::Protocol(ProtocolError::SendAfterClosing)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket carrier is closed")
        }
        WsError::Protocol(e) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket protocol error: {e}"),
        ),
        WsError::Utf8(e) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket UTF-8 error: {e}"),
        ),
        WsError::AttackAttempt => io::Error::new(
            io::ErrorKind::InvalidData,
            "WebSocket attack attempt detected",
        ),
        other => io::Error::other(format!("WebSocket error: {other}")),
    }
}
