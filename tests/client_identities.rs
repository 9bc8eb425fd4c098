//! Issue 12: client identities. A server with a clients file gives each client its own token
//! and scope: routes and ports, pull, forward, session count, bandwidth. Two clients with
//! disjoint scopes share one server; neither can bind, take over or resume what is the other's;
//! a reload ends removed clients' sessions and revokes exactly the bindings a shrunk scope no
//! longer covers. The binary's side (flags, SIGHUP, `token new`, `admin reload`) is in
//! tests/clients_cli.rs; raw hoody-style frames are in tests/client_identities_hoody.rs.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use underpass::client::{ClientError, ClientOptions, ClientSession, HttpExpose, StreamHandler};
use underpass::proto::{Bind, BindErrorCode, BindKind, BindMode, ErrorCode};

const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";

/// Alice: her own names (one a glob), one port, no pull, no assigned names. Bob: his name, one
/// port, pull, forward to `forward`.
fn two_clients(alice_port: u16, bob_port: u16, extra_alice: &str) -> String {
    client_block(
        "alice",
        ALICE,
        &format!(
            "subdomains = [\"alice\", \"alice-*\", \"shared\"]\nrandom_subdomain = false\n\
             ports = [\"{alice_port}\"]\n{extra_alice}"
        ),
    ) + &client_block(
        "bob",
        BOB,
        &format!("subdomains = [\"bob\", \"shared\"]\nports = [{bob_port}]\npull = true"),
    )
}

fn host(route: &str) -> String {
    format!("{route}.{DOMAIN}")
}

#[tokio::test]
async fn each_client_binds_its_own_routes_and_ports_and_is_refused_the_others() {
    let (pa, pb) = (unused_addr().port(), unused_addr().port());
    let file = TempClients::new(&two_clients(pa, pb, ""));
    let server = clients_server(&file, |_| {}).await;
    let app = echo_app("app").await;
    let echo = echo_server().await;
    let alice = connect_as(&server, ALICE).await;
    let bob = connect_as(&server, BOB).await;

    // Each one's own.
    let _a1 = alice.expose_http(app, &named("alice")).await.unwrap();
    let _a2 = alice.expose_http(app, &named("alice-dev")).await.unwrap();
    let at = alice.expose_tcp(echo.port(), pa).await.unwrap();
    assert_eq!(at.container_port(), pa);
    let _b1 = bob.expose_http(app, &named("bob")).await.unwrap();
    let bt = bob.expose_tcp(echo.port(), pb).await.unwrap();
    let pulled = bob.pull(echo, 0).await.unwrap();
    for route in ["alice", "alice-dev", "bob"] {
        let reply = get(server.local_addr(), &host(route), "/").await;
        assert_eq!(reply.status, 200, "{route}: {}", reply.text());
    }
    for port in [pa, bt.container_port(), pulled.container_port()] {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(tcp_roundtrip(addr, b"hello").await, b"hello");
    }

    // Each one refused the other's, and what its scope leaves out.
    let (code, message) = refused(alice.expose_http(app, &named("bob")).await);
    assert_eq!(code, BindErrorCode::ForbiddenRoute);
    assert!(
        message.contains("client 'alice' may not bind subdomain 'bob'"),
        "{message}"
    );
    let (code, _) = refused(bob.expose_http(app, &named("alice-x")).await);
    assert_eq!(code, BindErrorCode::ForbiddenRoute);
    let (code, _) = refused(alice.expose_http(app, &HttpExpose::route(None)).await);
    assert_eq!(
        code,
        BindErrorCode::ForbiddenRoute,
        "random_subdomain = false"
    );
    let (code, _) = refused(alice.expose_tcp(echo.port(), pb).await);
    assert_eq!(code, BindErrorCode::ForbiddenPort);
    let (code, _) = refused(bob.expose_tcp(echo.port(), pa).await);
    assert_eq!(code, BindErrorCode::ForbiddenPort);
    let (code, message) = refused(alice.expose_http(app, &HttpExpose::port(pb)).await);
    assert_eq!(code, BindErrorCode::ForbiddenPort, "{message}");
    let (code, message) = refused(alice.pull(echo, 0).await);
    assert_eq!(code, BindErrorCode::ForbiddenPort);
    assert!(message.contains("pull = false"), "{message}");
    let (code, _) = refused(bob.forward(0, 5432).await);
    assert_eq!(code, BindErrorCode::ForbiddenPort);
    // Bob's one port is in use: a server-picked port comes from his ports only.
    let (code, message) = refused(bob.expose_tcp(echo.port(), 0).await);
    assert_eq!(code, BindErrorCode::PortInUse, "{message}");
    assert!(message.contains("among the client's ports"), "{message}");

    // Refusals leave both sessions serving.
    assert_eq!(
        get(server.local_addr(), &host("alice"), "/").await.status,
        200
    );
    assert_eq!(
        get(server.local_addr(), &host("bob"), "/").await.status,
        200
    );
    // A token nobody has is refused; so is the shared token the server does not have.
    let err = ClientSession::connect(&ClientOptions::new(server.control_url(), "unused"))
        .await
        .expect_err("refused");
    assert!(matches!(err, ClientError::Auth(_)), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn takeover_and_cluster_only_between_sessions_of_one_client() {
    let shared_port = unused_addr().port();
    let text = client_block(
        "alice",
        ALICE,
        &format!("subdomains = [\"shared\"]\nports = [{shared_port}]"),
    ) + &client_block(
        "bob",
        BOB,
        &format!("subdomains = [\"shared\"]\nports = [{shared_port}]"),
    );
    let file = TempClients::new(&text);
    let server = clients_server(&file, |_| {}).await;
    let app = echo_app("alice-1").await;
    let echo = echo_server().await;
    let alice1 = connect_as(&server, ALICE).await;
    let bob = connect_as(&server, BOB).await;
    let held = alice1.expose_http(app, &named("shared")).await.unwrap();
    let port = alice1.expose_tcp(echo.port(), shared_port).await.unwrap();

    // Bob's scope covers the route and the port, but they are Alice's.
    let take = HttpExpose {
        takeover: true,
        ..named("shared")
    };
    let (code, message) = refused(bob.expose_http(app, &take).await);
    assert_eq!(code, BindErrorCode::RouteTaken);
    assert!(message.contains("another client"), "{message}");
    assert!(
        !message.contains("alice"),
        "other clients stay unnamed: {message}"
    );
    let (code, _) = refused(bob.expose_http(app, &cluster("shared")).await);
    assert_eq!(code, BindErrorCode::RouteTaken);
    let take_port = Bind {
        takeover: Some(true),
        ..raw_bind(BindKind::Tcp, BindMode::Expose, shared_port)
    };
    let (code, message) = refused(bob.bind(take_port.clone(), StreamHandler::Tcp(echo)).await);
    assert_eq!(code, BindErrorCode::PortInUse);
    assert!(message.contains("another client"), "{message}");
    assert_eq!(server.state().counters.snapshot().takeovers, 0);
    assert!(alice1.revoked(held.bind_id()).is_none());

    // A second session of Alice may take both over.
    let alice2 = connect_as(&server, ALICE).await;
    let app2 = echo_app("alice-2").await;
    let _moved = alice2.expose_http(app2, &take).await.unwrap();
    let _moved_port = alice2
        .bind(take_port, StreamHandler::Tcp(echo))
        .await
        .unwrap();
    let (first, _) = within(5, alice1.next_revocation()).await.unwrap();
    assert!([held.bind_id(), port.bind_id()].contains(&first));
    let reply = get(server.local_addr(), &host("shared"), "/").await;
    assert_eq!(reply.json()["app"], "alice-2");
    server.shutdown().await;
}

#[tokio::test]
async fn resume_only_by_the_same_client() {
    let file = TempClients::new(&two_clients(unused_addr().port(), unused_addr().port(), ""));
    let server = clients_server(&file, |_| {}).await;
    let app = echo_app("alice").await;
    let alice = connect_as(&server, ALICE).await;
    let _b = alice.expose_http(app, &named("alice")).await.unwrap();
    let id = alice.session_id();

    // Bob presents Alice's session id: refused as if it did not exist.
    let bob_opts = ClientOptions::new(server.control_url(), BOB);
    let err = alice.resume(&bob_opts).await.expect_err("refused");
    assert!(matches!(err, ClientError::ResumeRefused(_)), "{err}");
    // Alice's session is untouched.
    assert_eq!(alice.session_id(), id);
    assert!(server.state().sessions.get(&id).is_some());
    assert_eq!(
        get(server.local_addr(), &host("alice"), "/").await.status,
        200
    );

    // Alice herself may resume it, even while it is still connected.
    let alice_opts = ClientOptions::new(server.control_url(), ALICE);
    within(10, alice.resume(&alice_opts)).await.unwrap();
    assert_eq!(alice.session_id(), id);
    assert_eq!(
        get(server.local_addr(), &host("alice"), "/").await.status,
        200
    );
    server.shutdown().await;
}

#[tokio::test]
async fn max_sessions_is_enforced_per_client() {
    let text = client_block("alice", ALICE, "max_sessions = 2") + &client_block("bob", BOB, "");
    let file = TempClients::new(&text);
    let server = clients_server(&file, |_| {}).await;
    let first = connect_as(&server, ALICE).await;
    let _second = connect_as(&server, ALICE).await;
    let opts = ClientOptions::new(server.control_url(), ALICE);
    match ClientSession::connect(&opts).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::RESOURCE_EXHAUSTED);
            assert!(
                message.contains("client 'alice' already has 2 sessions"),
                "{message}"
            );
        }
        other => panic!(
            "third session must be refused, got {:?}",
            other.map(|s| s.session_id())
        ),
    }
    // Other clients are not counted against Alice, nor she against them.
    let _bob = connect_as(&server, BOB).await;
    // When one of hers ends, the next one gets in.
    first.close();
    within(10, async {
        loop {
            if let Ok(s) = ClientSession::connect(&opts).await {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn reload_ends_removed_clients_and_revokes_exactly_what_a_scope_no_longer_covers() {
    let (pa, pb) = (unused_addr().port(), unused_addr().port());
    let file = TempClients::new(&two_clients(pa, pb, ""));
    let server = clients_server(&file, |_| {}).await;
    let app = echo_app("app").await;
    let echo = echo_server().await;
    let alice = connect_as(&server, ALICE).await;
    let bob = connect_as(&server, BOB).await;
    let kept = alice.expose_http(app, &named("alice")).await.unwrap();
    let dev = alice.expose_http(app, &named("alice-dev")).await.unwrap();
    let tcp = alice.expose_tcp(echo.port(), pa).await.unwrap();
    let _bobs = bob.expose_http(app, &named("bob")).await.unwrap();

    // Bob is gone; Alice keeps "alice" and her port, but not "alice-*".
    file.write(&client_block(
        "alice",
        ALICE,
        &format!("subdomains = [\"alice\"]\nports = [\"{pa}\"]"),
    ));
    let report = server.reload_clients().unwrap();
    assert_eq!(report.clients, ["alice"]);
    assert_eq!(report.ended_sessions, [bob.session_id()]);
    assert_eq!(report.revoked.len(), 1, "{:?}", report.revoked);
    assert_eq!(report.revoked[0].1, dev.bind_id());

    // Bob's session got GOAWAY and closed, and cannot come back.
    within(10, bob.closed()).await;
    assert!(bob.mux().inspect(|st| st.peer_went_away()));
    let err = ClientSession::connect(&ClientOptions::new(server.control_url(), BOB))
        .await
        .expect_err("bob's token is no longer valid");
    assert!(matches!(err, ClientError::Auth(_)), "{err}");
    assert_eq!(
        get(server.local_addr(), &host("bob"), "/").await.status,
        404
    );

    // Alice lost exactly "alice-dev", with a reason.
    let (revoked, reason) = within(5, alice.next_revocation()).await.unwrap();
    assert_eq!(revoked, dev.bind_id());
    assert!(reason.contains("clients file reloaded"), "{reason}");
    assert!(reason.contains("alice-dev"), "{reason}");
    assert!(alice.revoked(kept.bind_id()).is_none());
    assert!(alice.revoked(tcp.bind_id()).is_none());
    assert_eq!(
        get(server.local_addr(), &host("alice-dev"), "/")
            .await
            .status,
        404
    );
    assert_eq!(
        get(server.local_addr(), &host("alice"), "/").await.status,
        200
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], pa));
    assert_eq!(tcp_roundtrip(addr, b"still").await, b"still");
    // And the new scope holds for new binds.
    let (code, _) = refused(alice.expose_http(app, &named("alice-dev")).await);
    assert_eq!(code, BindErrorCode::ForbiddenRoute);
    server.shutdown().await;
}

#[tokio::test]
async fn a_malformed_file_on_reload_keeps_the_old_one() {
    let file = TempClients::new(&two_clients(unused_addr().port(), unused_addr().port(), ""));
    let server = clients_server(&file, |_| {}).await;
    let app = echo_app("app").await;
    let bob = connect_as(&server, BOB).await;
    let _b = bob.expose_http(app, &named("bob")).await.unwrap();

    // Valid for the first client, an unknown key for the second: nothing of it is used.
    file.write(
        &(client_block("carol", "carol-token-0123", "subdomains = [\"carol\"]")
            + &client_block("alice", ALICE, "subdomain = [\"alice\"]")),
    );
    let err = server.reload_clients().unwrap_err();
    assert!(err.contains("line 9"), "{err}");
    assert!(err.contains("unknown field `subdomain`"), "{err}");
    assert!(err.contains("previous clients stay in force"), "{err}");

    // The old clients, scopes and sessions are all still there.
    assert!(!bob.mux().is_closed());
    assert_eq!(
        get(server.local_addr(), &host("bob"), "/").await.status,
        200
    );
    let alice = connect_as(&server, ALICE).await;
    let _a = alice.expose_http(app, &named("alice-x")).await.unwrap();
    let carol = ClientOptions::new(server.control_url(), "carol-token-0123");
    assert!(matches!(
        ClientSession::connect(&carol).await,
        Err(ClientError::Auth(_))
    ));
    server.shutdown().await;
}

/// A local app that sends `len` bytes on every connection, then closes it.
async fn source(len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tcp.write_all(&pattern(len, 3)).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

const MIB: usize = 1 << 20;

#[tokio::test]
async fn the_bandwidth_limit_holds_over_all_of_a_clients_streams_in_each_direction() {
    let text = client_block(
        "alice",
        ALICE,
        "subdomains = [\"alice\"]\nports = [\"20000-65000\"]\nmax_bytes_per_second = \"1MiB\"",
    );
    let file = TempClients::new(&text);
    let server = clients_server(&file, |_| {}).await;
    let alice = connect_as(&server, ALICE).await;

    // Towards the client: two visitors upload 1.5 MiB each at once. 3 MiB at 1 MiB/s takes at
    // least 2.5 s whatever the machine (the bucket starts with 0.1 s and each stream may run
    // one read ahead).
    let up = alice
        .expose_tcp(counting_sink().await.port(), 0)
        .await
        .unwrap();
    let up = SocketAddr::from(([127, 0, 0, 1], up.container_port()));
    let started = tokio::time::Instant::now();
    let uploads = (0..2).map(|i| async move {
        let mut tcp = tokio::net::TcpStream::connect(up).await.unwrap();
        tcp.write_all(&pattern(3 * MIB / 2, i)).await.unwrap();
        tcp.shutdown().await.unwrap();
        let mut n = [0u8; 8];
        tcp.read_exact(&mut n).await.unwrap();
        u64::from_be_bytes(n)
    });
    let counts = within(60, futures_util::future::join_all(uploads)).await;
    assert_eq!(counts, [3 * MIB as u64 / 2; 2], "every byte arrives");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2500), "3 MiB up in {took:?}");

    // From the client: two visitors download 1.5 MiB each.
    let down = alice
        .expose_tcp(source(3 * MIB / 2).await.port(), 0)
        .await
        .unwrap();
    let down = SocketAddr::from(([127, 0, 0, 1], down.container_port()));
    let started = tokio::time::Instant::now();
    let downloads = (0..2).map(|_| async move {
        let mut tcp = tokio::net::TcpStream::connect(down).await.unwrap();
        let mut got = Vec::new();
        tcp.read_to_end(&mut got).await.unwrap();
        got
    });
    for got in within(60, futures_util::future::join_all(downloads)).await {
        assert!(got == pattern(3 * MIB / 2, 3), "intact download");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "3 MiB down in {took:?}"
    );

    // An HTTP answer counts the same way.
    let body = bytes::Bytes::from(pattern(3 * MIB, 5));
    let served = body.clone();
    let port = app(move |_req| {
        let b = served.clone();
        async move { http::Response::new(full_body(b)) }
    })
    .await;
    let _route = alice.expose_http(port, &named("alice")).await.unwrap();
    let started = tokio::time::Instant::now();
    let reply = within(60, get(server.local_addr(), &host("alice"), "/")).await;
    assert_eq!(reply.body, body);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "3 MiB HTTP answer in {took:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn admin_listings_kill_and_metrics_name_the_client() {
    const ADMIN: &str = "admin-token-0123456789";
    let (pa, pb) = (unused_addr().port(), unused_addr().port());
    let file = TempClients::new(&two_clients(pa, pb, ""));
    let server = clients_server(&file, |cfg| {
        cfg.token = Some(TOKEN.into());
        cfg.admin_token = Some(ADMIN.into());
    })
    .await;
    let app = echo_app("app").await;
    let alice = connect_as(&server, ALICE).await;
    let shared = connect_as(&server, TOKEN).await;
    let _a = alice.expose_http(app, &named("alice")).await.unwrap();
    let _d = shared.expose_http(app, &named("anything")).await.unwrap();
    let _ = refused(alice.expose_http(app, &named("bob")).await);
    // A body each way, so both byte counters move.
    let posted = request(
        server.local_addr(),
        http::Method::POST,
        &host("alice"),
        "/",
        &[],
        "some bytes for the app",
    )
    .await;
    assert_eq!(posted.status, 200);

    let admin = |path: &str| {
        let addr = server.local_addr();
        let path = path.to_string();
        async move {
            let auth = format!("Bearer {ADMIN}");
            get_with(addr, "localhost", &path, &[("authorization", &auth)]).await
        }
    };
    let sessions = admin("/__underpass__/api/v1/sessions").await.json();
    let client_of = |id: String| {
        sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sessionId"] == id.as_str())
            .map(|s| s["client"].clone())
    };
    assert_eq!(client_of(alice.session_id()), Some(Value::from("alice")));
    assert_eq!(client_of(shared.session_id()), Some(Value::from("default")));
    let tunnels = admin("/__underpass__/api/v1/tunnels").await.json();
    assert!(tunnels["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["client"].is_string()));
    let bindings = admin("/__underpass__/api/v1/bindings").await.json();
    let alice_route = bindings["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["route"] == "alice")
        .unwrap();
    assert_eq!(alice_route["client"], "alice");

    let metrics = admin("/__underpass__/metrics").await.text();
    for line in [
        "underpass_client_sessions{client=\"alice\"} 1",
        "underpass_client_sessions{client=\"bob\"} 0",
        "underpass_client_sessions{client=\"default\"} 1",
        "underpass_client_bindings{client=\"alice\"} 1",
        "underpass_client_refused_binds_total{client=\"alice\",code=\"FORBIDDEN_ROUTE\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line}:\n{metrics}");
    }
    let bytes = |metrics: &str, name: &str| -> u64 {
        let prefix = format!("{name}{{client=\"alice\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix}"))
            .parse()
            .unwrap()
    };
    let sent = bytes(&metrics, "underpass_client_bytes_sent_total");
    let received = bytes(&metrics, "underpass_client_bytes_received_total");
    assert!(sent > 0 && received > 0, "{sent} {received}");

    // A kill names the client too, and the client's totals outlive its session.
    let auth = format!("Bearer {ADMIN}");
    let killed = request(
        server.local_addr(),
        http::Method::DELETE,
        "localhost",
        &format!(
            "/__underpass__/api/v1/sessions/{}?grace_ms=0",
            alice.session_id()
        ),
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(killed.status, 202);
    assert_eq!(killed.json()["client"], "alice");
    within(10, alice.closed()).await;
    within(10, async {
        while server.state().sessions.get(&alice.session_id()).is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let metrics = admin("/__underpass__/metrics").await.text();
    assert!(metrics.contains("underpass_client_sessions{client=\"alice\"} 0"));
    assert!(bytes(&metrics, "underpass_client_bytes_sent_total") >= sent);
    assert!(bytes(&metrics, "underpass_client_bytes_received_total") >= received);
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_clients_file_everyone_is_default() {
    let server = domain_server().await;
    let app = echo_app("app").await;
    let a = client(&server).await;
    let b = client(&server).await;
    let held = a.expose_http(app, &named("demo")).await.unwrap();
    // One client: takeover between any two sessions works as before.
    let take = HttpExpose {
        takeover: true,
        ..named("demo")
    };
    let _moved = b.expose_http(app, &take).await.unwrap();
    let (revoked, _) = within(5, a.next_revocation()).await.unwrap();
    assert_eq!(revoked, held.bind_id());
    let entry = server.state().sessions.get(&b.session_id()).unwrap();
    assert_eq!(entry.client.name.as_ref(), "default");
    server.shutdown().await;
}
