//! WebSocket carrier specifics: upgrade refusals, subprotocols, bearer, paths, TLS, close codes.

mod support;

use support::*;

#[tokio::test]
async fn ws_unsupported_subprotocol_gets_400() {
    guarded(async {
        let server = TestServer::start(None).await;
        let mut ep = endpoint(format!("ws://{}", server.addr));
        ep.subprotocol = "bogus.v9".to_owned();
        let err = WsTransport::new()
            .connect(&ep)
            .await
            .expect_err("upgrade accepted");
        let message = err.to_string();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(message.contains("upgrade refused"), "{message}");
        assert!(message.contains("400"), "{message}");
        assert!(
            message.contains("unsupported WebSocket subprotocol"),
            "{message}"
        );
    })
    .await
}

#[tokio::test]
async fn ws_info_and_bearer_reach_the_server() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut ep = endpoint(format!("http://{}/", server.addr));
        ep.bearer = Some("s3cret-token".to_owned());
        let client = WsTransport::new().connect(&ep).await.unwrap();
        let accepted = server.next().await;
        let info = &accepted.carrier.info;
        assert_eq!(info.transport, "ws");
        assert_eq!(info.subprotocol.as_deref(), Some(SUBPROTOCOL));
        assert_eq!(info.bearer.as_deref(), Some("s3cret-token"));
        assert_eq!(info.peer.map(|p| p.ip()), Some([127, 0, 0, 1].into()));
        assert_eq!(accepted.uri.path(), "/__underpass__/control");
        assert_eq!(client.info.transport, "ws");
        assert_eq!(client.info.subprotocol.as_deref(), Some(SUBPROTOCOL));
        assert_eq!(client.info.peer, Some(server.addr));
        assert_eq!(client.info.bearer, None);

        // Without a token the server sees none.
        let _client = WsTransport::new()
            .connect(&endpoint(format!("ws://{}", server.addr)))
            .await
            .unwrap();
        assert_eq!(server.next().await.carrier.info.bearer, None);
    })
    .await
}

#[tokio::test]
async fn ws_explicit_path_is_kept() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let url = format!("ws://{}/api/v1/tunnel/connect?region=eu", server.addr);
        let _client = WsTransport::new().connect(&endpoint(url)).await.unwrap();
        let uri = server.next().await.uri;
        assert_eq!(uri.path(), "/api/v1/tunnel/connect");
        assert_eq!(uri.query(), Some("region=eu"));
    })
    .await
}

/// A one-connection server that reads the request head and answers with `respond(key)`.
async fn canned_server(respond: fn(&str) -> String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if tcp.read_exact(&mut byte).await.is_err() {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .unwrap();
        tcp.write_all(respond(&key).as_bytes()).await.unwrap();
        // Hold the connection until the client gives up.
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    addr
}

#[tokio::test]
async fn ws_client_refuses_101_without_subprotocol() {
    guarded(async {
        let addr = canned_server(|key| {
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            )
        })
        .await;
        let err = WsTransport::new()
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("subprotocol"), "{err}");
    })
    .await
}

#[tokio::test]
async fn ws_401_is_permission_denied() {
    guarded(async {
        let addr = canned_server(|_| {
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 9\r\nConnection: close\r\n\r\nbad token"
                .to_owned()
        })
        .await;
        let err = WsTransport::new()
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        let message = err.to_string();
        assert!(
            message.contains("upgrade refused") && message.contains("401"),
            "{message}"
        );
    })
    .await
}

#[tokio::test]
async fn ws_handshake_timeout() {
    guarded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let _hold = tokio::spawn(async move {
            let (_tcp, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await
        });
        let err = WsTransport::new()
            .handshake_timeout(Duration::from_millis(200))
            .connect(&endpoint(format!("ws://{addr}")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    })
    .await
}

#[tokio::test]
async fn ws_bad_url_is_invalid_input() {
    let err = WsTransport::new()
        .connect(&endpoint("ftp://127.0.0.1".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// A plain tungstenite client, to send what a carrier never sends.
async fn raw_client(addr: SocketAddr) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(request, tcp)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn ws_text_message_is_invalid_data() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut raw = raw_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        raw.send(Message::text("hello")).await.unwrap();
        let err = carrier.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    })
    .await
}

#[tokio::test]
async fn ws_pings_are_skipped_and_answered() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut raw = raw_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        raw.send(Message::Ping(Bytes::from_static(b"p1")))
            .await
            .unwrap();
        raw.send(Message::Pong(Bytes::from_static(b"unsolicited")))
            .await
            .unwrap();
        raw.send(Message::Binary(Bytes::from_static(b"data")))
            .await
            .unwrap();
        assert_eq!(
            recv_some(&mut carrier.rx).await,
            Bytes::from_static(b"data")
        );
        // The pong went out while recv read on.
        match raw.next().await {
            Some(Ok(Message::Pong(payload))) => assert_eq!(payload, Bytes::from_static(b"p1")),
            other => panic!("expected a pong, got {other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn ws_abnormal_close_code_is_reported() {
    guarded(async {
        let mut server = TestServer::start(None).await;
        let mut raw = raw_client(server.addr).await;
        let mut carrier = server.next().await.carrier;
        raw.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Policy,
            reason: "resume grace expired".into(),
        })))
        .await
        .unwrap();
        let err = carrier.rx.recv().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
        let reason = close_reason(&err).expect("no close reason");
        assert_eq!(
            (reason.code, reason.reason.as_str()),
            (1008, "resume grace expired")
        );
        // Not a clean close, then or later.
        let again = carrier.rx.recv().await.unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::ConnectionAborted);
    })
    .await
}

#[tokio::test]
async fn ws_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = WsTransport::new()
        .connect(&endpoint(format!("ws://{addr}")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn wss_with_untrusted_certificate_fails() {
    guarded(async {
        let (acceptor, _trusting_client) = test_tls();
        let server = TestServer::start(Some(acceptor)).await;
        // Mozilla roots do not include the test certificate.
        let result = WsTransport::new()
            .connect(&endpoint(format!("wss://{}", server.addr)))
            .await;
        assert!(result.is_err());
    })
    .await
}
