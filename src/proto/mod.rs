//! The hoody-tunnel v1/v2 wire protocol (PROTOCOL.md): frame types, the binary codec, JSON payloads,
//! error codes and HELLO negotiation. Pure data: no I/O and no async runtime, so every rule here is
//! testable with plain byte slices.

mod codec;
mod codes;
mod frame;
mod messages;
mod tickets;
mod version;

pub use codec::{
    decode_message, decode_message_into, encode_frame, encode_response_head, encode_stream_open,
    FrameDecoder,
};
pub use codes::{BindErrorCode, ErrorCode};
pub use frame::{Frame, FrameType};
pub use messages::*;
pub use tickets::{CarrierTicket, TicketError, TicketRequest};
pub use version::{negotiate_connections, ProtocolVersion, SUBPROTOCOLS};

/// Length of the fixed frame header: `type: u8`, `stream_id: u32`, `length: u32`, big-endian.
pub const HEADER_LEN: usize = 9;
/// Largest payload a single frame may declare.
pub const MAX_PAYLOAD: usize = 65_536;
/// Largest number of frames one carrier message may hold.
pub const MAX_FRAMES_PER_MESSAGE: usize = 64;
/// Largest carrier message (all frames, headers included).
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Default per-stream credit each direction starts with.
pub const DEFAULT_STREAM_WINDOW: u32 = 1024 * 1024;
/// Default per-session credit each direction starts with.
pub const DEFAULT_SESSION_WINDOW: u32 = 16 * 1024 * 1024;

/// Everything that can go wrong turning bytes into frames. Each case is its own variant so a peer
/// (and a test) can tell them apart.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than 9 bytes remained where a frame header should start.
    #[error("frame header too short: {0} of 9 bytes")]
    TooShort(usize),
    /// A header declared more payload than the message holds.
    #[error("frame truncated: header declares {declared} payload bytes, {available} present")]
    Truncated {
        /// Declared payload length.
        declared: usize,
        /// Bytes actually left in the message.
        available: usize,
    },
    /// A header declared a payload above [`MAX_PAYLOAD`].
    #[error("frame payload too large: {0} bytes (max 65536)")]
    PayloadTooLarge(usize),
    /// A message above [`MAX_MESSAGE_BYTES`].
    #[error("message too large: {0} bytes (max 262144)")]
    MessageTooLarge(usize),
    /// A message with more than [`MAX_FRAMES_PER_MESSAGE`] frames.
    #[error("too many frames in one message (max 64)")]
    TooManyFrames,
    /// A frame type outside the known set and outside the 0x40-0x7F extension range.
    #[error("unknown mandatory frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A known frame whose payload does not have the shape PROTOCOL.md gives it.
    #[error("malformed {frame} payload: {reason}")]
    BadPayload {
        /// Frame name.
        frame: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Failure to encode a frame: only possible when a JSON payload outgrows [`MAX_PAYLOAD`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The encoded payload would exceed [`MAX_PAYLOAD`].
    #[error("{frame} payload too large to encode: {len} bytes (max 65536)")]
    PayloadTooLarge {
        /// Frame name.
        frame: &'static str,
        /// Encoded payload length.
        len: usize,
    },
}
