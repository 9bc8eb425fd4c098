//! Codec tests: every frame type round-trips, every malformed input gets its own error, and random
//! bytes never panic the decoder.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use serde_json::json;
use underpass::proto::*;

fn encode_all(frames: &[Frame]) -> Bytes {
    let mut out = BytesMut::new();
    for f in frames {
        encode_frame(f, &mut out).unwrap();
    }
    out.freeze()
}

fn every_frame() -> Vec<Frame> {
    vec![
        Frame::Hello(Hello {
            version: "hoody-tunnel.v2".into(),
            capabilities: vec!["multi-ws".into()],
            auth: Some(HelloAuth {
                kind: "bearer".into(),
                token: "t".into(),
            }),
            resume: Some(HelloResume {
                session_id: "s1".into(),
            }),
            max_connections: Some(4),
        }),
        Frame::HelloOk(HelloOk {
            session_id: "s1".into(),
            resumed: false,
            resumed_binds: vec![ResumedBind {
                bind_id: 1,
                kind: BindKind::Http,
                mode: BindMode::Expose,
                container_port: 3000,
            }],
            connections_granted: Some(4),
            join_tickets: Some(vec![JoinTicket {
                index: 1,
                nonce: "n".into(),
                expires_ms: 10_000,
            }]),
            stream_window: DEFAULT_STREAM_WINDOW,
            session_window: DEFAULT_SESSION_WINDOW,
            server_version: Some("0.1.0".into()),
            domain: None,
            max_streams: Some(10_000),
        }),
        Frame::Bind(Bind {
            client_bind_ref: json!("r1"),
            kind: BindKind::Http,
            mode: BindMode::Expose,
            container_port: Some(0),
            label: None,
            takeover: Some(true),
            host: None,
            route: Some(RouteSpec {
                subdomain: Some("demo".into()),
                mode: RouteMode::Cluster,
            }),
            basic_auth: Some(BasicAuth {
                username: None,
                password: "pw".into(),
            }),
            cidr_allow: Some(vec!["10.0.0.0/8".into()]),
            cidr_deny: Some(vec!["10.6.6.6".into()]),
        }),
        Frame::BindOk(BindOk {
            client_bind_ref: json!(7),
            bind_id: 3,
            container_port: 20001,
            public_url: None,
            subdomain: Some("demo".into()),
        }),
        Frame::BindErr(BindErr {
            client_bind_ref: json!(7),
            code: BindErrorCode::PortInUse,
            message: "busy".into(),
        }),
        Frame::Unbind(BindRef { bind_id: 3 }),
        Frame::UnbindOk(BindRef { bind_id: 3 }),
        Frame::UnbindErr(UnbindErr {
            bind_id: 3,
            message: Some("unknown".into()),
        }),
        Frame::Join(Join {
            session_id: "s1".into(),
            index: 2,
            nonce: "n".into(),
        }),
        Frame::JoinOk(JoinOk {
            session_id: "s1".into(),
            index: 2,
        }),
        Frame::JoinErr(JoinErr {
            code: "INVALID_TICKET".into(),
            message: "no".into(),
        }),
        Frame::StreamOpen {
            stream_id: 2,
            open: StreamOpen {
                bind_id: 3,
                kind: BindKind::Http,
                method: Some("GET".into()),
                target: Some("/x?y=1".into()),
                headers: vec![("host".into(), "demo.example.com".into())],
                is_upgrade: true,
                visitor_addr: None,
                server_addr: None,
            },
        },
        Frame::Data {
            stream_id: 2,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Eof { stream_id: 2 },
        Frame::Reset {
            stream_id: 2,
            code: ErrorCode::BIND_TAKEOVER,
            reason: "taken".into(),
        },
        Frame::Window {
            stream_id: 0,
            increment: 65_536,
        },
        Frame::ResponseHead {
            stream_id: 2,
            head: ResponseHead {
                status: 101,
                headers: vec![("upgrade".into(), "websocket".into())],
                is_final: true,
            },
        },
        Frame::Ping(0xDEAD_BEEF),
        Frame::Pong(0xDEAD_BEEF),
        Frame::GoAway(GoAway {
            code: ErrorCode::NO_ERROR,
            message: "bye".into(),
        }),
        Frame::BindRevoked(BindRevoked {
            bind_id: 3,
            reason: "takeover".into(),
        }),
        Frame::TicketRequest(TicketRequest {
            index: 2,
            received_bytes: Some(1 << 20),
        }),
        Frame::Ticket(CarrierTicket {
            index: 2,
            nonce: Some("n0nce".into()),
            expires_in_ms: Some(30_000),
            error: None,
            received_bytes: Some(12),
        }),
        Frame::Ticket(CarrierTicket::refused(5, "INVALID_INDEX", "no carrier 5")),
    ]
}

#[test]
fn every_frame_type_round_trips_in_one_message() {
    let frames = every_frame();
    let decoded = decode_message(&encode_all(&frames)).unwrap();
    assert_eq!(decoded, frames);
}

#[test]
fn json_uses_protocol_field_names() {
    let mut out = BytesMut::new();
    encode_frame(&every_frame()[1], &mut out).unwrap();
    let text = std::str::from_utf8(&out[9..]).unwrap();
    for key in [
        "sessionId",
        "resumedBinds",
        "connectionsGranted",
        "joinTickets",
        "expiresMs",
        "streamWindow",
        "sessionWindow",
        "containerPort",
        "bindId",
    ] {
        assert!(text.contains(key), "{key} missing in {text}");
    }
    let mut out = BytesMut::new();
    encode_frame(&every_frame()[3], &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out[9..]).unwrap();
    assert_eq!(
        v["publicUrl"],
        serde_json::Value::Null,
        "publicUrl is present as null"
    );
    assert_eq!(v["clientBindRef"], json!(7));
}

#[test]
fn foreign_client_payloads_decode() {
    // As another client of the protocol would write them: minimal fields, unknown extras.
    let bind =
        br#"{"clientBindRef":"a","kind":"tcp","mode":"pull","containerPort":5432,"extra":1}"#;
    let mut msg = header(0x03, 0, bind.len() as u32);
    msg.put_slice(bind);
    match &decode_message(&msg.freeze()).unwrap()[0] {
        Frame::Bind(b) => {
            assert_eq!(b.kind, BindKind::Tcp);
            assert_eq!(b.mode, BindMode::Pull);
            assert_eq!(b.container_port, Some(5432));
        }
        other => panic!("{other:?}"),
    }
    let weird = br#"{"clientBindRef":1,"kind":"udp","mode":"sideways"}"#;
    let mut msg = header(0x03, 0, weird.len() as u32);
    msg.put_slice(weird);
    match &decode_message(&msg.freeze()).unwrap()[0] {
        Frame::Bind(b) => {
            assert_eq!(b.kind, BindKind::Unknown);
            assert_eq!(b.mode, BindMode::Unknown);
        }
        other => panic!("{other:?}"),
    }
}

fn header(ty: u8, sid: u32, len: u32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u8(ty);
    b.put_u32(sid);
    b.put_u32(len);
    b
}

#[test]
fn too_short_header() {
    assert_eq!(
        decode_message(&Bytes::from_static(&[0x12, 0, 0])),
        Err(DecodeError::TooShort(3))
    );
}

#[test]
fn truncated_payload() {
    let mut m = header(0x12, 2, 10);
    m.put_slice(b"abc");
    assert_eq!(
        decode_message(&m.freeze()),
        Err(DecodeError::Truncated {
            declared: 10,
            available: 3
        })
    );
}

#[test]
fn payload_too_large_is_caught_before_allocating() {
    let m = header(0x12, 2, 65_537);
    assert_eq!(
        decode_message(&m.freeze()),
        Err(DecodeError::PayloadTooLarge(65_537))
    );
    let m = header(0x12, 2, u32::MAX);
    assert_eq!(
        decode_message(&m.freeze()),
        Err(DecodeError::PayloadTooLarge(u32::MAX as usize))
    );
}

#[test]
fn message_too_large() {
    let m = Bytes::from(vec![0u8; MAX_MESSAGE_BYTES + 1]);
    assert_eq!(
        decode_message(&m),
        Err(DecodeError::MessageTooLarge(MAX_MESSAGE_BYTES + 1))
    );
}

#[test]
fn too_many_frames() {
    let frames: Vec<Frame> = (0..65).map(|_| Frame::Eof { stream_id: 2 }).collect();
    assert_eq!(
        decode_message(&encode_all(&frames)),
        Err(DecodeError::TooManyFrames)
    );
    let frames: Vec<Frame> = (0..64).map(|_| Frame::Eof { stream_id: 2 }).collect();
    assert_eq!(decode_message(&encode_all(&frames)).unwrap().len(), 64);
}

#[test]
fn unknown_mandatory_type_is_rejected() {
    assert_eq!(
        decode_message(&header(0x11, 0, 0).freeze()),
        Err(DecodeError::UnknownType(0x11))
    );
    assert_eq!(
        decode_message(&header(0x80, 0, 0).freeze()),
        Err(DecodeError::UnknownType(0x80))
    );
}

#[test]
fn extension_frames_are_skipped() {
    let mut m = header(0x55, 0, 3);
    m.put_slice(b"xyz");
    let mut tail = BytesMut::new();
    encode_frame(&Frame::Ping(9), &mut tail).unwrap();
    m.put_slice(&tail);
    assert_eq!(decode_message(&m.freeze()).unwrap(), vec![Frame::Ping(9)]);
}

#[test]
fn malformed_payloads_are_named() {
    let mut m = header(0x15, 2, 3);
    m.put_slice(&[0, 0, 1]);
    assert!(matches!(
        decode_message(&m.freeze()),
        Err(DecodeError::BadPayload {
            frame: "WINDOW",
            ..
        })
    ));
    let mut m = header(0x01, 0, 5);
    m.put_slice(b"nope!");
    assert!(matches!(
        decode_message(&m.freeze()),
        Err(DecodeError::BadPayload { frame: "HELLO", .. })
    ));
    let m = header(0x14, 2, 0);
    assert!(matches!(
        decode_message(&m.freeze()),
        Err(DecodeError::BadPayload { frame: "RESET", .. })
    ));
}

#[test]
fn data_payload_is_a_zero_copy_slice() {
    let msg = encode_all(&[Frame::Data {
        stream_id: 2,
        data: Bytes::from(vec![5u8; 1000]),
    }]);
    let frames = decode_message(&msg).unwrap();
    let Frame::Data { data, .. } = &frames[0] else {
        panic!()
    };
    assert_eq!(data.as_ptr(), msg[9..].as_ptr());
}

#[test]
fn oversized_json_fails_to_encode() {
    let open = StreamOpen {
        bind_id: 1,
        kind: BindKind::Http,
        method: Some("GET".into()),
        target: Some("/".repeat(70_000)),
        headers: vec![],
        is_upgrade: false,
        visitor_addr: None,
        server_addr: None,
    };
    let mut out = BytesMut::new();
    assert!(matches!(
        encode_frame(&Frame::StreamOpen { stream_id: 2, open }, &mut out),
        Err(EncodeError::PayloadTooLarge { .. })
    ));
}

#[test]
fn stream_decoder_splits_concatenated_frames() {
    let msg = encode_all(&every_frame());
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    for piece in msg.chunks(7) {
        dec.extend(piece);
        while let Some(f) = dec.next_frame_bytes().unwrap() {
            out.extend(decode_message(&f).unwrap());
        }
    }
    assert_eq!(out, every_frame());
}

#[test]
fn limits_match_the_transport_limit() {
    assert_eq!(MAX_MESSAGE_BYTES, underpass_transports::MAX_MESSAGE_BYTES);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_message(&Bytes::from(data.clone()));
        let mut dec = FrameDecoder::new();
        dec.extend(&data);
        while let Ok(Some(f)) = dec.next_frame_bytes() {
            let _ = decode_message(&f);
        }
    }

    #[test]
    fn random_frames_after_a_valid_header_never_panic(ty in any::<u8>(), sid in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut m = header(ty, sid, payload.len() as u32);
        m.put_slice(&payload);
        let _ = decode_message(&m.freeze());
    }
}

#[test]
fn a_tcp_open_names_its_connection_only_when_known() {
    let visitor: std::net::SocketAddr = "203.0.113.7:51000".parse().unwrap();
    let server: std::net::SocketAddr = "10.0.0.2:2222".parse().unwrap();
    let open = StreamOpen::tcp(4).from_connection(visitor, Some(server));
    let mut out = BytesMut::new();
    encode_frame(
        &Frame::StreamOpen {
            stream_id: 2,
            open: open.clone(),
        },
        &mut out,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out[9..]).unwrap();
    assert_eq!(v["visitorAddr"], "203.0.113.7:51000");
    assert_eq!(v["serverAddr"], "10.0.0.2:2222");
    match &decode_message(&out.freeze()).unwrap()[0] {
        Frame::StreamOpen { open: back, .. } => assert_eq!(back, &open),
        other => panic!("{other:?}"),
    }
    // A plain open keeps the protocol's shape: no extension keys at all.
    let mut out = BytesMut::new();
    let plain = Frame::StreamOpen {
        stream_id: 2,
        open: StreamOpen::tcp(4),
    };
    encode_frame(&plain, &mut out).unwrap();
    assert_eq!(&out[9..], br#"{"bindId":4,"kind":"tcp"}"#);
}

/// A frame of type `ty` with a JSON payload written by hand.
fn raw_json(ty: u8, json: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(ty);
    out.put_u32(0);
    out.put_u32(json.len() as u32);
    out.put_slice(json.as_bytes());
    out.freeze()
}

#[test]
fn json_errors_never_quote_the_peers_values() {
    const SECRET: &str = "SECRET-4f2a8c";
    let cases = [
        (0x01, format!(r#"{{"version":"hoody-tunnel.v1","auth":"{SECRET}"}}"#), "invalid type(string), expected struct HelloAuth"),
        (0x01, format!(r#"{{"version":"hoody-tunnel.v1","auth":{{"kind":"bearer","token":["{SECRET}"]}}}}"#), "invalid type(sequence)"),
        (0x03, r#"{"clientBindRef":1,"kind":"http","mode":"expose","basicAuth":{"password":918273645546372819}}"#.to_string(), "invalid type(integer), expected a string"),
        (0x03, format!(r#"{{"clientBindRef":1,"kind":"http","mode":"expose","route":{{"mode":"{SECRET}"}}}}"#), "unknown variant, expected `single` or `cluster`"),
        (0x01, format!(r#"{{"auth":{{"kind":"bearer","token":"{SECRET}"}}}}"#), "missing field `version`"),
        (0x01, format!(r#"{{"version":"{SECRET}"#), "truncated JSON"),
        (0x01, format!(r#"{{"version":{SECRET}}}"#), "not valid JSON at line 1 column"),
    ];
    for (ty, json, expected) in cases {
        let err = decode_message(&raw_json(ty, &json))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(SECRET), "{err}");
        assert!(!err.contains("918273645546372819"), "{err}");
        assert!(err.contains(expected), "{json}: {err}");
    }
}
