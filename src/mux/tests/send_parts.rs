//! The send path's message pieces: large DATA payloads leave as the `Bytes` that was queued
//! (no copy), and the pieces joined are exactly the message the codec expects.

use super::*;
use crate::proto::{decode_message, Frame};

/// Queues `payloads` on stream `id` of `p.server` and returns the next batch's pieces.
fn queue_and_pop(p: &mut Pair, id: u32, payloads: &[Bytes]) -> Vec<Bytes> {
    for payload in payloads {
        p.server.push_data(id, payload.clone()).unwrap();
    }
    pop(p)
}

fn pop(p: &mut Pair) -> Vec<Bytes> {
    let mut batch = Batch::default();
    p.server.pop_batch(0, &mut batch);
    batch.into_parts()
}

#[test]
fn large_payloads_are_not_copied() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    let big = Bytes::from(vec![1u8; 20_000]);
    let small = Bytes::from_static(b"tiny");
    let parts = queue_and_pop(
        &mut p,
        id,
        &[big.clone(), small.clone(), big.slice(5..15_005)],
    );
    let same = |a: &Bytes, b: &Bytes| a.as_ptr() == b.as_ptr() && a.len() == b.len();
    assert!(parts.iter().any(|part| same(part, &big)), "payload copied");
    assert!(
        parts.iter().any(|part| same(part, &big.slice(5..15_005))),
        "slice copied"
    );
    // The small payload travels inside a gathered piece, not on its own.
    assert!(!parts.iter().any(|part| same(part, &small)));
}

#[test]
fn joined_pieces_decode_to_the_queued_frames() {
    let mut p = Pair::new();
    let id = open_tcp(&mut p);
    let payloads = [
        Bytes::from(vec![2u8; 3000]),
        Bytes::from_static(b"x"),
        Bytes::from(vec![3u8; 2048]),
        Bytes::from(vec![4u8; 2047]),
    ];
    let id2 = open_tcp(&mut p);
    for payload in &payloads {
        p.server.push_data(id2, payload.clone()).unwrap();
    }
    // An encoded frame (EOF) of another stream in the same message.
    p.server.close_write(id).unwrap();
    let parts = pop(&mut p);
    let joined: Vec<u8> = parts.concat();
    let frames = decode_message(&Bytes::from(joined)).unwrap();
    let mut data = frames.iter().filter_map(|f| match f {
        Frame::Data { stream_id, data } if *stream_id == id2 => Some(data.clone()),
        _ => None,
    });
    for expected in &payloads {
        assert_eq!(data.next().as_ref(), Some(expected));
    }
    assert!(frames
        .iter()
        .any(|f| matches!(f, Frame::Eof { stream_id } if *stream_id == id)));
}
