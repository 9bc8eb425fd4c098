//! How a client authenticates its server, shared by every transport that uses TLS (`wss://`
//! and `quic://`): one verifier, one set of trust choices ([`ServerTrust`]), one error type for
//! a refused certificate ([`CertificateRejected`]) that says why in words.
//!
//! By default the operating system's trust store is used (`SSL_CERT_FILE` / `SSL_CERT_DIR`
//! point elsewhere, as for OpenSSL), falling back to the bundled Mozilla roots when the system
//! has none. A CA file replaces it; a pinned SHA-256 trusts exactly one certificate.

pub(crate) mod fingerprint;
mod rejection;
mod roots;
mod verifier;

use std::io;
use std::sync::Arc;

use tokio_rustls::rustls;

pub use fingerprint::{parse_fingerprint, sha256_hex};
pub use rejection::{CertificateRejected, RejectionKind};
pub use verifier::ServerTrust;
pub(crate) use verifier::{take_rejection, RejectionSlot};

/// rustls' *ring* crypto provider, explicit instead of the process-wide default: nothing else
/// has to install one, and a second provider compiled in by another crate cannot make this
/// ambiguous.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client TLS configuration that authenticates the server with `trust`, offering `alpn`;
/// TLS 1.3 only when `tls13_only` (QUIC), else 1.2 and 1.3. Refusals are also left in
/// `rejected`.
pub(crate) fn client_config(
    trust: &ServerTrust,
    alpn: &[u8],
    tls13_only: bool,
    rejected: RejectionSlot,
) -> io::Result<rustls::ClientConfig> {
    let provider = provider();
    let verifier = verifier::TrustVerifier::new(trust, &provider, rejected)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}
