//! How a client authenticates the server: a pinned fingerprint or a CA file.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use quinn::rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::cert::{hex, pem_error, sha256};
use super::{provider, ALPN};

/// How a client authenticates the QUIC server. There is deliberately no "accept anything".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicTrust {
    /// Accept exactly the certificate whose DER has this SHA-256 (`--server-cert-sha256`),
    /// whatever its names and dates, like an SSH host key. The handshake signature is still
    /// checked against it, so only the holder of its key passes.
    PinnedSha256([u8; 32]),
    /// Verify the server's chain against the PEM certificates in this file (`--ca`) and its
    /// name against the URL's host, as for HTTPS.
    CaFile(PathBuf),
}

/// The server's certificate is not the pinned one.
#[derive(Clone, Copy)]
pub(super) struct FingerprintMismatch {
    expected: [u8; 32],
    actual: [u8; 32],
}

// rustls shows the inner error of `CertificateError::Other` with `Debug`: make it readable.
impl fmt::Debug for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server certificate SHA-256 fingerprint did not match the pinned one: expected {}, \
             got {}",
            hex(&self.expected),
            hex(&self.actual)
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// The last fingerprint mismatch a verifier saw. rustls and quinn turn it into a nested error
/// text; `connect` reports it plainly instead. Handshakes of one transport run one at a time,
/// so the slot belongs to the handshake that just failed.
pub(super) type MismatchSlot = Arc<std::sync::Mutex<Option<FingerprintMismatch>>>;

/// Accepts exactly one end-entity certificate, by fingerprint.
#[derive(Debug)]
struct PinnedCertVerifier {
    expected: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: MismatchSlot,
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // A plain comparison: the pin is public (the server prints it), only the key is secret.
        let actual = sha256(end_entity.as_ref());
        if actual == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            let mismatch = FingerprintMismatch {
                expected: self.expected,
                actual,
            };
            *self.mismatch.lock().unwrap_or_else(|e| e.into_inner()) = Some(mismatch);
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(mismatch)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

pub(super) fn client_tls_config(
    trust: &QuicTrust,
    mismatch: &MismatchSlot,
) -> io::Result<rustls::ClientConfig> {
    let provider = provider();
    // QUIC requires TLS 1.3 (RFC 9001).
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
    let mut config = match trust {
        QuicTrust::PinnedSha256(expected) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier {
                expected: *expected,
                algorithms: provider.signature_verification_algorithms,
                mismatch: mismatch.clone(),
            }))
            .with_no_client_auth(),
        QuicTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| pem_error("CA file", path, e))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("CA file {}: {e}", path.display()),
                    )
                })?;
            }
            if roots.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("CA file {}: no certificate in it", path.display()),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}
