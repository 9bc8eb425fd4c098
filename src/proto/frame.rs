//! The frame enum: one variant per frame type, each holding exactly what its payload carries.

use bytes::Bytes;

use super::messages::*;
use super::tickets::{CarrierTicket, TicketRequest};
use super::ErrorCode;

/// Frame type codes from PROTOCOL.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// 0x01
    Hello = 0x01,
    /// 0x02
    HelloOk = 0x02,
    /// 0x03
    Bind = 0x03,
    /// 0x04
    BindOk = 0x04,
    /// 0x05
    BindErr = 0x05,
    /// 0x06
    Unbind = 0x06,
    /// 0x07
    UnbindOk = 0x07,
    /// 0x08
    UnbindErr = 0x08,
    /// 0x09
    Join = 0x09,
    /// 0x0A
    JoinOk = 0x0A,
    /// 0x0B
    JoinErr = 0x0B,
    /// 0x10
    StreamOpen = 0x10,
    /// 0x12
    Data = 0x12,
    /// 0x13
    Eof = 0x13,
    /// 0x14
    Reset = 0x14,
    /// 0x15
    Window = 0x15,
    /// 0x16
    ResponseHead = 0x16,
    /// 0x20
    Ping = 0x20,
    /// 0x21
    Pong = 0x21,
    /// 0x30
    GoAway = 0x30,
    /// 0x40 (extension range)
    BindRevoked = 0x40,
    /// 0x41 (extension range, underpass)
    TicketRequest = 0x41,
    /// 0x42 (extension range, underpass)
    Ticket = 0x42,
}

impl FrameType {
    /// Maps a wire byte to a known type.
    pub fn from_u8(code: u8) -> Option<Self> {
        use FrameType::*;
        Some(match code {
            0x01 => Hello,
            0x02 => HelloOk,
            0x03 => Bind,
            0x04 => BindOk,
            0x05 => BindErr,
            0x06 => Unbind,
            0x07 => UnbindOk,
            0x08 => UnbindErr,
            0x09 => Join,
            0x0A => JoinOk,
            0x0B => JoinErr,
            0x10 => StreamOpen,
            0x12 => Data,
            0x13 => Eof,
            0x14 => Reset,
            0x15 => Window,
            0x16 => ResponseHead,
            0x20 => Ping,
            0x21 => Pong,
            0x30 => GoAway,
            0x40 => BindRevoked,
            0x41 => TicketRequest,
            0x42 => Ticket,
            _ => return None,
        })
    }

    /// True for 0x40-0x7F: frames a receiver that does not know them skips.
    pub fn is_extension(code: u8) -> bool {
        (0x40..=0x7F).contains(&code)
    }

    /// Protocol name, for errors and logs.
    pub fn name(self) -> &'static str {
        use FrameType::*;
        match self {
            Hello => "HELLO",
            HelloOk => "HELLO_OK",
            Bind => "BIND",
            BindOk => "BIND_OK",
            BindErr => "BIND_ERR",
            Unbind => "UNBIND",
            UnbindOk => "UNBIND_OK",
            UnbindErr => "UNBIND_ERR",
            Join => "JOIN",
            JoinOk => "JOIN_OK",
            JoinErr => "JOIN_ERR",
            StreamOpen => "STREAM_OPEN",
            Data => "DATA",
            Eof => "EOF",
            Reset => "RESET",
            Window => "WINDOW",
            ResponseHead => "STREAM_RESPONSE_HEAD",
            Ping => "PING",
            Pong => "PONG",
            GoAway => "GOAWAY",
            BindRevoked => "BIND_REVOKED",
            TicketRequest => "TICKET_REQUEST",
            Ticket => "TICKET",
        }
    }
}

/// One decoded frame. Session-level frames live on stream 0; stream frames carry their id.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// HELLO.
    Hello(Hello),
    /// HELLO_OK.
    HelloOk(HelloOk),
    /// BIND.
    Bind(Bind),
    /// BIND_OK.
    BindOk(BindOk),
    /// BIND_ERR.
    BindErr(BindErr),
    /// UNBIND.
    Unbind(BindRef),
    /// UNBIND_OK.
    UnbindOk(BindRef),
    /// UNBIND_ERR.
    UnbindErr(UnbindErr),
    /// JOIN.
    Join(Join),
    /// JOIN_OK.
    JoinOk(JoinOk),
    /// JOIN_ERR.
    JoinErr(JoinErr),
    /// STREAM_OPEN.
    StreamOpen {
        /// New stream id.
        stream_id: u32,
        /// What the stream is for.
        open: StreamOpen,
    },
    /// DATA: payload bytes, a zero-copy slice of the received message.
    Data {
        /// Stream.
        stream_id: u32,
        /// Payload.
        data: Bytes,
    },
    /// EOF: the sender's half-close.
    Eof {
        /// Stream.
        stream_id: u32,
    },
    /// RESET: the stream is gone both ways.
    Reset {
        /// Stream.
        stream_id: u32,
        /// Why.
        code: ErrorCode,
        /// Human-readable reason.
        reason: String,
    },
    /// WINDOW: credit returned (stream 0 = session credit).
    Window {
        /// Stream, or 0 for the session.
        stream_id: u32,
        /// Credit increment.
        increment: u32,
    },
    /// STREAM_RESPONSE_HEAD.
    ResponseHead {
        /// Stream.
        stream_id: u32,
        /// The head.
        head: ResponseHead,
    },
    /// PING with its nonce.
    Ping(u64),
    /// PONG echoing the nonce.
    Pong(u64),
    /// GOAWAY.
    GoAway(GoAway),
    /// BIND_REVOKED.
    BindRevoked(BindRevoked),
    /// TICKET_REQUEST *(underpass)*.
    TicketRequest(TicketRequest),
    /// TICKET *(underpass)*.
    Ticket(CarrierTicket),
}

impl Frame {
    /// Wire type of this frame.
    pub fn frame_type(&self) -> FrameType {
        use FrameType as T;
        match self {
            Frame::Hello(_) => T::Hello,
            Frame::HelloOk(_) => T::HelloOk,
            Frame::Bind(_) => T::Bind,
            Frame::BindOk(_) => T::BindOk,
            Frame::BindErr(_) => T::BindErr,
            Frame::Unbind(_) => T::Unbind,
            Frame::UnbindOk(_) => T::UnbindOk,
            Frame::UnbindErr(_) => T::UnbindErr,
            Frame::Join(_) => T::Join,
            Frame::JoinOk(_) => T::JoinOk,
            Frame::JoinErr(_) => T::JoinErr,
            Frame::StreamOpen { .. } => T::StreamOpen,
            Frame::Data { .. } => T::Data,
            Frame::Eof { .. } => T::Eof,
            Frame::Reset { .. } => T::Reset,
            Frame::Window { .. } => T::Window,
            Frame::ResponseHead { .. } => T::ResponseHead,
            Frame::Ping(_) => T::Ping,
            Frame::Pong(_) => T::Pong,
            Frame::GoAway(_) => T::GoAway,
            Frame::BindRevoked(_) => T::BindRevoked,
            Frame::TicketRequest(_) => T::TicketRequest,
            Frame::Ticket(_) => T::Ticket,
        }
    }

    /// Stream the frame belongs to (0 for session frames).
    pub fn stream_id(&self) -> u32 {
        match self {
            Frame::StreamOpen { stream_id, .. }
            | Frame::Data { stream_id, .. }
            | Frame::Eof { stream_id }
            | Frame::Reset { stream_id, .. }
            | Frame::Window { stream_id, .. }
            | Frame::ResponseHead { stream_id, .. } => *stream_id,
            _ => 0,
        }
    }
}
