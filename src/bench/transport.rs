//! The transports `underpass bench` can measure, and the one place each is described.

use std::fmt;

use crate::client::ClientOptions;
use crate::server::{Server, ServerConfig};

/// A tunnel transport to measure.
///
/// Adding one (QUIC, behind the cargo feature `quic`) means a variant here, an entry in
/// [`ALL`](Self::ALL) and one arm in `profile` below; the runner, the report and the command
/// line pick it up from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BenchTransport {
    /// WebSocket, one carrier (protocol v1).
    Ws1,
    /// WebSocket, four carriers striped (protocol v2).
    Ws4,
    /// QUIC, four carriers as streams of one connection.
    #[cfg(feature = "quic")]
    Quic,
}

/// How a transport is set up for a run.
struct Profile {
    /// Name on the command line and in the report.
    name: &'static str,
    /// Carriers the client asks for.
    connections: u32,
    /// Changes the shared bench server needs for this transport (a listener of its own, say).
    prepare_server: fn(&mut ServerConfig),
    /// Client options dialing `server` with `token`.
    dial: fn(&Server, &str) -> ClientOptions,
}

impl BenchTransport {
    /// Every transport, in report order (what `--transport all` means).
    pub const ALL: &'static [BenchTransport] = &[
        BenchTransport::Ws1,
        BenchTransport::Ws4,
        #[cfg(feature = "quic")]
        BenchTransport::Quic,
    ];

    fn profile(self) -> Profile {
        match self {
            BenchTransport::Ws1 => Profile {
                name: "ws",
                connections: 1,
                prepare_server: |_| {},
                dial: |server, token| ClientOptions::new(server.control_url(), token),
            },
            BenchTransport::Ws4 => Profile {
                name: "ws-striped",
                connections: 4,
                prepare_server: |_| {},
                dial: |server, token| ClientOptions::new(server.control_url(), token),
            },
            #[cfg(feature = "quic")]
            BenchTransport::Quic => Profile {
                name: "quic",
                connections: 4,
                prepare_server: quic::prepare_server,
                dial: quic::dial,
            },
        }
    }

    /// Name on the command line and in the report: `ws`, `ws-striped`.
    pub fn name(self) -> &'static str {
        self.profile().name
    }

    /// The transport called `name` (see [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Applies what this transport needs to the shared bench server's configuration.
    pub fn prepare_server(self, cfg: &mut ServerConfig) {
        (self.profile().prepare_server)(cfg)
    }

    /// Client options for this transport against `server`.
    pub fn client_options(self, server: &Server, token: &str) -> ClientOptions {
        let p = self.profile();
        (p.dial)(server, token).connections(p.connections)
    }
}

#[cfg(feature = "quic")]
mod quic {
    use underpass_transports::quic::QuicServerCert;

    use crate::client::ClientOptions;
    use crate::server::{QuicListen, Server, ServerConfig};

    /// A QUIC listener with a fresh self-signed certificate (the client pins it).
    pub fn prepare_server(cfg: &mut ServerConfig) {
        if cfg.quic.is_none() {
            if let Ok(cert) = QuicServerCert::self_signed(&["localhost".to_string()]) {
                cfg.quic = Some(QuicListen {
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    cert,
                });
            }
        }
    }

    /// Dials the bench server's QUIC listener, pinning its certificate.
    pub fn dial(server: &Server, token: &str) -> ClientOptions {
        let url = server.quic_addr().map_or_else(
            || "quic://127.0.0.1:0".to_string(),
            |a| format!("quic://{a}"),
        );
        let opts = ClientOptions::new(url, token);
        match server.quic_cert_sha256() {
            Some(pin) => opts.server_cert_sha256(pin),
            // Without a listener the run fails at connect with a clear error.
            None => opts,
        }
    }
}

impl fmt::Display for BenchTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in BenchTransport::ALL {
            assert_eq!(BenchTransport::from_name(t.name()), Some(*t));
        }
        assert_eq!(BenchTransport::from_name("carrier-pigeon"), None);
    }
}
