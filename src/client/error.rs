//! Client errors, each with a message a person can act on, and the one place that decides which
//! failures are final (exit at once) and which are worth retrying.

use std::io;

use underpass_transports::tls::{CertificateRejected, RejectionKind};
use underpass_transports::ws::{ProxyRefused, UpgradeRefused};

use crate::proto::{BindErrorCode, ErrorCode};

/// Why connecting or binding failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the token.
    #[error("the server refused the token: {0}")]
    Auth(String),
    /// The server refused the session for another reason.
    #[error("the server refused the session ({code}): {message}")]
    Refused {
        /// GOAWAY code.
        code: ErrorCode,
        /// Server's message.
        message: String,
    },
    /// Could not reach the server (refused, timed out, no such host, a server down behind its
    /// proxy): worth retrying.
    #[error("cannot reach the server at {url}: {source}")]
    Unreachable {
        /// URL dialed.
        url: String,
        /// Cause.
        source: io::Error,
    },
    /// The server's TLS certificate was refused.
    #[error(
        "cannot trust the server at {url}: {rejected}: {}",
        certificate_fix(rejected)
    )]
    Certificate {
        /// URL dialed.
        url: String,
        /// What is wrong with the certificate.
        rejected: CertificateRejected,
    },
    /// The egress proxy refused the tunnel (credentials, policy).
    #[error("{refused}: {}", proxy_fix(refused))]
    Proxy {
        /// The proxy's answer.
        refused: ProxyRefused,
    },
    /// The server, or a reverse proxy in front of it, refused the WebSocket upgrade with a 4xx.
    #[error(
        "the server at {url} refused the connection: {refused} (check the URL; a reverse proxy \
         must pass the path /__underpass__/control and its Upgrade headers)"
    )]
    Upgrade {
        /// URL dialed.
        url: String,
        /// The answer.
        refused: UpgradeRefused,
    },
    /// Settings that cannot work: an unreadable CA file, a malformed URL or proxy.
    #[error("{0}")]
    Config(String),
    /// The server broke the handshake.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The server answered outside the protocol's ranges (a join-ticket index beyond the
    /// carriers granted, a window of 0, ...): talking to it again would not help.
    #[error("the server at the other end is not speaking the protocol: {0}")]
    BadServer(String),
    /// The server refused an extra carrier (JOIN_ERR).
    #[error("the server refused the carrier ({code}): {message}")]
    JoinRefused {
        /// JOIN_ERR code, e.g. `INVALID_TICKET`.
        code: String,
        /// Server's message.
        message: String,
    },
    /// A binding was refused.
    #[error("{code}: {message}")]
    Bind {
        /// BIND_ERR code.
        code: BindErrorCode,
        /// Server's message.
        message: String,
    },
    /// The server no longer has the session to resume (grace over, or restarted).
    #[error("the server refused to resume the session: {0}")]
    ResumeRefused(String),
    /// The session ended.
    #[error("the session ended: {0}")]
    Closed(String),
    /// A local problem (listening socket, ...).
    #[error("{0}")]
    Local(#[from] io::Error),
}

impl ClientError {
    /// True when retrying cannot help: a bad token, a refused certificate or binding, a proxy
    /// that wants other credentials, settings that cannot work, a protocol mismatch. Network
    /// failures, a server at its session limit and a server down behind its proxy (5xx) are
    /// worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Auth(_)
            | ClientError::Bind { .. }
            | ClientError::Certificate { .. }
            | ClientError::Proxy { .. }
            | ClientError::Upgrade { .. }
            | ClientError::Config(_)
            | ClientError::BadServer(_) => true,
            ClientError::Refused { code, .. } => *code != ErrorCode::RESOURCE_EXHAUSTED,
            _ => false,
        }
    }

    /// Sorts a failed dial of `url`: what the transport says about a certificate, a proxy or an
    /// HTTP answer decides whether it is final.
    pub fn from_dial(url: &str, source: io::Error) -> ClientError {
        if let Some(rejected) = inner::<CertificateRejected>(&source) {
            return ClientError::Certificate {
                url: url.to_string(),
                rejected: rejected.clone(),
            };
        }
        if let Some(refused) = inner::<ProxyRefused>(&source) {
            if is_client_error(refused.status) {
                return ClientError::Proxy {
                    refused: refused.clone(),
                };
            }
        }
        if let Some(refused) = inner::<UpgradeRefused>(&source) {
            if is_client_error(refused.status) {
                return ClientError::Upgrade {
                    url: url.to_string(),
                    refused: refused.clone(),
                };
            }
        }
        if source.kind() == io::ErrorKind::InvalidInput {
            return ClientError::Config(format!("cannot connect to {url}: {source}"));
        }
        ClientError::Unreachable {
            url: url.to_string(),
            source,
        }
    }
}

fn inner<T: std::error::Error + 'static>(err: &io::Error) -> Option<&T> {
    err.get_ref()?.downcast_ref::<T>()
}

/// A 4xx that asking again will not change (408 and 429 may).
fn is_client_error(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

fn certificate_fix(rejected: &CertificateRejected) -> String {
    let pin = format!("--server-cert-sha256 {}", rejected.presented_sha256_hex());
    match &rejected.kind {
        RejectionKind::UnknownIssuer { ca_file: None } => format!(
            "pass --ca FILE with that authority's certificate, or {pin} to trust exactly this \
             certificate"
        ),
        RejectionKind::UnknownIssuer { ca_file: Some(_) } => format!(
            "give --ca the certificate of the authority that issued it, or {pin} to trust \
             exactly this certificate"
        ),
        RejectionKind::CaUsedAsServerCertificate => format!(
            "if it is your server's certificate, pin it with {pin}, or serve a certificate \
             that CA issued"
        ),
        RejectionKind::WrongName { .. } => {
            format!("use a server URL with a name the certificate lists, or pin it with {pin}")
        }
        RejectionKind::Expired | RejectionKind::NotYetValid => {
            "renew it on the server (or check this machine's clock)".to_string()
        }
        RejectionKind::PinMismatch { .. } => "check --server-cert-sha256 (a QUIC server prints \
             its own as 'quic-cert-sha256: ...'; `openssl x509 -noout -fingerprint -sha256 -in \
             CERT` prints any certificate's)"
            .to_string(),
        _ => format!("check the server's certificate, or pin it with {pin}"),
    }
}

fn proxy_fix(refused: &ProxyRefused) -> &'static str {
    // tinyproxy answers wrong credentials with 401 rather than 407.
    match (refused.status, refused.with_credentials) {
        (401 | 407, false) => {
            "the proxy wants a user and password: --proxy http://USER:PASS@HOST:PORT"
        }
        (401 | 407, true) => "the proxy refused the user and password in the proxy URL",
        _ => "the proxy does not allow this tunnel; ask its administrator",
    }
}
