//! Carriers that come back: a lost slot takes a new carrier, new streams are pinned to it again,
//! and the session credit that died with the old one is settled.

use super::*;

/// Loses carrier `index` on both sides, as a cut connection does (and takes the loss events).
fn lose_both(p: &mut Pair, index: usize) {
    p.server.carrier_lost_because(index, "cut");
    p.client.carrier_lost_because(index, "cut");
    drain_events(&mut p.server);
    drain_events(&mut p.client);
}

/// Each side settles with the count the other one reports (what TICKET_REQUEST / TICKET carry).
fn settle_both(p: &mut Pair, index: usize) -> (Option<u64>, Option<u64>) {
    let server_got = p.server.carrier_received(index);
    let client_got = p.client.carrier_received(index);
    (
        p.server.settle_lost_carrier(index, client_got),
        p.client.settle_lost_carrier(index, server_got),
    )
}

/// A stream the server opens that lands on `carrier` (opening others until one does).
fn stream_on(p: &mut Pair, carrier: usize) -> u32 {
    for _ in 0..16 {
        let id = open_tcp(p);
        if p.server.stream_carrier(id) == Some(carrier) {
            return id;
        }
    }
    panic!("no stream landed on carrier {carrier}");
}

fn drain_events(st: &mut MuxState) -> Vec<MuxEvent> {
    std::iter::from_fn(|| st.take_event()).collect()
}

#[test]
fn a_lost_carrier_is_reported_once_with_its_cause() {
    let mut p = Pair::new();
    p.add_carriers(3);
    p.client
        .carrier_lost_because(2, "read failed: connection reset");
    p.client.carrier_lost_because(2, "again");
    let lost: Vec<_> = drain_events(&mut p.client)
        .into_iter()
        .filter(|e| matches!(e, MuxEvent::CarrierLost { .. }))
        .collect();
    assert_eq!(
        lost,
        vec![MuxEvent::CarrierLost {
            index: 2,
            cause: "read failed: connection reset".into()
        }]
    );
    assert_eq!(p.client.carriers_up(), 2);
    assert_eq!(p.client.missing_carriers(3), vec![2]);
}

#[test]
fn a_re_attached_carrier_takes_new_streams_again() {
    let mut p = Pair::new();
    p.add_carriers(4);
    lose_both(&mut p, 2);
    let before: Vec<u32> = (0..3).map(|_| open_tcp(&mut p)).collect();
    assert!(before
        .iter()
        .all(|id| p.server.stream_carrier(*id) != Some(2)));
    assert_eq!(p.server.add_carrier(2, p.now), 2, "second attachment");
    assert_eq!(p.client.add_carrier(2, p.now), 2);
    assert!(
        !p.server.carrier_current(2, 1),
        "the old attachment is stale"
    );
    assert!(p.server.carrier_current(2, 2));
    // Carrier 2 is the least loaded now: the next stream goes there, and data flows on it.
    let id = open_tcp(&mut p);
    assert_eq!(p.server.stream_carrier(id), Some(2));
    assert_eq!(p.client.stream_carrier(id), Some(2));
    let sent = write_all_credit(&mut p.server, id, 1000);
    p.pump().unwrap();
    assert_eq!(read_n(&mut p.client, id, 1000), sent);
    assert_eq!(p.client.carrier_received(2), 1000);
}

#[test]
fn credit_in_flight_on_a_lost_carrier_comes_back_by_settling() {
    let mut p = Pair::new();
    p.add_carriers(3);
    let id = stream_on(&mut p, 2);
    let other = stream_on(&mut p, 1);
    // Some DATA arrives, some is still in flight when the connection dies.
    write_all_credit(&mut p.server, id, 20_000);
    p.pump().unwrap();
    write_all_credit(&mut p.server, id, 30_000);
    let mut in_flight = Batch::default();
    p.server.pop_batch(2, &mut in_flight);
    assert!(!in_flight.is_empty());
    drop(in_flight);
    lose_both(&mut p, 2);
    p.pump().unwrap();
    assert_eq!(p.server.carrier_received(2), 0);
    assert_eq!(p.client.carrier_received(2), 20_000);
    // Without settling, the 30,000 bytes that never arrived are credit the server never sees
    // again.
    assert_eq!(
        p.client.session_recv_remaining() - p.server.session_send_credit(),
        30_000
    );
    assert_eq!(settle_both(&mut p, 2), (Some(30_000), Some(0)));
    assert_eq!(settle_both(&mut p, 2), (None, None), "settled once");
    assert_eq!(
        p.server.session_send_credit(),
        p.client.session_recv_remaining()
    );
    // And the session still moves a full window on another carrier.
    let sent = write_all_credit(&mut p.server, other, STREAM_WINDOW as usize);
    assert_eq!(sent, STREAM_WINDOW as usize);
    p.pump().unwrap();
    assert_eq!(read_n(&mut p.client, other, sent), sent);
}

#[test]
fn repeated_losses_do_not_drain_the_session_window() {
    let mut p = Pair::new();
    p.add_carriers(2);
    for round in 0..(2 * SESSION_WINDOW / STREAM_WINDOW) {
        let id = stream_on(&mut p, 1);
        write_all_credit(&mut p.server, id, STREAM_WINDOW as usize);
        // The whole stream window dies in flight, every time.
        let mut lost = Batch::default();
        while {
            p.server.pop_batch(1, &mut lost);
            !lost.is_empty()
        } {
            lost = Batch::default();
        }
        lose_both(&mut p, 1);
        settle_both(&mut p, 1);
        p.server.drop_handle(id);
        p.client.drop_handle(id);
        p.pump().unwrap();
        assert_eq!(p.server.add_carrier(1, p.now), u64::from(round) + 2);
        p.client.add_carrier(1, p.now);
    }
    assert_eq!(p.server.session_send_credit(), SESSION_WINDOW as u64);
}

#[test]
fn live_or_unknown_carriers_are_not_settled() {
    let mut p = Pair::new();
    p.add_carriers(2);
    assert_eq!(p.server.settle_lost_carrier(1, 0), None, "alive");
    assert_eq!(p.server.settle_lost_carrier(5, 0), None, "unknown");
    // A slot that only filled a gap never had a carrier.
    p.server.add_carrier(4, p.now);
    assert_eq!(p.server.carrier_attachment(3), 0);
    assert_eq!(p.server.settle_lost_carrier(3, 0), None);
}

#[test]
fn a_peer_claiming_more_than_it_got_refunds_nothing() {
    let mut p = Pair::new();
    p.add_carriers(2);
    let id = stream_on(&mut p, 1);
    write_all_credit(&mut p.server, id, 5_000);
    let mut lost = Batch::default();
    p.server.pop_batch(1, &mut lost);
    p.server.carrier_lost_because(1, "cut");
    let before = p.server.session_send_credit();
    assert_eq!(p.server.settle_lost_carrier(1, u64::MAX), Some(0));
    assert_eq!(p.server.session_send_credit(), before);
}
