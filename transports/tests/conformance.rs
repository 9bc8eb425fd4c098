//! Carrier conformance suite, written once and run for every transport.
//!
//! Each case in [`cases`] is a generic async function taking a *factory*: something that, called
//! with no argument, yields a connected `(client, server)` carrier pair, and the [`Unit`] the
//! carrier keeps intact. [`conformance_suite!`] instantiates every case as a `#[tokio::test]` for
//! one factory. A new transport adds a factory in `support/` and one `conformance_suite!` line.

mod support;

use support::*;

/// The cases. Each takes a factory yielding a connected `(client, server)` pair.
mod cases {
    use super::*;

    /// Message boundaries hold for sizes around the WebSocket length-encoding steps, both ways.
    pub async fn message_boundaries<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        const SIZES: &[usize] = &[
            0,
            1,
            2,
            125,
            126,
            127,
            128,
            1000,
            65_535,
            65_536,
            65_537,
            100_000,
            MAX_MESSAGE_BYTES,
        ];
        let (client, server) = make().await;
        for (tx, mut rx) in [(client.tx, server.rx), (server.tx, client.rx)] {
            let messages: Vec<Bytes> = SIZES
                .iter()
                .enumerate()
                .filter(|&(_, &len)| len <= unit.max_content())
                .map(|(i, &len)| unit.pattern(i, len))
                .collect();
            let sender = spawn_sender(tx, messages.clone());
            for expected in &messages {
                let got = recv_some(&mut rx).await;
                assert_eq!(got.len(), expected.len());
                assert!(
                    got == expected,
                    "content of a {}-byte message",
                    expected.len()
                );
            }
            sender.await.unwrap();
        }
    }

    /// A message of exactly the unit's maximum passes; one byte more is refused by the receiver
    /// with `InvalidData` (whatever the sender saw), in both directions.
    pub async fn size_limit<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        for direction in 0..2 {
            let (client, server) = make().await;
            let (mut tx, mut rx, _keep) = if direction == 0 {
                (client.tx, server.rx, (server.tx, client.rx))
            } else {
                (server.tx, client.rx, (client.tx, server.rx))
            };
            let max = unit.pattern(3, unit.max_content());
            tx.send(max.clone()).await.unwrap();
            assert!(recv_some(&mut rx).await == max);

            // The receiver may stop reading half-way, so the send can block or fail.
            let sender = tokio::spawn(async move {
                let _ = tx.send(unit.pattern(4, unit.max_content() + 1)).await;
                tx
            });
            let err = rx.recv().await.expect_err("oversized message accepted");
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
            // An error is final: never mistaken later for a clean close or a message.
            assert!(
                rx.recv().await.is_err(),
                "recv after the size error did not fail"
            );
            sender.abort();
        }
    }

    /// 1,000 messages of varying sizes arrive in order.
    pub async fn thousand_in_order<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        let (client, mut server) = make().await;
        let len = |i: u32| 4 + (i as usize * 37) % 3000;
        let sender = spawn_sender(
            client.tx,
            (0..1000).map(|i| unit.numbered(i, len(i))).collect(),
        );
        for i in 0..1000 {
            unit.check_numbered(&recv_some(&mut server.rx).await, i, len(i));
        }
        sender.await.unwrap();
    }

    /// A clean close is seen by the peer as `Ok(None)` after the messages sent before it, and
    /// again on every later `recv`; the closed side can no longer send; close is idempotent.
    pub async fn clean_close<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        for direction in 0..2 {
            let (client, server) = make().await;
            let (mut closer, mut peer) = if direction == 0 {
                (client, server)
            } else {
                (server, client)
            };
            for i in 0..3 {
                closer.tx.send(unit.numbered(i, 100)).await.unwrap();
            }
            closer.tx.close().await.unwrap();
            for i in 0..3 {
                unit.check_numbered(&recv_some(&mut peer.rx).await, i, 100);
            }
            assert!(
                peer.rx.recv().await.unwrap().is_none(),
                "clean close not seen as Ok(None)"
            );
            assert!(
                peer.rx.recv().await.unwrap().is_none(),
                "Ok(None) not repeated"
            );
            assert!(closer.tx.send(Bytes::from_static(b"late")).await.is_err());
            closer.tx.close().await.unwrap();
        }
    }

    /// Dropping a carrier without closing it is not a clean close: the peer's `recv` errors.
    pub async fn drop_is_not_clean<F, Fut>(make: F, _unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        for direction in 0..2 {
            let (client, server) = make().await;
            let (gone, mut peer) = if direction == 0 {
                (client, server)
            } else {
                (server, client)
            };
            drop(gone);
            assert!(
                peer.rx.recv().await.is_err(),
                "a dropped peer looked like a clean close"
            );
        }
    }

    /// `recv` futures cancelled by a timeout that fires first (or after a couple of polls) lose
    /// no message and corrupt none. The sender sends each message only once the previous one
    /// arrived, so the receiver is usually waiting on a message still in flight when it is
    /// cancelled.
    pub async fn cancelled_recv_loses_nothing<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        const N: u32 = 200;
        let len = move |i: u32| 4 + (i as usize * 7919) % 150_000.min(unit.max_content() - 4);
        let (client, mut server) = make().await;
        let _client_rx = client.rx;

        // Nothing is sent yet, so this one is surely cancelled.
        let first = tokio::time::timeout(Duration::from_millis(20), server.rx.recv()).await;
        assert!(first.is_err(), "recv returned with nothing sent");
        let mut cancelled = 1u32;

        let (ack, mut acks) = mpsc::unbounded_channel::<()>();
        let mut tx = client.tx;
        let sender = tokio::spawn(async move {
            for i in 0..N {
                tx.send(unit.numbered(i, len(i)))
                    .await
                    .expect("send failed");
                if acks.recv().await.is_none() {
                    break;
                }
            }
            tx
        });
        let mut round = 0u32;
        for next in 0..N {
            let message = loop {
                round += 1;
                let got = if round.is_multiple_of(2) {
                    tokio::select! {
                        r = server.rx.recv() => Some(r),
                        () = tokio::time::sleep(Duration::from_micros(50)) => None,
                    }
                } else {
                    // Two polls of recv, then cancelled.
                    tokio::select! {
                        biased;
                        r = server.rx.recv() => Some(r),
                        () = tokio::task::yield_now() => None,
                    }
                };
                match got {
                    Some(r) => break r.expect("recv failed").expect("carrier ended early"),
                    None => cancelled += 1,
                }
            };
            unit.check_numbered(&message, next, len(next));
            let _ = ack.send(());
        }
        sender.await.unwrap();
        assert!(cancelled >= 1);
    }

    /// Both directions at once, each half driven by its own task.
    pub async fn both_directions<F, Fut>(make: F, unit: Unit)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = (Carrier, Carrier)>,
    {
        const N: u32 = 500;
        let len = |i: u32| 4 + (i as usize * 131) % 20_000;
        let (client, server) = make().await;
        let messages = || (0..N).map(|i| unit.numbered(i, len(i))).collect::<Vec<_>>();
        let up = spawn_sender(client.tx, messages());
        let down = spawn_sender(server.tx, messages());
        let receiver = |mut rx: Box<dyn CarrierRx>| {
            tokio::spawn(async move {
                for i in 0..N {
                    unit.check_numbered(&recv_some(&mut rx).await, i, len(i));
                }
                rx
            })
        };
        let at_server = receiver(server.rx);
        let at_client = receiver(client.rx);
        let (a, b, c, d) = tokio::join!(up, down, at_server, at_client);
        a.unwrap();
        b.unwrap();
        c.unwrap();
        d.unwrap();
    }
}

/// Instantiates every case of [`cases`] as a test for one factory; the unit defaults to
/// [`Unit::Message`].
macro_rules! conformance_suite {
    ($name:ident, $factory:ident) => {
        conformance_suite!($name, $factory, Unit::Message);
    };
    ($name:ident, $factory:ident, $unit:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn message_boundaries() {
                guarded(cases::message_boundaries($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn size_limit() {
                guarded(cases::size_limit($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn thousand_in_order() {
                guarded(cases::thousand_in_order($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn clean_close() {
                guarded(cases::clean_close($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn drop_is_not_clean() {
                guarded(cases::drop_is_not_clean($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cancelled_recv_loses_nothing() {
                guarded(cases::cancelled_recv_loses_nothing($factory, $unit)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn both_directions() {
                guarded(cases::both_directions($factory, $unit)).await
            }
        }
    };
}

conformance_suite!(mem_suite, mem_pair);
conformance_suite!(ws_suite, ws_pair);
conformance_suite!(wss_suite, wss_pair);
#[cfg(feature = "quic")]
conformance_suite!(quic_suite, quic_pair, Unit::Frame);
