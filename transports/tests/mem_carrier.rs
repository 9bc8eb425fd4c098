//! In-memory carrier specifics: injected delay keeps order, cut breaks both sides, back-pressure.

mod support;

use support::*;

// Paused clock: the delays are exact and a busy machine cannot reorder the timers.
#[tokio::test(start_paused = true)]
async fn mem_delay_keeps_order_and_delays() {
    guarded(async {
        let delay = Duration::from_millis(30);
        let (mut a, mut b, _link) = mem::pair_with(MemOptions { delay: Some(delay) });
        let start = tokio::time::Instant::now();
        for i in 0..50 {
            a.tx.send(numbered(i, 10 + i as usize)).await.unwrap();
        }
        a.tx.close().await.unwrap();
        for i in 0..50 {
            check_numbered(&recv_some(&mut b.rx).await, i, 10 + i as usize);
            if i == 0 {
                assert!(
                    start.elapsed() >= delay,
                    "first message arrived before the delay"
                );
            }
        }
        assert!(b.rx.recv().await.unwrap().is_none());
    })
    .await
}

// Paused clock: the delays are exact and a busy machine cannot reorder the timers.
#[tokio::test(start_paused = true)]
async fn mem_delayed_recv_is_cancel_safe() {
    guarded(async {
        let (mut a, mut b, _link) = mem::pair_with(MemOptions {
            delay: Some(Duration::from_millis(20)),
        });
        a.tx.send(Bytes::from_static(b"x")).await.unwrap();
        // Cancelled while the message waits out its delay: it must stay queued.
        assert!(tokio::time::timeout(Duration::from_millis(5), b.rx.recv())
            .await
            .is_err());
        assert_eq!(recv_some(&mut b.rx).await, Bytes::from_static(b"x"));
    })
    .await
}

#[tokio::test]
async fn mem_cut_breaks_both_sides() {
    guarded(async {
        let (mut a, mut b, link) = mem::pair_with(MemOptions::default());
        a.tx.send(Bytes::from_static(b"queued")).await.unwrap();
        // A recv already waiting must wake up with the error.
        let mut a_rx = a.rx;
        let waiting = tokio::spawn(async move { a_rx.recv().await });
        assert!(!link.is_cut());
        link.cut();
        assert!(link.is_cut());
        let err = waiting.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        let err = b.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(a.tx.send(Bytes::from_static(b"x")).await.is_err());
        assert!(b.tx.send(Bytes::from_static(b"x")).await.is_err());
        assert!(b.tx.close().await.is_err());
    })
    .await
}

#[tokio::test]
async fn mem_cut_wakes_a_blocked_sender() {
    guarded(async {
        let (mut a, _b, link) = mem::pair_with(MemOptions::default());
        // Fill the channel; nobody reads.
        let mut sent = 0;
        while a.tx.send(Bytes::new()).now_or_never().is_some() {
            sent += 1;
            assert!(sent <= 1000, "no back-pressure");
        }
        let blocked = tokio::spawn(async move { a.tx.send(Bytes::new()).await });
        link.cut();
        assert!(blocked.await.unwrap().is_err());
    })
    .await
}

#[tokio::test]
async fn mem_back_pressure() {
    guarded(async {
        let (mut a, mut b) = mem::pair();
        let mut sent = 0usize;
        while let Some(result) = a.tx.send(Bytes::from(vec![sent as u8])).now_or_never() {
            result.unwrap();
            sent += 1;
            assert!(sent <= 1000, "no back-pressure");
        }
        assert!(sent >= 1, "nothing could be sent");
        // One message out makes room for one more.
        assert_eq!(recv_some(&mut b.rx).await[0], 0);
        a.tx.send(Bytes::from_static(b"more")).await.unwrap();
    })
    .await
}

#[tokio::test]
async fn mem_transport_passes_endpoint_facts() {
    guarded(async {
        let (transport, mut acceptor) = MemTransport::new();
        assert_eq!(transport.name(), "mem");
        let ep = Endpoint {
            url: "mem://server".to_owned(),
            subprotocol: "hoody-tunnel.v1".to_owned(),
            bearer: Some("tok".to_owned()),
        };
        let mut client = transport.connect(&ep).await.unwrap();
        let (mut server, link) = acceptor.accept_with_link().await.unwrap();
        assert_eq!(client.info.transport, "mem");
        assert_eq!(client.info.subprotocol.as_deref(), Some("hoody-tunnel.v1"));
        assert_eq!(client.info.bearer, None);
        assert_eq!(server.info.subprotocol.as_deref(), Some("hoody-tunnel.v1"));
        assert_eq!(server.info.bearer.as_deref(), Some("tok"));
        client.tx.send(Bytes::from_static(b"hi")).await.unwrap();
        assert_eq!(recv_some(&mut server.rx).await, Bytes::from_static(b"hi"));
        link.cut();
        assert!(client.rx.recv().await.is_err());

        drop(acceptor);
        let err = transport.connect(&ep).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    })
    .await
}

#[test]
fn transport_names() {
    assert_eq!(WsTransport::new().name(), "ws");
}
