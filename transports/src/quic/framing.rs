//! Cutting the byte stream of a QUIC stream back into the protocol's frames.
//
// The main crate owns the codec, but it depends on this crate, so the little this module needs
// (PROTOCOL.md "Frames": `type: u8, stream_id: u32 BE, length: u32 BE`, payload at most 65,536
// bytes) is repeated here. Keep it in step with the codec.

use std::io;

use bytes::{Buf, Bytes, BytesMut};

/// Length of a frame header.
const HEADER_LEN: usize = 9;

/// Largest payload a frame may declare.
pub const MAX_FRAME_PAYLOAD: usize = 65_536;

/// Payload length declared by a complete header, refused when over [`MAX_FRAME_PAYLOAD`] so that
/// nothing is allocated for it.
fn payload_len(header: &[u8; HEADER_LEN]) -> io::Result<usize> {
    let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    match usize::try_from(len) {
        Ok(len) if len <= MAX_FRAME_PAYLOAD => Ok(len),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "frame of type 0x{:02x} declares a {len}-byte payload, over the \
                 {MAX_FRAME_PAYLOAD}-byte limit",
                header[0]
            ),
        )),
    }
}

/// Cuts the bytes of a QUIC stream into frames.
///
/// Every frame is copied into its own buffer of exactly its size. Handing out slices of quinn's
/// chunks instead would save that copy for frames inside one packet, but each slice would keep
/// the whole receive buffer it came from alive for as long as the mux holds the frame; a copy at
/// memory speed is cheap next to QUIC's decryption.
#[derive(Default)]
pub(super) struct FrameReader {
    /// Received bytes not yet moved into a frame: the rest of the last chunk from quinn.
    pub(super) pending: Bytes,
    /// Header bytes of the next frame gathered so far (a header may straddle chunks).
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// The frame being filled, allocated at its final size once its header was read.
    frame: Option<BytesMut>,
    frame_len: usize,
}

impl FrameReader {
    /// Moves pending bytes into the current frame; returns it once complete. When this returns
    /// `Ok(None)`, every pending byte has been consumed.
    pub(super) fn next_frame(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match &mut self.frame {
                None => {
                    let n = (HEADER_LEN - self.header_len).min(self.pending.len());
                    self.header[self.header_len..self.header_len + n]
                        .copy_from_slice(&self.pending[..n]);
                    self.pending.advance(n);
                    self.header_len += n;
                    if self.header_len < HEADER_LEN {
                        return Ok(None);
                    }
                    let total = HEADER_LEN + payload_len(&self.header)?;
                    let mut frame = BytesMut::with_capacity(total);
                    frame.extend_from_slice(&self.header);
                    self.header_len = 0;
                    self.frame = Some(frame);
                    self.frame_len = total;
                }
                Some(frame) => {
                    let n = (self.frame_len - frame.len()).min(self.pending.len());
                    frame.extend_from_slice(&self.pending[..n]);
                    self.pending.advance(n);
                    if frame.len() < self.frame_len {
                        return Ok(None);
                    }
                    return Ok(self.frame.take().map(BytesMut::freeze));
                }
            }
        }
    }

    /// Whether no partial frame is held: a stream that ends now ends cleanly.
    pub(super) fn is_between_frames(&self) -> bool {
        self.pending.is_empty() && self.header_len == 0 && self.frame.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&stream.to_be_bytes());
        v.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Feeds `bytes` in chunks of `step` and collects the frames.
    fn cut(bytes: &[u8], step: usize) -> io::Result<Vec<Bytes>> {
        let mut reader = FrameReader::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(step) {
            reader.pending = Bytes::copy_from_slice(chunk);
            while let Some(f) = reader.next_frame()? {
                out.push(f);
            }
            assert!(reader.pending.is_empty());
        }
        assert!(reader.is_between_frames());
        Ok(out)
    }

    #[test]
    fn frames_come_out_whole_whatever_the_chunking() {
        let frames = [
            frame(0x12, 1, b"hello"),
            frame(0x13, 1, b""),
            frame(0x12, 3, &vec![7u8; MAX_FRAME_PAYLOAD]),
            frame(0x01, 0, b"{}"),
        ];
        let all: Vec<u8> = frames.concat();
        for step in [1, 2, 8, 9, 10, 1000, 65_545, all.len()] {
            let got = cut(&all, step).unwrap();
            assert_eq!(got.len(), frames.len(), "step {step}");
            for (g, f) in got.iter().zip(&frames) {
                assert_eq!(&g[..], &f[..], "step {step}");
            }
        }
    }

    #[test]
    fn oversized_frame_is_refused_before_its_payload() {
        let mut header = vec![0x12, 0, 0, 0, 1];
        header.extend_from_slice(&(MAX_FRAME_PAYLOAD as u32 + 1).to_be_bytes());
        let mut reader = FrameReader {
            pending: Bytes::from(header),
            ..FrameReader::default()
        };
        let err = reader.next_frame().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("65537"), "{err}");
        assert!(reader.frame.is_none());
    }

    #[test]
    fn partial_frame_is_not_between_frames() {
        let mut reader = FrameReader {
            pending: Bytes::from_static(&[0x12, 0, 0]),
            ..FrameReader::default()
        };
        assert!(reader.next_frame().unwrap().is_none());
        assert!(!reader.is_between_frames());
    }
}
