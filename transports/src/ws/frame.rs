//! The pieces of RFC 6455 framing the carrier's read and write paths share: frame headers
//! (encoded and parsed by tungstenite's `FrameHeader`) and masking.

use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// Longest frame header: 2 bytes, a 64-bit length and a masking key.
pub(super) const MAX_HEAD_LEN: usize = 14;

/// Largest payload of a control frame (RFC 6455 section 5.5).
pub(super) const MAX_CONTROL_PAYLOAD: usize = 125;

/// The header of a final frame (no fragmentation, no extension bits) of `len` payload bytes.
pub(super) struct Head {
    bytes: [u8; MAX_HEAD_LEN],
    len: usize,
}

impl Head {
    pub(super) fn new(opcode: OpCode, len: usize, mask: Option<[u8; 4]>) -> Self {
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
        };
        let mut bytes = [0u8; MAX_HEAD_LEN];
        let free = {
            let mut out = &mut bytes[..];
            // Cannot fail: any header fits in MAX_HEAD_LEN bytes.
            let _ = header.format(len as u64, &mut out);
            out.len()
        };
        Head {
            bytes,
            len: MAX_HEAD_LEN - free,
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// XORs `buf` with `mask` as if `buf` started `offset` bytes into a masked payload.
///
/// Works on 64-byte blocks of a repeated key, which the compiler turns into vector XORs; no
/// `unsafe` needed.
pub(super) fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let key: [u8; 64] = std::array::from_fn(|i| mask[(i + offset) % 4]);
    let mut blocks = buf.chunks_exact_mut(key.len());
    for block in &mut blocks {
        for (b, k) in block.iter_mut().zip(key.iter()) {
            *b ^= k;
        }
    }
    for (b, k) in blocks.into_remainder().iter_mut().zip(key.iter()) {
        *b ^= k;
    }
}

/// Appends `src` to `out` masked, continuing the mask at `offset`; returns the offset after it.
/// Copies and masks 16 KiB at a time, so each piece is masked while it is still in the cache:
/// in effect one pass over the payload.
pub(super) fn put_masked(out: &mut Vec<u8>, src: &[u8], mask: [u8; 4], mut offset: usize) -> usize {
    for piece in src.chunks(16 * 1024) {
        let start = out.len();
        out.extend_from_slice(piece);
        apply_mask(&mut out[start..], mask, offset);
        offset = (offset + piece.len()) % 4;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data};

    fn naive(buf: &[u8], mask: [u8; 4], offset: usize) -> Vec<u8> {
        buf.iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[(i + offset) % 4])
            .collect()
    }

    #[test]
    fn mask_matches_the_definition_at_every_offset_and_length() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 256) as u8).collect();
        for len in [0, 1, 3, 4, 63, 64, 65, 127, 128, 129, 300] {
            for offset in 0..4 {
                let mut buf = data[..len].to_vec();
                apply_mask(&mut buf, mask, offset);
                assert_eq!(
                    buf,
                    naive(&data[..len], mask, offset),
                    "len {len} offset {offset}"
                );
            }
        }
    }

    #[test]
    fn put_masked_continues_the_mask_across_pieces() {
        let mask = [1, 2, 3, 4];
        let a: Vec<u8> = (0..40_001u32).map(|i| i as u8).collect();
        let b: Vec<u8> = (0..7u8).collect();
        let mut out = Vec::new();
        let offset = put_masked(&mut out, &a, mask, 0);
        assert_eq!(offset, 40_001 % 4);
        put_masked(&mut out, &b, mask, offset);
        let joined: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(out, naive(&joined, mask, 0));
    }

    #[test]
    fn heads_round_trip_through_tungstenite() {
        for (len, head_len) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let head = Head::new(OpCode::Data(Data::Binary), len, mask);
                let expected = head_len + if mask.is_some() { 4 } else { 0 };
                assert_eq!(head.as_slice().len(), expected);
                let (parsed, parsed_len) = FrameHeader::parse(&mut Cursor::new(head.as_slice()))
                    .unwrap()
                    .unwrap();
                assert_eq!(parsed_len, len as u64);
                assert_eq!(parsed.mask, mask);
                assert!(parsed.is_final);
                assert_eq!(parsed.opcode, OpCode::Data(Data::Binary));
            }
        }
        let pong = Head::new(OpCode::Control(Control::Pong), 2, None);
        assert_eq!(pong.as_slice(), [0x8a, 0x02]);
    }
}
