//! The client side: dialling `quic://host:port` and reusing one connection per server.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use quinn::crypto::rustls::QuicClientConfig;

use super::carrier::carrier;
use super::errors::connection_error;
use super::tuning::{new_endpoint, QuicTuning};
use super::{ALPN, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::tls::{client_config, take_rejection, RejectionSlot, ServerTrust};
use crate::{Carrier, Endpoint, Transport};

/// Where a `quic://host:port` URL points.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    /// Host as written, without the brackets of an IPv6 literal: the TLS server name.
    host: String,
    port: u16,
}

impl Target {
    fn parse(url: &str) -> io::Result<Target> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad QUIC server URL '{url}': {why} (expected quic://HOST:PORT)"),
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if !scheme.eq_ignore_ascii_case("quic") {
            return Err(bad("the scheme is not quic"));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(bad("only a host and a port are allowed"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, tail) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (host, tail.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = port
            .ok_or_else(|| bad("no port"))?
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("bad port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Target {
            host: host.to_owned(),
            port,
        })
    }
}

/// Dials QUIC carriers: `quic://host:port` (the first address the host resolves to).
///
/// The first [`connect`](Transport::connect) to a server opens a QUIC connection; each later one
/// to the same host and port opens one more bidirectional stream on it while it is alive, and a
/// new connection once it is not. Concurrent `connect`s to a server that has no connection yet
/// wait for the first handshake and then share it. The stream reaches the server with its first
/// bytes, which is at once since the layer above starts with HELLO or JOIN.
///
/// `endpoint.subprotocol` and `endpoint.bearer` are not used: the ALPN is always
/// [`ALPN`](super::ALPN) and authentication happens in HELLO.
///
/// Errors from `connect`: a bad URL is [`io::ErrorKind::InvalidInput`]; a certificate that does
/// not verify (wrong pin, unknown CA, wrong name) is [`io::ErrorKind::InvalidData`] with the
/// reason in the message; no answer in time is [`io::ErrorKind::TimedOut`] (UDP gives no
/// "connection refused").
pub struct QuicTransport {
    client_config: quinn::ClientConfig,
    tuning: QuicTuning,
    handshake_timeout: Duration,
    state: tokio::sync::Mutex<ClientState>,
    rejected: RejectionSlot,
}

#[derive(Default)]
struct ClientState {
    /// One client endpoint per address family, made on first use.
    v4: Option<quinn::Endpoint>,
    v6: Option<quinn::Endpoint>,
    connections: HashMap<Target, quinn::Connection>,
}

impl fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicTransport")
            .field("tuning", &self.tuning)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// A transport that authenticates servers with `trust` and the default [`QuicTuning`].
    /// Fails if the CA file cannot be read.
    pub fn new(trust: ServerTrust) -> io::Result<Self> {
        Self::with_tuning(trust, QuicTuning::default())
    }

    /// A transport with explicit tuning.
    pub fn with_tuning(trust: ServerTrust, tuning: QuicTuning) -> io::Result<Self> {
        let rejected = RejectionSlot::default();
        // QUIC requires TLS 1.3 (RFC 9001).
        let tls = client_config(&trust, ALPN, true, rejected.clone())?;
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| io::Error::other(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
        client_config.transport_config(Arc::new(tuning.transport_config(false)?));
        Ok(QuicTransport {
            client_config,
            tuning,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            state: tokio::sync::Mutex::new(ClientState::default()),
            rejected,
        })
    }

    /// Sets the time allowed for resolution, handshake and stream opening together
    /// (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// A live connection to `target`: the cached one unless it is closed or is `avoid` (a
    /// connection that just failed to open a stream), else a new one.
    async fn connection(
        &self,
        target: &Target,
        avoid: Option<usize>,
    ) -> io::Result<(quinn::Connection, bool)> {
        // Held across the handshake on purpose: concurrent connects then share one connection.
        let mut state = self.state.lock().await;
        if let Some(conn) = state.connections.get(target) {
            if conn.close_reason().is_none() && Some(conn.stable_id()) != avoid {
                return Ok((conn.clone(), true));
            }
            state.connections.remove(target);
        }
        let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {}: {e}", target.host)))?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no address for {}", target.host),
                )
            })?;
        let slot = if addr.is_ipv4() {
            &mut state.v4
        } else {
            &mut state.v6
        };
        let endpoint = match slot {
            Some(endpoint) => endpoint.clone(),
            None => {
                let any = if addr.is_ipv4() {
                    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
                } else {
                    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
                };
                slot.insert(new_endpoint(any, None, &self.tuning)?).clone()
            }
        };
        // Cleared before the handshake starts: the endpoint's driver runs it on another task,
        // and on loopback the verifier may refuse the certificate before `connect_with` returns.
        take_rejection(&self.rejected);
        let connecting = endpoint
            .connect_with(self.client_config.clone(), addr, &target.host)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot dial {addr} as '{}': {e}", target.host),
                )
            })?;
        let conn = connecting
            .await
            .map_err(|e| match take_rejection(&self.rejected) {
                Some(rejected) => rejected.into_io_error(),
                None => {
                    let err = connection_error(e);
                    io::Error::new(
                        err.kind(),
                        format!("QUIC handshake with {addr} failed: {err}"),
                    )
                }
            })?;
        tracing::debug!(server = %addr, "QUIC connection established");
        state.connections.insert(target.clone(), conn.clone());
        Ok((conn, false))
    }

    async fn dial(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        let target = Target::parse(&endpoint.url)?;
        let (mut conn, mut reused) = self.connection(&target, None).await?;
        loop {
            match conn.open_bi().await {
                Ok((send, recv)) => return Ok(carrier(send, recv, conn, None)),
                // The cached connection died since it was checked: dial a fresh one, once.
                Err(_) if reused => {
                    (conn, reused) = self.connection(&target, Some(conn.stable_id())).await?;
                }
                Err(e) => return Err(connection_error(e)),
            }
        }
    }
}

#[async_trait]
impl Transport for QuicTransport {
    fn name(&self) -> &'static str {
        "quic"
    }

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        tokio::time::timeout(self.handshake_timeout, self.dial(endpoint))
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no QUIC carrier to {} within {:?}",
                        endpoint.url, self.handshake_timeout
                    ),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("quic://example.com:4433").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", 4433));
        let t = Target::parse("QUIC://127.0.0.1:9/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 9));
        let t = Target::parse("quic://[::1]:7000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 7000));
        for bad in [
            "quic://h",
            "quic://h:0",
            "quic://h:x",
            "quic://:80",
            "ws://h:80",
            "h:80",
            "quic://h:80/path",
            "quic://u@h:80",
            "quic://[::1",
        ] {
            let err = Target::parse(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
