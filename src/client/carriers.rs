//! The built-in carrier transports, chosen by the server URL at each dial: WebSocket for `ws://`,
//! `wss://`, `http://` and `https://`, QUIC for `quic://`. Both authenticate the server with the
//! same [`ServerTrust`]; WebSocket carriers go through the egress proxy, QUIC ones cannot (UDP).

use std::io;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use underpass_transports::tls::ServerTrust;
use underpass_transports::ws::{EgressProxy, WsTransport};
use underpass_transports::{Carrier, Endpoint, Transport};

/// A transport built on first use; a setting that cannot work (an unreadable CA file) is kept
/// as its message and fails every dial with [`io::ErrorKind::InvalidInput`], which the client
/// treats as final.
type Built = OnceLock<Result<Arc<dyn Transport>, String>>;

/// The transports [`ClientOptions`](super::ClientOptions) dials with unless given another.
pub(crate) struct BuiltIn {
    trust: ServerTrust,
    proxy: EgressProxy,
    ws: Built,
    quic: Built,
}

impl BuiltIn {
    pub(crate) fn new(trust: ServerTrust, proxy: EgressProxy) -> BuiltIn {
        BuiltIn {
            trust,
            proxy,
            ws: OnceLock::new(),
            quic: OnceLock::new(),
        }
    }

    /// The transport for `url`, built now if it was not yet.
    pub(crate) fn for_url(&self, url: &str) -> Result<Arc<dyn Transport>, String> {
        let quic = url
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("quic"));
        if quic {
            self.quic.get_or_init(|| self.build_quic(url)).clone()
        } else {
            self.ws.get_or_init(|| self.build_ws()).clone()
        }
    }

    fn build_ws(&self) -> Result<Arc<dyn Transport>, String> {
        let ws = match &self.trust {
            // Shares the process-wide configuration and its once-loaded system roots.
            ServerTrust::System => WsTransport::new(),
            trust => WsTransport::with_trust(trust).map_err(|e| e.to_string())?,
        };
        Ok(Arc::new(ws.proxy(self.proxy.clone())))
    }

    #[cfg(feature = "quic")]
    fn build_quic(&self, url: &str) -> Result<Arc<dyn Transport>, String> {
        let host = url.split_once("://").map_or("", |(_, rest)| rest);
        // Said once: the transport is built once.
        if let Ok(Some(proxy)) = self.proxy.for_target(true, host) {
            tracing::warn!(
                %proxy,
                "QUIC carriers go straight to the server over UDP; the proxy is not used"
            );
        }
        let quic = underpass_transports::quic::QuicTransport::new(self.trust.clone())
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(quic))
    }

    #[cfg(not(feature = "quic"))]
    fn build_quic(&self, _url: &str) -> Result<Arc<dyn Transport>, String> {
        Err("this build has no QUIC support (cargo feature 'quic'); use ws:// or wss://".into())
    }
}

#[async_trait]
impl Transport for BuiltIn {
    fn name(&self) -> &'static str {
        "built-in (ws or quic)"
    }

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        let transport = self
            .for_url(&endpoint.url)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        transport.connect(endpoint).await
    }
}
