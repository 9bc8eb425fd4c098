//! Issue 4, raw TCP bindings end to end on real loopback sockets: tcp expose, pull and forward
//! each carry many concurrent connections and one 100 MiB transfer byte-exact and keep
//! half-close; closing the client or dropping a binding closes its server listener; port 0
//! picks a port; every BIND_ERR code comes from the case that should produce it.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use underpass::client::{Binding, ClientError, ClientSession, StreamHandler};
use underpass::proto::{Bind, BindErrorCode, BindKind, BindMode};
use underpass::server::Server;

/// Which way a binding carries connections.
#[derive(Debug, Clone, Copy)]
enum Direction {
    /// A visitor connects to the server's public port; the client's local app answers.
    Expose,
    /// Server-side code connects to the server's loopback port; the client's local app answers.
    Pull,
    /// Client-side code connects to the binding's local port; a server-side app answers.
    Forward,
}

const DIRECTIONS: [Direction; 3] = [Direction::Expose, Direction::Pull, Direction::Forward];

/// A binding of one direction in front of an app, and where test code connects to reach it.
struct Tunnel {
    // Held so the server, session and binding live as long as the tunnel.
    _server: Server,
    _session: ClientSession,
    _binding: Binding,
    /// Where the connecting side (visitor, server-side code, client-side code) dials.
    entry: SocketAddr,
}

/// A server and a client with one `dir` binding whose far end is `app` (an address on
/// loopback, which serves both sides since the test runs both in one process).
async fn tunnel(dir: Direction, app: SocketAddr) -> Tunnel {
    let server = server_with(|cfg| {
        // Forward reaches server-side ports only if the server allows them.
        cfg.allow_forward = vec![app.port()..=app.port()];
    })
    .await;
    let session = client(&server).await;
    let binding = within(10, async {
        match dir {
            Direction::Expose => session.expose_tcp(app.port(), 0).await,
            Direction::Pull => session.pull(app, 0).await,
            Direction::Forward => session.forward(0, app.port()).await,
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{dir:?} bind: {e}"));
    let entry = match dir {
        Direction::Forward => binding.local_addr().expect("forward has a local address"),
        _ => SocketAddr::from(([127, 0, 0, 1], binding.container_port())),
    };
    Tunnel {
        _server: server,
        _session: session,
        _binding: binding,
        entry,
    }
}

/// An app that reads until EOF and only then writes everything back and closes: its answer
/// arrives only if the caller's half-close went through and the other direction stayed open.
async fn reply_after_eof_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                if tcp.read_to_end(&mut got).await.is_ok() {
                    let _ = tcp.write_all(&got).await;
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

async fn concurrent_echoes(dir: Direction) {
    let t = tunnel(dir, echo_server().await).await;
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        // 4 KiB to 256 KiB.
        let len =
            4096 + (u32::from_le_bytes(pattern(4, i).try_into().unwrap()) as usize) % (252 << 10);
        let entry = t.entry;
        tasks.push(tokio::spawn(async move {
            let data = pattern(len, 1000 + i);
            let out = tcp_roundtrip(entry, &data).await;
            assert!(
                out == data,
                "{dir:?} connection {i}: {} bytes back of {len}",
                out.len()
            );
        }));
    }
    within(60, async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_expose_64_concurrent_echoes_byte_exact() {
    concurrent_echoes(Direction::Expose).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_64_concurrent_echoes_byte_exact() {
    concurrent_echoes(Direction::Pull).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_64_concurrent_echoes_byte_exact() {
    concurrent_echoes(Direction::Forward).await;
}

/// Streams `total` bytes of a repeating block through an echo and checks every byte coming
/// back against its position; the block length is not a power of two, so a lost, duplicated
/// or reordered chunk shows up as a mismatch.
async fn big_transfer(dir: Direction) {
    const TOTAL: u64 = 100 << 20;
    const WRITE_CHUNK: usize = 64 << 10;
    let block = std::sync::Arc::new(pattern((1 << 20) + 4099, 7));
    let t = tunnel(dir, echo_server().await).await;
    let started = Instant::now();
    let tcp = TcpStream::connect(t.entry).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (mut r, mut w) = tcp.into_split();
    let wblock = block.clone();
    let writer = tokio::spawn(async move {
        let mut pos = 0u64;
        while pos < TOTAL {
            let at = (pos % wblock.len() as u64) as usize;
            let n = WRITE_CHUNK
                .min(wblock.len() - at)
                .min((TOTAL - pos) as usize);
            w.write_all(&wblock[at..at + n]).await.unwrap();
            pos += n as u64;
        }
        w.shutdown().await.unwrap();
    });
    let reader = async {
        let mut buf = vec![0u8; 256 << 10];
        let mut pos = 0u64;
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                return pos;
            }
            let mut got = &buf[..n];
            while !got.is_empty() {
                let at = (pos % block.len() as u64) as usize;
                let m = got.len().min(block.len() - at);
                assert!(
                    got[..m] == block[at..at + m],
                    "{dir:?}: mismatch in the {m} bytes at offset {pos}"
                );
                pos += m as u64;
                got = &got[m..];
            }
            assert!(pos <= TOTAL, "{dir:?}: more bytes back than sent");
        }
    };
    let received = within(120, reader).await;
    within(10, writer).await.unwrap();
    assert_eq!(received, TOTAL, "{dir:?}: bytes back");
    eprintln!(
        "{dir:?}: 100 MiB echoed byte-exact in {:.2?}",
        started.elapsed()
    );
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_expose_100_mib_byte_exact() {
    big_transfer(Direction::Expose).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_100_mib_byte_exact() {
    big_transfer(Direction::Pull).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_100_mib_byte_exact() {
    big_transfer(Direction::Forward).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_keeps_the_return_direction_open_in_every_direction() {
    let app = reply_after_eof_server().await;
    for dir in DIRECTIONS {
        let t = tunnel(dir, app).await;
        within(10, async {
            let mut tcp = TcpStream::connect(t.entry).await.unwrap();
            tcp.write_all(b"hello").await.unwrap();
            tcp.shutdown().await.unwrap();
            let mut back = Vec::new();
            tcp.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"hello", "{dir:?}");
        })
        .await;
    }
}

/// Polls until connecting to `port` on loopback is refused (at most 30 s: on a loaded machine
/// the session's end can take seconds to reach the listener). A connection that is still
/// accepted in between must not be served.
async fn wait_until_refused(port: u16) {
    within(30, async {
        loop {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                // Caught in the backlog of a listener that is just closing.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("connecting to port {port}: {e}"),
                Ok(mut tcp) => {
                    // A listener not yet gone: it must not lead anywhere.
                    let _ = tcp.write_all(b"x").await;
                    let mut buf = [0u8; 1];
                    let served = matches!(
                        tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await,
                        Ok(Ok(1))
                    );
                    assert!(!served, "port {port} still echoes");
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_client_closes_its_server_listeners() {
    let echo = echo_server().await;
    let server = server().await;
    let session = client(&server).await;
    let exposed = within(10, session.expose_tcp(echo.port(), 0))
        .await
        .unwrap();
    let pulled = within(10, session.pull(echo, 0)).await.unwrap();
    let ports = [exposed.container_port(), pulled.container_port()];
    for port in ports {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(within(10, tcp_roundtrip(addr, b"before")).await, b"before");
    }
    // The bindings are still held: it is the session ending that must close the listeners.
    session.close();
    within(30, session.closed()).await;
    for port in ports {
        wait_until_refused(port).await;
    }
    within(30, async {
        while !server.sessions().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    drop((exposed, pulled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_picks_a_port_in_the_expose_range_or_an_ephemeral_pull_port() {
    let echo = echo_server().await;
    let server = server_with(|cfg| cfg.expose_ports = 42000..=42100).await;
    let session = client(&server).await;
    for _ in 0..3 {
        let b = within(10, session.expose_tcp(echo.port(), 0))
            .await
            .unwrap();
        let port = b.container_port();
        assert!((42000..=42100).contains(&port), "expose port {port}");
        assert_eq!(
            b.public_url(),
            Some(format!("tcp://127.0.0.1:{port}").as_str())
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(within(10, tcp_roundtrip(addr, b"ranged")).await, b"ranged");
    }
    let pulled = within(10, session.pull(echo, 0)).await.unwrap();
    let port = pulled.container_port();
    assert_ne!(port, 0);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(within(10, tcp_roundtrip(addr, b"pulled")).await, b"pulled");
}

/// The BIND_ERR code of a refused bind; panics if it was accepted or failed otherwise.
#[track_caller]
fn refused(result: Result<Binding, ClientError>) -> BindErrorCode {
    match result {
        Err(ClientError::Bind { code, message }) => {
            assert!(!message.is_empty(), "{code} without a message");
            code
        }
        Err(e) => panic!("expected BIND_ERR, got {e}"),
        Ok(b) => panic!(
            "expected BIND_ERR, got a binding on port {}",
            b.container_port()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_when_something_else_listens_or_another_session_holds_the_port() {
    let echo = echo_server().await;
    let server = server().await;
    let session = client(&server).await;
    let squatter = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let r = within(10, session.expose_tcp(echo.port(), taken)).await;
    assert_eq!(refused(r), BindErrorCode::PortInUse);
    let r = within(10, session.pull(echo, taken)).await;
    assert_eq!(refused(r), BindErrorCode::PortInUse);
    // A port held by another session's expose, without takeover.
    let held = within(10, session.expose_tcp(echo.port(), 0))
        .await
        .unwrap();
    let other = client(&server).await;
    let r = within(10, other.expose_tcp(echo.port(), held.container_port())).await;
    assert_eq!(refused(r), BindErrorCode::PortInUse);
    // Refusals leave the session working.
    let addr = SocketAddr::from(([127, 0, 0, 1], held.container_port()));
    assert_eq!(within(10, tcp_roundtrip(addr, b"still")).await, b"still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_port_is_the_servers_own_listener() {
    let echo = echo_server().await;
    let server = server().await;
    let session = client(&server).await;
    let own = server.local_addr().port();
    let r = within(10, session.expose_tcp(echo.port(), own)).await;
    assert_eq!(refused(r), BindErrorCode::ReservedPort);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_host_for_a_pull_on_a_non_loopback_address() {
    let echo = echo_server().await;
    let server = server().await;
    let session = client(&server).await;
    for host in ["0.0.0.0", "10.0.0.1", "example.com"] {
        let bind = Bind {
            host: Some(host.into()),
            ..raw_bind(BindKind::Tcp, BindMode::Pull, 0)
        };
        let r = within(10, session.bind(bind, StreamHandler::Tcp(echo))).await;
        assert_eq!(refused(r), BindErrorCode::InvalidHost, "host {host}");
    }
    // The allowed spelling works.
    let bind = Bind {
        host: Some("127.0.0.1".into()),
        ..raw_bind(BindKind::Tcp, BindMode::Pull, 0)
    };
    within(10, session.bind(bind, StreamHandler::Tcp(echo)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_ports_below_80_always_and_below_1024_without_the_flag() {
    let echo = echo_server().await;
    let strict = server().await;
    let session = client(&strict).await;
    for port in [22, 443] {
        let r = within(10, session.expose_tcp(echo.port(), port)).await;
        assert_eq!(refused(r), BindErrorCode::PrivilegedPort, "expose {port}");
        let r = within(10, session.pull(echo, port)).await;
        assert_eq!(refused(r), BindErrorCode::PrivilegedPort, "pull {port}");
    }
    // Even a server that allows privileged ports never binds below 80.
    let lenient = server_with(|cfg| cfg.allow_privileged_ports = true).await;
    let session = client(&lenient).await;
    let r = within(10, session.expose_tcp(echo.port(), 22)).await;
    assert_eq!(refused(r), BindErrorCode::PrivilegedPort);
    let r = within(10, session.pull(echo, 22)).await;
    assert_eq!(refused(r), BindErrorCode::PrivilegedPort);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_cap_exceeded_on_the_third_binding_and_freed_by_an_unbind() {
    let echo = echo_server().await;
    let server = server_with(|cfg| cfg.limits.max_bindings_per_session = 2).await;
    let session = client(&server).await;
    let first = within(10, session.pull(echo, 0)).await.unwrap();
    let _second = within(10, session.expose_tcp(echo.port(), 0))
        .await
        .unwrap();
    let r = within(10, session.pull(echo, 0)).await;
    assert_eq!(refused(r), BindErrorCode::BindCapExceeded);
    // UNBIND and BIND travel in order on the same control stream: the slot is free again.
    drop(first);
    within(10, session.pull(echo, 0)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_kind_for_unsupported_combinations_and_takeover_on_pull() {
    let echo = echo_server().await;
    let server = server_with(|cfg| cfg.allow_forward = vec![echo.port()..=echo.port()]).await;
    let session = client(&server).await;
    let r = within(
        10,
        session.bind(
            raw_bind(BindKind::Http, BindMode::Pull, 0),
            StreamHandler::Tcp(echo),
        ),
    )
    .await;
    assert_eq!(refused(r), BindErrorCode::InvalidKind, "http + pull");
    let r = within(
        10,
        session.bind(
            raw_bind(BindKind::Http, BindMode::Forward, echo.port()),
            StreamHandler::Forward,
        ),
    )
    .await;
    assert_eq!(refused(r), BindErrorCode::InvalidKind, "http + forward");
    let takeover_pull = Bind {
        takeover: Some(true),
        ..raw_bind(BindKind::Tcp, BindMode::Pull, 0)
    };
    let r = within(10, session.bind(takeover_pull, StreamHandler::Tcp(echo))).await;
    assert_eq!(refused(r), BindErrorCode::InvalidKind, "takeover on pull");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_port_outside_allow_forward_or_when_nothing_is_allowed() {
    let echo = echo_server().await;
    let none_allowed = server().await;
    let session = client(&none_allowed).await;
    let r = within(10, session.forward(0, echo.port())).await;
    assert_eq!(
        refused(r),
        BindErrorCode::ForbiddenPort,
        "empty allow_forward"
    );

    let p = echo.port();
    let allowed = vec![p..=p];
    let some_allowed = server_with(|cfg| cfg.allow_forward = allowed).await;
    let session = client(&some_allowed).await;
    let other = if p == u16::MAX { p - 1 } else { p + 1 };
    let r = within(10, session.forward(0, other)).await;
    assert_eq!(refused(r), BindErrorCode::ForbiddenPort, "port {other}");
    let r = within(10, session.forward(0, 0)).await;
    assert_eq!(refused(r), BindErrorCode::ForbiddenPort, "port 0");
    // The allowed port is accepted.
    let ok = within(10, session.forward(0, p)).await.unwrap();
    let addr = ok.local_addr().unwrap();
    assert_eq!(within(10, tcp_roundtrip(addr, b"fwd")).await, b"fwd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_binding_unbinds_it_and_the_session_stays_up() {
    let echo = echo_server().await;
    let server = server().await;
    let session = client(&server).await;
    let gone_pull = within(10, session.pull(echo, 0)).await.unwrap();
    let gone_expose = within(10, session.expose_tcp(echo.port(), 0))
        .await
        .unwrap();
    let kept = within(10, session.pull(echo, 0)).await.unwrap();
    let gone_ports = [gone_pull.container_port(), gone_expose.container_port()];
    drop(gone_pull);
    gone_expose.close();
    for port in gone_ports {
        wait_until_refused(port).await;
    }
    let kept_addr = SocketAddr::from(([127, 0, 0, 1], kept.container_port()));
    assert_eq!(within(10, tcp_roundtrip(kept_addr, b"kept")).await, b"kept");
    assert!(!session.mux().is_closed());
    // The session still binds.
    let again = within(10, session.pull(echo, 0)).await.unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], again.container_port()));
    assert_eq!(within(10, tcp_roundtrip(addr, b"again")).await, b"again");
    let bindings = server
        .state()
        .sessions
        .get(&session.session_id())
        .map(|e| e.bindings().len());
    assert_eq!(bindings, Some(2));
}
