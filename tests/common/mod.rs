//! Helpers shared by the integration tests: a server on 127.0.0.1:0, connected clients, local
//! echo and HTTP apps ([`apps`]) and visitors' HTTP requests ([`http`]).
//!
//! The submodules are private and re-exported flat, so `use common::*;` brings everything in
//! without a `common::http` module shadowing the `http` crate in the test files.
#![allow(dead_code)]

mod admin_api;
mod apps;
mod caddy;
mod chaos;
mod clients;
mod daemon;
mod http;
mod https;
mod inspect;
mod nginx;
mod outcomes;
mod process;
mod raw_http;
mod raw_peer;
#[cfg(feature = "quic")]
mod raw_quic;
mod readme;
mod tinyproxy;
mod tls;
mod tls_front;
mod transfers;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use self::admin_api::*;
#[allow(unused_imports)]
pub use self::apps::*;
#[allow(unused_imports)]
pub use self::caddy::*;
#[allow(unused_imports)]
pub use self::chaos::*;
#[allow(unused_imports)]
pub use self::clients::*;
#[allow(unused_imports)]
pub use self::daemon::*;
#[allow(unused_imports)]
pub use self::http::*;
#[allow(unused_imports)]
pub use self::https::*;
#[allow(unused_imports)]
pub use self::inspect::*;
#[allow(unused_imports)]
pub use self::nginx::*;
#[allow(unused_imports)]
pub use self::outcomes::*;
#[allow(unused_imports)]
pub use self::process::*;
#[allow(unused_imports)]
pub use self::raw_http::*;
#[allow(unused_imports)]
pub use self::raw_peer::*;
#[cfg(feature = "quic")]
#[allow(unused_imports)]
pub use self::raw_quic::*;
#[allow(unused_imports)]
pub use self::readme::*;
#[allow(unused_imports)]
pub use self::tinyproxy::*;
#[allow(unused_imports)]
pub use self::tls::*;
#[allow(unused_imports)]
pub use self::tls_front::*;
#[allow(unused_imports)]
pub use self::transfers::*;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use underpass::client::{Binding, ClientOptions, ClientSession, HttpExpose};
use underpass::proto::{Bind, BindKind, BindMode, RouteMode};
use underpass::server::{Server, ServerConfig};

pub const TOKEN: &str = "test-token-0123456789";

/// The public domain of [`domain_server`]; routes are its subdomains.
pub const DOMAIN: &str = "example.test";
/// The host of route `demo` under [`DOMAIN`].
pub const DEMO_HOST: &str = "demo.example.test";

/// Fails the test instead of hanging it.
pub async fn within<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("test step timed out")
}

pub async fn server() -> Server {
    server_with(|_| {}).await
}

pub async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut cfg = ServerConfig::local(TOKEN);
    f(&mut cfg);
    Server::start(cfg).await.expect("server starts")
}

/// A server whose routes are subdomains of [`DOMAIN`].
pub async fn domain_server() -> Server {
    server_with(|cfg| cfg.domain = Some(DOMAIN.into())).await
}

/// A client connected to `server` with the default options.
pub async fn client(server: &Server) -> ClientSession {
    client_with(ClientOptions::new(server.control_url(), TOKEN)).await
}

pub async fn client_with(opts: ClientOptions) -> ClientSession {
    within(10, ClientSession::connect(&opts))
        .await
        .expect("client connects")
}

/// An http expose of the single route `route`.
pub fn named(route: &str) -> HttpExpose {
    HttpExpose::route(Some(route.into()))
}

/// An http expose of `route` in cluster mode.
pub fn cluster(route: &str) -> HttpExpose {
    HttpExpose {
        mode: RouteMode::Cluster,
        ..named(route)
    }
}

/// A [`domain_server`] and a client whose route `demo` ([`DEMO_HOST`]) leads to the local app on
/// `port`. The fields drop binding first, server last.
pub struct Demo {
    pub binding: Binding,
    pub client: ClientSession,
    pub server: Server,
}

impl Demo {
    /// The server's public listener.
    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

pub async fn demo(port: u16) -> Demo {
    let server = domain_server().await;
    let client = client(&server).await;
    let binding = client.expose_http(port, &named("demo")).await.unwrap();
    Demo {
        binding,
        client,
        server,
    }
}

/// A BIND as a foreign client would write it, with no options set.
pub fn raw_bind(kind: BindKind, mode: BindMode, port: u16) -> Bind {
    Bind {
        client_bind_ref: Value::Null,
        kind,
        mode,
        container_port: Some(port),
        label: None,
        takeover: None,
        host: None,
        route: None,
        basic_auth: None,
        cidr_allow: None,
        cidr_deny: None,
    }
}

/// A loopback address nothing listens on: bound once to pick a free port, then released.
pub fn unused_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// A TCP echo server on loopback; returns its address.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `data` to a TCP connection, half-closes, reads everything back.
pub async fn tcp_roundtrip(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    let payload = data.to_vec();
    let writer = tokio::spawn(async move {
        w.write_all(&payload).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut out = Vec::with_capacity(data.len());
    r.read_to_end(&mut out).await.unwrap();
    writer.await.unwrap();
    out
}

/// A TCP relay in front of the server whose connections can be cut, like a network blip.
pub struct Relay {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Relay {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let tracked = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                tracked.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { addr, conns }
    }

    /// Drops every relayed connection without any WebSocket close.
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}
