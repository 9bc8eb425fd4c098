//! Visitors over https: hyper and tokio-tungstenite clients on tokio-rustls (HTTP/1.1) that
//! trust a test CA, each request on a fresh connection whose SNI is the Host header's name.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

use super::{within, AppBody, Reply};

/// A visitor of the TLS listener at `addr`.
pub struct HttpsVisitor {
    addr: SocketAddr,
    connector: TlsConnector,
}

impl HttpsVisitor {
    /// Trusts the PEM certificates of `ca_pem` only.
    pub fn new(addr: SocketAddr, ca_pem: &str) -> HttpsVisitor {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        HttpsVisitor {
            addr,
            connector: TlsConnector::from(Arc::new(config)),
        }
    }

    /// A TLS connection for `host` (a Host header value; its port is left out of the SNI).
    async fn connect(&self, host: &str) -> TlsStream<TcpStream> {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h).to_string();
        let tcp = TcpStream::connect(self.addr)
            .await
            .expect("connect to the proxy");
        let name = ServerName::try_from(name).unwrap();
        within(10, self.connector.connect(name, tcp))
            .await
            .expect("TLS handshake with the proxy")
    }

    /// Sends `req` (with a Host header) on a fresh connection; the body stays live.
    pub async fn open(&self, req: Request<AppBody>) -> Response<Incoming> {
        let host = req.headers()[header::HOST].to_str().unwrap().to_string();
        let tls = self.connect(&host).await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("http handshake");
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        within(20, sender.send_request(req))
            .await
            .expect("request sent")
    }

    /// Sends `req` and collects the whole answer.
    pub async fn send(&self, req: Request<AppBody>) -> Reply {
        let (parts, body) = self.open(req).await.into_parts();
        let body = within(120, body.collect())
            .await
            .expect("response body")
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A WebSocket to `wss://HOST/PATH`.
    pub async fn websocket(&self, host: &str, path: &str) -> WebSocketStream<TlsStream<TcpStream>> {
        let mut req = format!("wss://{host}{path}").into_client_request().unwrap();
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_str(host).unwrap());
        let tls = self.connect(host).await;
        let (ws, _) = within(20, tokio_tungstenite::client_async(req, tls))
            .await
            .expect("WebSocket handshake through the proxy");
        ws
    }
}
