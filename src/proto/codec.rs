//! Binary codec: frames to bytes and back. Every length is bounded before anything is allocated,
//! and no input can make the decoder panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::error::Category;

use super::frame::{Frame, FrameType};
use super::messages::{ResponseHead, StreamOpen};
use super::{
    DecodeError, EncodeError, ErrorCode, HEADER_LEN, MAX_FRAMES_PER_MESSAGE, MAX_MESSAGE_BYTES,
    MAX_PAYLOAD,
};

/// Appends one encoded frame to `out`.
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) -> Result<(), EncodeError> {
    let ty = frame.frame_type();
    let sid = frame.stream_id();
    match frame {
        Frame::Data { data, .. } => put_raw(out, ty, sid, data),
        Frame::Eof { .. } => put_raw(out, ty, sid, &[]),
        Frame::Reset { code, reason, .. } => {
            // The reason is informational: cut it rather than fail the RESET.
            let mut reason = reason.as_bytes();
            if reason.len() > MAX_PAYLOAD - 2 {
                reason = &reason[..MAX_PAYLOAD - 2];
            }
            put_header(out, ty, sid, 2 + reason.len());
            out.put_u16(code.0);
            out.put_slice(reason);
            Ok(())
        }
        Frame::Window { increment, .. } => put_raw(out, ty, sid, &increment.to_be_bytes()),
        Frame::Ping(nonce) | Frame::Pong(nonce) => put_raw(out, ty, 0, &nonce.to_be_bytes()),
        Frame::Hello(m) => put_json(out, ty, sid, m),
        Frame::HelloOk(m) => put_json(out, ty, sid, m),
        Frame::Bind(m) => put_json(out, ty, sid, m),
        Frame::BindOk(m) => put_json(out, ty, sid, m),
        Frame::BindErr(m) => put_json(out, ty, sid, m),
        Frame::Unbind(m) | Frame::UnbindOk(m) => put_json(out, ty, sid, m),
        Frame::UnbindErr(m) => put_json(out, ty, sid, m),
        Frame::Join(m) => put_json(out, ty, sid, m),
        Frame::JoinOk(m) => put_json(out, ty, sid, m),
        Frame::JoinErr(m) => put_json(out, ty, sid, m),
        Frame::StreamOpen { open, .. } => encode_stream_open(sid, open, out),
        Frame::ResponseHead { head, .. } => encode_response_head(sid, head, out),
        Frame::GoAway(m) => put_json(out, ty, sid, m),
        Frame::BindRevoked(m) => put_json(out, ty, sid, m),
        Frame::TicketRequest(m) => put_json(out, ty, sid, m),
        Frame::Ticket(m) => put_json(out, ty, sid, m),
    }
}

fn put_header(out: &mut BytesMut, ty: FrameType, sid: u32, len: usize) {
    out.reserve(HEADER_LEN + len);
    out.put_u8(ty as u8);
    out.put_u32(sid);
    out.put_u32(len as u32);
}

fn put_raw(out: &mut BytesMut, ty: FrameType, sid: u32, payload: &[u8]) -> Result<(), EncodeError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge {
            frame: ty.name(),
            len: payload.len(),
        });
    }
    put_header(out, ty, sid, payload.len());
    out.put_slice(payload);
    Ok(())
}

fn put_json<T: Serialize>(
    out: &mut BytesMut,
    ty: FrameType,
    sid: u32,
    value: &T,
) -> Result<(), EncodeError> {
    // The frame is built in a `Vec` (serde_json writes to it fastest) with room for the header
    // in front, whose length is filled in at the end; an empty `out` then takes the `Vec` over
    // without a copy. Heads are a few hundred bytes: one reservation covers most.
    let mut frame = Vec::with_capacity(HEADER_LEN + JSON_RESERVE);
    frame.extend_from_slice(&[0; HEADER_LEN]);
    if serde_json::to_writer(&mut frame, value).is_err() {
        // Serialising our own plain structs cannot fail; an empty object keeps the frame
        // well-formed.
        frame.truncate(HEADER_LEN);
        frame.extend_from_slice(b"{}");
    }
    let len = frame.len() - HEADER_LEN;
    if len > MAX_PAYLOAD {
        return Err(EncodeError::PayloadTooLarge {
            frame: ty.name(),
            len,
        });
    }
    let mut header = &mut frame[..HEADER_LEN];
    header.put_u8(ty as u8);
    header.put_u32(sid);
    header.put_u32(len as u32);
    if out.is_empty() {
        *out = BytesMut::from(Bytes::from(frame));
    } else {
        out.extend_from_slice(&frame);
    }
    Ok(())
}

/// Room reserved for a JSON payload before it is written (it may grow past it).
const JSON_RESERVE: usize = 512;

/// Appends a STREAM_OPEN for `open` on stream `sid`: [`encode_frame`] without moving the head
/// into a [`Frame`] first.
pub fn encode_stream_open(
    sid: u32,
    open: &StreamOpen,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    put_json(out, FrameType::StreamOpen, sid, open)
}

/// Appends a STREAM_RESPONSE_HEAD for `head` on stream `sid`: [`encode_frame`] without moving
/// the head into a [`Frame`] first.
pub fn encode_response_head(
    sid: u32,
    head: &ResponseHead,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    put_json(out, FrameType::ResponseHead, sid, head)
}

/// Decodes one carrier message holding one or more whole frames. Unknown extension frames
/// (0x40-0x7F) are skipped; DATA payloads are zero-copy slices of `msg`.
pub fn decode_message(msg: &Bytes) -> Result<Vec<Frame>, DecodeError> {
    let mut frames = Vec::new();
    decode_message_into(msg, &mut frames)?;
    Ok(frames)
}

/// [`decode_message`], appending to `frames`: a carrier's read loop keeps one vector for all its
/// messages instead of allocating one per message. On error, `frames` may hold the frames
/// decoded before the bad one; the caller drops the message whole.
pub fn decode_message_into(msg: &Bytes, frames: &mut Vec<Frame>) -> Result<(), DecodeError> {
    if msg.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::MessageTooLarge(msg.len()));
    }
    let mut pos = 0usize;
    let mut count = 0usize;
    while pos < msg.len() {
        count += 1;
        if count > MAX_FRAMES_PER_MESSAGE {
            return Err(DecodeError::TooManyFrames);
        }
        let (code, sid, len) = parse_header(&msg[pos..])?;
        let start = pos + HEADER_LEN;
        let available = msg.len() - start;
        if len > available {
            return Err(DecodeError::Truncated {
                declared: len,
                available,
            });
        }
        if let Some(frame) = decode_payload(code, sid, msg.slice(start..start + len))? {
            frames.push(frame);
        }
        pos = start + len;
    }
    Ok(())
}

/// Reads a header and checks the declared length against [`MAX_PAYLOAD`].
fn parse_header(buf: &[u8]) -> Result<(u8, u32, usize), DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::TooShort(buf.len()));
    }
    let mut b = &buf[..HEADER_LEN];
    let code = b.get_u8();
    let sid = b.get_u32();
    let len = b.get_u32() as usize;
    if len > MAX_PAYLOAD {
        return Err(DecodeError::PayloadTooLarge(len));
    }
    Ok((code, sid, len))
}

/// Decodes one payload. `Ok(None)` means an unknown extension frame that is skipped.
fn decode_payload(code: u8, sid: u32, payload: Bytes) -> Result<Option<Frame>, DecodeError> {
    let Some(ty) = FrameType::from_u8(code) else {
        if FrameType::is_extension(code) {
            return Ok(None);
        }
        return Err(DecodeError::UnknownType(code));
    };
    let frame = match ty {
        FrameType::Hello => Frame::Hello(json(ty, &payload)?),
        FrameType::HelloOk => Frame::HelloOk(json(ty, &payload)?),
        FrameType::Bind => Frame::Bind(json(ty, &payload)?),
        FrameType::BindOk => Frame::BindOk(json(ty, &payload)?),
        FrameType::BindErr => Frame::BindErr(json(ty, &payload)?),
        FrameType::Unbind => Frame::Unbind(json(ty, &payload)?),
        FrameType::UnbindOk => Frame::UnbindOk(json(ty, &payload)?),
        FrameType::UnbindErr => Frame::UnbindErr(json(ty, &payload)?),
        FrameType::Join => Frame::Join(json(ty, &payload)?),
        FrameType::JoinOk => Frame::JoinOk(json(ty, &payload)?),
        FrameType::JoinErr => Frame::JoinErr(json(ty, &payload)?),
        FrameType::StreamOpen => Frame::StreamOpen {
            stream_id: sid,
            open: json(ty, &payload)?,
        },
        FrameType::Data => Frame::Data {
            stream_id: sid,
            data: payload,
        },
        FrameType::Eof => Frame::Eof { stream_id: sid },
        FrameType::Reset => {
            if payload.len() < 2 {
                return Err(bad(ty, "needs a 2-byte code"));
            }
            Frame::Reset {
                stream_id: sid,
                code: ErrorCode(u16::from_be_bytes([payload[0], payload[1]])),
                reason: String::from_utf8_lossy(&payload[2..]).into_owned(),
            }
        }
        FrameType::Window => {
            let bytes: [u8; 4] = payload[..]
                .try_into()
                .map_err(|_| bad(ty, "needs exactly 4 bytes"))?;
            Frame::Window {
                stream_id: sid,
                increment: u32::from_be_bytes(bytes),
            }
        }
        FrameType::ResponseHead => Frame::ResponseHead {
            stream_id: sid,
            head: json(ty, &payload)?,
        },
        FrameType::Ping | FrameType::Pong => {
            let bytes: [u8; 8] = payload[..]
                .try_into()
                .map_err(|_| bad(ty, "needs exactly 8 bytes"))?;
            let nonce = u64::from_be_bytes(bytes);
            if ty == FrameType::Ping {
                Frame::Ping(nonce)
            } else {
                Frame::Pong(nonce)
            }
        }
        FrameType::GoAway => Frame::GoAway(json(ty, &payload)?),
        FrameType::BindRevoked => Frame::BindRevoked(json(ty, &payload)?),
        FrameType::TicketRequest => Frame::TicketRequest(json(ty, &payload)?),
        FrameType::Ticket => Frame::Ticket(json(ty, &payload)?),
    };
    Ok(Some(frame))
}

fn json<T: DeserializeOwned>(ty: FrameType, payload: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(payload).map_err(|e| bad(ty, &json_error(&e)))
}

/// serde's message with the peer's values left out. serde quotes what it got (`invalid type:
/// string "<the token>"`, `unknown variant `<value>``), so a token or password sent in the
/// wrong place would otherwise reach logs and GOAWAY texts. What remains (the kind of value,
/// what the schema expected, a missing field's name, the position) comes from our own types.
fn json_error(e: &serde_json::Error) -> String {
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Syntax => format!("not valid JSON at {at}"),
        Category::Eof => "truncated JSON".into(),
        Category::Io => "unreadable JSON".into(),
        Category::Data => {
            let text = e.to_string();
            if let Some(field) = text
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                return format!("missing field `{field}` at {at}");
            }
            let problem = ["invalid type: ", "invalid value: ", "invalid length "]
                .iter()
                .find_map(|prefix| {
                    let kind = text.strip_prefix(prefix)?.split([' ', ',']).next()?;
                    let kind: String = kind.chars().filter(char::is_ascii_alphanumeric).collect();
                    Some(format!("{}({kind})", prefix.trim_end_matches([':', ' '])))
                })
                .or_else(|| {
                    ["unknown variant", "unknown field"]
                        .into_iter()
                        .find(|p| text.starts_with(p))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "invalid value".to_string());
            // The expectation is the last ", expected ..." (a quoted value may contain the
            // words, but it always comes before serde's own text).
            let expected = text
                .rfind(", expected ")
                .map(|i| &text[i + 2..])
                .and_then(|rest| rest.rsplit_once(" at line "))
                .map(|(expected, _)| format!(", {expected}"))
                .unwrap_or_default();
            format!("{problem}{expected} at {at}")
        }
    }
}

fn bad(ty: FrameType, reason: &str) -> DecodeError {
    DecodeError::BadPayload {
        frame: ty.name(),
        reason: reason.to_string(),
    }
}

/// Incremental decoder for byte streams where frames are simply concatenated (the QUIC carrier):
/// feed bytes, take whole frames out as single-frame messages.
#[derive(Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next whole encoded frame (header included), if one is complete.
    pub fn next_frame_bytes(&mut self) -> Result<Option<Bytes>, DecodeError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let (_, _, len) = parse_header(&self.buf)?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(HEADER_LEN + len).freeze()))
    }
}
