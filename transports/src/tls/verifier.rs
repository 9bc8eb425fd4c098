//! One server-certificate verifier for every client transport (wss and QUIC): a pinned
//! fingerprint, or a chain checked against trust anchors, and refusals in words.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use tokio_rustls::rustls;

use super::fingerprint::sha256;
use super::rejection::{CertificateRejected, RejectionKind};
use super::roots::{ca_file_roots, system_roots};

/// How a client authenticates the server. There is deliberately no "accept anything": a
/// self-signed certificate is trusted by pinning it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ServerTrust {
    /// The operating system's trust store (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured), or
    /// the bundled Mozilla roots when the system has none; the name must match, as for HTTPS.
    #[default]
    System,
    /// The PEM certificates in this file (`--ca`) instead of the system's; the name must match.
    CaFile(PathBuf),
    /// Exactly the certificate whose DER has this SHA-256 (`--server-cert-sha256`), whatever its
    /// names and dates, like an SSH host key. The handshake signature is still checked against
    /// it, so only the holder of its key passes.
    PinnedSha256([u8; 32]),
}

/// The last certificate a verifier refused. quinn turns a refusal into text; the QUIC transport
/// reads the structured reason from here instead (its handshakes run one at a time).
pub(crate) type RejectionSlot = Arc<Mutex<Option<CertificateRejected>>>;

/// Takes the refusal out of `slot`.
pub(crate) fn take_rejection(slot: &RejectionSlot) -> Option<CertificateRejected> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

#[derive(Debug)]
enum Check {
    Pinned([u8; 32]),
    Chain {
        webpki: Arc<WebPkiServerVerifier>,
        ca_file: Option<PathBuf>,
    },
}

/// The verifier behind [`ServerTrust`].
#[derive(Debug)]
pub(crate) struct TrustVerifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
    rejected: RejectionSlot,
}

impl TrustVerifier {
    /// Builds the verifier; fails when a CA file cannot be read or holds no certificate.
    pub(crate) fn new(
        trust: &ServerTrust,
        provider: &Arc<CryptoProvider>,
        rejected: RejectionSlot,
    ) -> std::io::Result<TrustVerifier> {
        let chain = |roots, ca_file| {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map(|webpki| Check::Chain { webpki, ca_file })
                .map_err(|e| std::io::Error::other(format!("TLS setup: {e}")))
        };
        let check = match trust {
            ServerTrust::PinnedSha256(pin) => Check::Pinned(*pin),
            ServerTrust::System => chain(system_roots(), None)?,
            ServerTrust::CaFile(path) => chain(Arc::new(ca_file_roots(path)?), Some(path.clone()))?,
        };
        Ok(TrustVerifier {
            check,
            algorithms: provider.signature_verification_algorithms,
            rejected,
        })
    }

    fn refuse(&self, kind: RejectionKind, end_entity: &CertificateDer<'_>) -> rustls::Error {
        let rejection = CertificateRejected {
            kind,
            presented_sha256: sha256(end_entity.as_ref()),
        };
        *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) = Some(rejection.clone());
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(rejection))))
    }
}

/// rustls' reason for refusing a chain, in the words of [`RejectionKind`].
fn rejection_kind(
    err: &rustls::Error,
    server_name: &ServerName<'_>,
    ca_file: &Option<PathBuf>,
) -> RejectionKind {
    let rustls::Error::InvalidCertificate(cert) = err else {
        return RejectionKind::Other(err.to_string());
    };
    match cert {
        CertificateError::UnknownIssuer => RejectionKind::UnknownIssuer {
            ca_file: ca_file.clone(),
        },
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            RejectionKind::WrongName {
                host: server_name.to_str().into_owned(),
            }
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            RejectionKind::Expired
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            RejectionKind::NotYetValid
        }
        CertificateError::Other(OtherError(inner))
            if matches!(
                inner.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            RejectionKind::CaUsedAsServerCertificate
        }
        other => RejectionKind::Other(format!("{other:?}")),
    }
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            // A plain comparison: the pin is public (the server prints it), only the key is
            // secret.
            Check::Pinned(expected) if sha256(end_entity.as_ref()) == *expected => {
                Ok(ServerCertVerified::assertion())
            }
            Check::Pinned(expected) => Err(self.refuse(
                RejectionKind::PinMismatch {
                    expected: *expected,
                },
                end_entity,
            )),
            Check::Chain { webpki, ca_file } => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| self.refuse(rejection_kind(&e, server_name, ca_file), end_entity)),
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
