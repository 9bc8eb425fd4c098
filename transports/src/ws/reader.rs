//! The read side of a carrier: WebSocket frames parsed straight out of one read buffer.
//!
//! Bytes are read into a `BytesMut` without zero-filling it first, and a message that came in
//! one frame is handed out as a slice of that buffer: no copy. Only fragmented messages (which
//! our own peers never send) are joined into a buffer of their own.

use std::io::{self, Cursor};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::frame::{apply_mask, MAX_CONTROL_PAYLOAD};
use crate::MAX_MESSAGE_BYTES;

/// Spare room kept for the next read beyond the frame being completed, so that the header of
/// the next frame (and small messages whole) usually arrive with the same read. A frame that
/// then does not fit is moved, at most this many bytes of it, into a buffer of its own size.
const READ_AHEAD: usize = 4 * 1024;

/// What the peer sent, apart from pongs (skipped).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Incoming {
    /// A whole binary message.
    Message(Bytes),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(Bytes),
    /// A close frame: its code and reason, if it had any.
    Close(Option<(u16, String)>),
}

/// Parses frames from `io`.
pub(super) struct WsReader<R> {
    io: R,
    buf: BytesMut,
    /// Server side: every frame must be masked (RFC 6455 section 5.1); client side: none may be.
    expect_masked: bool,
    /// Header and payload length of the frame whose payload is not complete yet.
    head: Option<(FrameHeader, usize)>,
    /// The fragments so far of a message that has not ended.
    partial: Option<BytesMut>,
}

impl<R: AsyncRead + Unpin> WsReader<R> {
    /// A reader whose first bytes are `prefix` (read past the upgrade response), then `io`.
    pub(super) fn new(io: R, prefix: Bytes, expect_masked: bool) -> Self {
        WsReader {
            io,
            buf: BytesMut::from(&prefix[..]),
            expect_masked,
            head: None,
            partial: None,
        }
    }

    /// The next message or control frame. Cancel safe: partial frames stay in `self`, and a
    /// frame is taken out of the buffer only in the poll that returns it.
    pub(super) async fn next(&mut self) -> io::Result<Incoming> {
        loop {
            if let Some(incoming) = self.parse()? {
                return Ok(incoming);
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes. The end of the stream is an error: a clean end comes as a close frame.
    async fn fill(&mut self) -> io::Result<()> {
        if self.head.is_none() && self.buf.is_empty() && self.buf.capacity() > 2 * READ_AHEAD {
            // Do not keep a large buffer (shared with messages handed out) alive while idle.
            self.buf = BytesMut::new();
        }
        if self.buf.capacity() - self.buf.len() < READ_AHEAD / 4 {
            self.buf.reserve(READ_AHEAD);
        }
        if self.io.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer dropped the WebSocket connection without closing it",
            ));
        }
        Ok(())
    }

    /// The next complete message or control frame in the buffer, if there is one.
    fn parse(&mut self) -> io::Result<Option<Incoming>> {
        loop {
            let (header, len) = match self.head.take() {
                Some(head) => head,
                None => {
                    let mut cursor = Cursor::new(&self.buf[..]);
                    let Some((header, len)) =
                        FrameHeader::parse(&mut cursor).map_err(|e| protocol(&e.to_string()))?
                    else {
                        return Ok(None);
                    };
                    let consumed = cursor.position() as usize;
                    let len = self.check(&header, len)?;
                    self.buf.advance(consumed);
                    if self.buf.len() < len {
                        // Room for the rest of the payload now, so that it is read into place
                        // and never moved. (Only then: reserving on a buffer whose earlier
                        // messages are still held elsewhere copies what it holds.)
                        self.buf.reserve(len - self.buf.len() + READ_AHEAD);
                    }
                    (header, len)
                }
            };
            if self.buf.len() < len {
                self.head = Some((header, len));
                return Ok(None);
            }
            let mut payload = self.buf.split_to(len);
            if let Some(mask) = header.mask {
                apply_mask(&mut payload, mask, 0);
            }
            match header.opcode {
                OpCode::Control(Control::Ping) => {
                    return Ok(Some(Incoming::Ping(payload.freeze())))
                }
                OpCode::Control(Control::Close) => return close_frame(&payload).map(Some),
                OpCode::Data(Data::Binary) if header.is_final => {
                    return Ok(Some(Incoming::Message(payload.freeze())))
                }
                OpCode::Data(Data::Binary) => self.partial = Some(payload),
                OpCode::Data(Data::Continue) => {
                    if let Some(partial) = &mut self.partial {
                        partial.extend_from_slice(&payload);
                    }
                    if header.is_final {
                        if let Some(message) = self.partial.take() {
                            return Ok(Some(Incoming::Message(message.freeze())));
                        }
                    }
                }
                // Pongs need nothing; text and reserved opcodes were refused by `check`.
                _ => {}
            }
        }
    }

    /// Refuses what RFC 6455 and the carrier do not allow; returns the payload length.
    fn check(&self, header: &FrameHeader, len: u64) -> io::Result<usize> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(protocol("reserved bits set without a negotiated extension"));
        }
        match (self.expect_masked, header.mask.is_some()) {
            (true, false) => return Err(protocol("unmasked frame from the client")),
            (false, true) => return Err(protocol("masked frame from the server")),
            _ => {}
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let so_far = self.partial.as_ref().map_or(0, BytesMut::len);
        match header.opcode {
            OpCode::Control(_) if !header.is_final => Err(protocol("fragmented control frame")),
            OpCode::Control(_) if len > MAX_CONTROL_PAYLOAD => {
                Err(protocol("control frame over 125 bytes"))
            }
            OpCode::Control(_) => Ok(len),
            OpCode::Data(Data::Text) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "text WebSocket message on a binary carrier",
            )),
            OpCode::Data(Data::Binary) if self.partial.is_some() => {
                Err(protocol("new message before the fragmented one ended"))
            }
            OpCode::Data(Data::Continue) if self.partial.is_none() => {
                Err(protocol("continuation frame without a message"))
            }
            OpCode::Data(_) if len > MAX_MESSAGE_BYTES - so_far => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "WebSocket message over the {MAX_MESSAGE_BYTES}-byte limit: a frame of {len} \
                     bytes after {so_far}"
                ),
            )),
            OpCode::Data(_) => Ok(len),
        }
    }
}

/// Code and reason of a close frame, checked as RFC 6455 section 7.4 asks.
fn close_frame(payload: &[u8]) -> io::Result<Incoming> {
    match payload {
        [] => Ok(Incoming::Close(None)),
        [_] => Err(protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                return Err(protocol(&format!("close code {code} is not allowed")));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| protocol("close reason is not UTF-8"))?;
            Ok(Incoming::Close(Some((code, reason.to_owned()))))
        }
    }
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("WebSocket protocol error: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::Head;

    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n < 65_536 => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mut body = payload.to_vec();
        if let Some(mask) = mask {
            out.extend_from_slice(&mask);
            apply_mask(&mut body, mask, 0);
        }
        out.extend_from_slice(&body);
        out
    }

    async fn read_all(wire: Vec<u8>, expect_masked: bool) -> Vec<io::Result<Incoming>> {
        let mut reader = WsReader::new(&wire[..], Bytes::new(), expect_masked);
        let mut out = Vec::new();
        loop {
            let next = reader.next().await;
            let stop = next.is_err();
            out.push(next);
            if stop {
                return out;
            }
        }
    }

    fn message(b: &[u8]) -> Incoming {
        Incoming::Message(Bytes::copy_from_slice(b))
    }

    #[tokio::test]
    async fn fragments_and_interleaved_control_frames() {
        let key = Some([1, 2, 3, 4]);
        let mut wire = frame(false, 0x2, b"hel", key);
        wire.extend(frame(true, 0x9, b"ping", key));
        wire.extend(frame(false, 0x0, b"lo ", key));
        wire.extend(frame(true, 0xa, b"pong", key));
        wire.extend(frame(true, 0x0, b"world", key));
        wire.extend(frame(true, 0x2, b"", key));
        wire.extend(frame(true, 0x8, &[0x03, 0xe8, b'o', b'k'], key));
        let got = read_all(wire, true).await;
        let got: Vec<_> = got.into_iter().take(4).map(Result::unwrap).collect();
        assert_eq!(
            got,
            [
                Incoming::Ping(Bytes::from_static(b"ping")),
                message(b"hello world"),
                message(b""),
                Incoming::Close(Some((1000, "ok".into()))),
            ]
        );
    }

    #[tokio::test]
    async fn one_frame_messages_are_slices_of_the_read_buffer() {
        let mut wire = frame(true, 0x2, b"first", None);
        wire.extend(frame(true, 0x2, b"second", None));
        let mut reader = WsReader::new(&wire[..], Bytes::new(), false);
        let (Incoming::Message(a), Incoming::Message(b)) =
            (reader.next().await.unwrap(), reader.next().await.unwrap())
        else {
            panic!("expected two messages");
        };
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        // Both came from one read, so the second starts 2 header bytes after the first ends.
        assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + a.len() + 2);
    }

    #[test]
    fn complete_frames_are_taken_without_growing_or_moving_the_buffer() {
        // Thirty messages already in the buffer (here: read past the upgrade, which fills it
        // exactly), all kept as the mux keeps them until they are read. Each must be a slice of
        // that buffer: making room for the next read before it is needed would copy what the
        // buffer holds.
        let wire: Vec<u8> = (0..30u8)
            .flat_map(|i| frame(true, 0x2, &[i; 100], None))
            .collect();
        let mut reader = WsReader::new(tokio::io::empty(), Bytes::from(wire), false);
        let start = reader.buf.as_ptr() as usize;
        let end = start + reader.buf.len();
        let mut kept = Vec::new();
        while let Some(Incoming::Message(m)) = reader.parse().unwrap() {
            let at = m.as_ptr() as usize;
            assert!(
                at >= start && at + m.len() <= end,
                "message {} was moved",
                kept.len()
            );
            kept.push(m);
        }
        assert_eq!(kept.len(), 30);
        assert!(
            reader.buf.capacity() < READ_AHEAD,
            "buffer grown with nothing to read into it"
        );
    }

    #[tokio::test]
    async fn the_upgrade_prefix_comes_first() {
        let wire = frame(true, 0x2, b"rest", None);
        let prefix = Bytes::from(frame(true, 0x2, b"early", None));
        let mut reader = WsReader::new(&wire[..], prefix, false);
        assert_eq!(reader.next().await.unwrap(), message(b"early"));
        assert_eq!(reader.next().await.unwrap(), message(b"rest"));
    }

    #[tokio::test]
    async fn large_messages_in_small_reads() {
        let payload: Vec<u8> = (0..MAX_MESSAGE_BYTES as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        let wire = frame(true, 0x2, &payload, Some([5, 6, 7, 8]));
        // A reader that hands out at most 1000 bytes per read.
        let (client, mut server) = tokio::io::duplex(1000);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            server.write_all(&wire).await.unwrap();
            server
        });
        let mut reader = WsReader::new(client, Bytes::new(), true);
        assert_eq!(
            reader.next().await.unwrap(),
            Incoming::Message(payload.into())
        );
        drop(writer.await.unwrap());
        let end = reader.next().await.unwrap_err();
        assert_eq!(end.kind(), io::ErrorKind::ConnectionReset);
    }

    #[tokio::test]
    async fn refusals() {
        let key = Some([1, 2, 3, 4]);
        let cases: Vec<(Vec<u8>, bool, &str)> = vec![
            (
                frame(true, 0x2, b"x", None),
                true,
                "unmasked frame from the client",
            ),
            (
                frame(true, 0x2, b"x", key),
                false,
                "masked frame from the server",
            ),
            (
                frame(true, 0x1, b"x", None),
                false,
                "text WebSocket message",
            ),
            (
                frame(true, 0x0, b"x", None),
                false,
                "continuation frame without",
            ),
            (
                [frame(false, 0x2, b"x", None), frame(true, 0x2, b"y", None)].concat(),
                false,
                "new message before",
            ),
            (
                frame(false, 0x9, b"x", None),
                false,
                "fragmented control frame",
            ),
            (
                frame(true, 0x9, &[0; 126], None),
                false,
                "control frame over 125",
            ),
            (frame(true, 0x3, b"x", None), false, "opcode"),
            (vec![0xc2, 0x00], false, "reserved bits"),
            (frame(true, 0x8, &[3], None), false, "1-byte payload"),
            (
                frame(true, 0x8, &[0x03, 0xed], None),
                false,
                "close code 1005",
            ),
            (
                frame(true, 0x8, &[0x03, 0xe8, 0xff], None),
                false,
                "not UTF-8",
            ),
            (
                frame(true, 0x2, &vec![0; MAX_MESSAGE_BYTES + 1], None),
                false,
                "262144-byte limit",
            ),
            (
                [
                    frame(false, 0x2, &vec![0; MAX_MESSAGE_BYTES], None),
                    frame(true, 0x0, b"x", None),
                ]
                .concat(),
                false,
                "262144-byte limit",
            ),
            (
                frame(true, 0x2, b"cut short", None)[..5].to_vec(),
                false,
                "without closing",
            ),
        ];
        for (wire, expect_masked, needle) in cases {
            let got = read_all(wire, expect_masked).await;
            let err = got.last().unwrap().as_ref().unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: got {err}");
            assert_ne!(err.kind(), io::ErrorKind::Other);
        }
    }

    #[tokio::test]
    async fn the_oversized_frame_is_refused_from_its_header() {
        // Only the header is there: the refusal must not wait for (or allocate) the payload.
        let head = Head::new(OpCode::Data(Data::Binary), MAX_MESSAGE_BYTES + 1, None);
        let (client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        server.write_all(head.as_slice()).await.unwrap();
        let mut reader = WsReader::new(client, Bytes::new(), false);
        let err = reader.next().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(reader.buf.capacity() < MAX_MESSAGE_BYTES);
        drop(server);
    }
}
