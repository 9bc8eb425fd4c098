//! The write side of a carrier: each message is one final binary frame.
//!
//! Unmasked (server to client), the frame header and the message's parts go to the socket in
//! one vectored write, straight from the buffers they are in: the payload is never copied in
//! user space. Masked (client to server, RFC 6455 section 5.3), the parts are copied once into
//! the frame with the mask applied on the way.

use std::io::{self, IoSlice};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::frame::{put_masked, Head, MAX_CONTROL_PAYLOAD};

/// Writes frames to `io`.
pub(super) struct WsWriter<W> {
    io: W,
    /// Client side: every frame is masked with a fresh random key.
    masked: bool,
    /// A close frame was queued: nothing may follow it.
    closed: bool,
    /// Control frames (pong, close) not completely written yet. They go out before anything
    /// else, so a write that was cancelled half-way is completed rather than corrupted.
    control: BytesMut,
}

impl<W: AsyncWrite + Unpin> WsWriter<W> {
    pub(super) fn new(io: W, masked: bool) -> Self {
        WsWriter {
            io,
            masked,
            closed: false,
            control: BytesMut::new(),
        }
    }

    /// Sends one binary message made of `parts` laid end to end, and flushes it.
    pub(super) async fn send(&mut self, parts: &[Bytes]) -> io::Result<()> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "WebSocket carrier is closed",
            ));
        }
        self.flush_control().await?;
        let len = parts.iter().map(Bytes::len).sum();
        let opcode = OpCode::Data(Data::Binary);
        if self.masked {
            let key: [u8; 4] = rand::random();
            let head = Head::new(opcode, len, Some(key));
            let mut frame = Vec::with_capacity(head.as_slice().len() + len);
            frame.extend_from_slice(head.as_slice());
            let mut offset = 0;
            for part in parts {
                offset = put_masked(&mut frame, part, key, offset);
            }
            self.io.write_all(&frame).await?;
        } else {
            let head = Head::new(opcode, len, None);
            let slices: Vec<&[u8]> = std::iter::once(head.as_slice())
                .chain(parts.iter().map(|p| &p[..]))
                .filter(|s| !s.is_empty())
                .collect();
            if self.io.is_write_vectored() {
                let mut slices: Vec<IoSlice<'_>> = slices.into_iter().map(IoSlice::new).collect();
                write_all_vectored(&mut self.io, &mut slices).await?;
            } else {
                // One write per slice would put each header in a packet of its own.
                self.io.write_all(&slices.concat()).await?;
            }
        }
        self.io.flush().await
    }

    /// Queues a pong answering a ping (nothing once closed); see [`flush_control`](Self::flush_control).
    pub(super) fn queue_pong(&mut self, payload: &[u8]) {
        if !self.closed {
            self.queue_control(Control::Pong, payload);
        }
    }

    /// Queues a close frame unless one was already queued; see
    /// [`flush_control`](Self::flush_control). `code` `None` sends a close frame without a
    /// payload.
    pub(super) fn queue_close(&mut self, code: Option<u16>, reason: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut payload = Vec::new();
        if let Some(code) = code {
            payload.extend_from_slice(&code.to_be_bytes());
            let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            payload.extend_from_slice(&reason.as_bytes()[..end]);
        }
        self.queue_control(Control::Close, &payload);
    }

    fn queue_control(&mut self, control: Control, payload: &[u8]) {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        let key = self.masked.then(rand::random::<[u8; 4]>);
        let head = Head::new(OpCode::Control(control), payload.len(), key);
        let mut frame = head.as_slice().to_vec();
        match key {
            Some(key) => {
                put_masked(&mut frame, payload, key, 0);
            }
            None => frame.extend_from_slice(payload),
        }
        self.control.extend_from_slice(&frame);
    }

    /// Writes the queued control frames and flushes. Cancel safe: what is not written yet stays
    /// queued.
    pub(super) async fn flush_control(&mut self) -> io::Result<()> {
        if self.control.is_empty() {
            return Ok(());
        }
        while !self.control.is_empty() {
            let n = self.io.write(&self.control).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.control.advance(n);
        }
        self.control = BytesMut::new();
        self.io.flush().await
    }
}

/// Writes every byte of `slices`, resuming after partial writes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !slices.is_empty() {
        let n = io.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::frame::apply_mask;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Records every write; takes at most `max` bytes per call (vectored or not).
    #[derive(Default)]
    struct Recorder {
        wire: Vec<u8>,
        /// Address ranges of the buffers handed to each write, to prove what was not copied.
        seen: Vec<(usize, usize)>,
        max: usize,
        vectored: bool,
        writes: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            let mut budget = self.max;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(budget);
                self.seen.push((b.as_ptr() as usize, b.len()));
                self.wire.extend_from_slice(&b[..take]);
                budget -= take;
                n += take;
                if budget == 0 {
                    break;
                }
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn parts() -> Vec<Bytes> {
        vec![
            Bytes::from_static(b"\x12\0\0\0\x01\0\0\0\x05"),
            Bytes::from(vec![7u8; 70_000]),
            Bytes::new(),
            Bytes::from_static(b"tail"),
        ]
    }

    #[tokio::test]
    async fn unmasked_payload_goes_to_the_socket_from_its_own_buffer() {
        let parts = parts();
        let mut writer = WsWriter::new(
            Recorder {
                max: 30_000,
                vectored: true,
                ..Recorder::default()
            },
            false,
        );
        writer.send(&parts).await.unwrap();
        let rec = &writer.io;
        let joined = parts.concat();
        assert_eq!(rec.wire[..2], [0x82, 127]);
        assert_eq!(rec.wire[2..10], (joined.len() as u64).to_be_bytes());
        assert_eq!(rec.wire[10..], joined[..]);
        // Partial writes were resumed, and the big payload was handed over in place.
        assert!(rec.writes >= 3);
        let big = (parts[1].as_ptr() as usize, parts[1].len());
        assert!(rec.seen.contains(&big), "payload copied before the write");
    }

    #[tokio::test]
    async fn masked_frames_carry_a_fresh_key_and_unmask_to_the_parts() {
        let parts = parts();
        let mut writer = WsWriter::new(
            Recorder {
                max: usize::MAX,
                vectored: true,
                ..Recorder::default()
            },
            true,
        );
        writer.send(&parts).await.unwrap();
        writer.send(&parts).await.unwrap();
        let joined = parts.concat();
        let frame_len = 14 + joined.len();
        let wire = &writer.io.wire;
        assert_eq!(wire.len(), 2 * frame_len);
        let mut keys = Vec::new();
        for frame in wire.chunks(frame_len) {
            assert_eq!(frame[..2], [0x82, 0x80 | 127]);
            let key: [u8; 4] = frame[10..14].try_into().unwrap();
            let mut payload = frame[14..].to_vec();
            apply_mask(&mut payload, key, 0);
            assert_eq!(payload, joined);
            keys.push(key);
        }
        assert_ne!(keys[0], keys[1], "masking key reused");
    }

    #[tokio::test]
    async fn without_vectored_writes_the_frame_is_written_whole() {
        let mut writer = WsWriter::new(
            Recorder {
                max: usize::MAX,
                vectored: false,
                ..Recorder::default()
            },
            false,
        );
        writer.send(&parts()).await.unwrap();
        assert_eq!(writer.io.writes, 1);
    }

    #[tokio::test]
    async fn control_frames_go_first_and_nothing_follows_a_close() {
        let mut writer = WsWriter::new(
            Recorder {
                max: 3,
                vectored: true,
                ..Recorder::default()
            },
            false,
        );
        writer.queue_pong(b"p1");
        writer.send(&[Bytes::from_static(b"m")]).await.unwrap();
        writer.queue_close(Some(1008), &"é".repeat(100));
        writer.queue_close(Some(1000), "second close ignored");
        writer.queue_pong(b"too late");
        writer.flush_control().await.unwrap();
        let err = writer.send(&[Bytes::from_static(b"x")]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        let wire = &writer.io.wire;
        assert_eq!(wire[..4], [0x8a, 2, b'p', b'1']);
        assert_eq!(wire[4..7], [0x82, 1, b'm']);
        // The reason was cut to 123 bytes on a character boundary: 2 + 122.
        assert_eq!(wire[7..11], [0x88, 124, 0x03, 0xf0]);
        assert_eq!(wire.len(), 7 + 2 + 124);
    }
}
