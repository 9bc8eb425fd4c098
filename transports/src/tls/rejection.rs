//! Why a server certificate was refused, in words.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::fingerprint::hex;

/// A server certificate the client refused. Transports return it inside an `io::Error` of kind
/// [`io::ErrorKind::InvalidData`] (`err.get_ref()` and `downcast_ref` find it again). Retrying
/// cannot help: the same certificate will be refused the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRejected {
    /// What is wrong with it.
    pub kind: RejectionKind,
    /// SHA-256 of the certificate the server presented, for pinning it deliberately.
    pub presented_sha256: [u8; 32],
}

/// What is wrong with a server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// Not issued by an authority of the trust store in use: the system's, or `ca_file`.
    UnknownIssuer {
        /// The CA file in use, when not the system's trust store.
        ca_file: Option<PathBuf>,
    },
    /// A CA certificate presented as the server's own: what `openssl req -x509` makes by
    /// default (webpki's `CaUsedAsEndEntity`).
    CaUsedAsServerCertificate,
    /// Valid, but not for the host name dialled.
    WrongName {
        /// The name the client dialled.
        host: String,
    },
    /// Past its end date.
    Expired,
    /// Before its start date.
    NotYetValid,
    /// Not the pinned certificate.
    PinMismatch {
        /// The pinned SHA-256.
        expected: [u8; 32],
    },
    /// Another reason, as rustls words it.
    Other(String),
}

impl CertificateRejected {
    /// The presented certificate's SHA-256 as 64 lowercase hex digits.
    pub fn presented_sha256_hex(&self) -> String {
        hex(&self.presented_sha256)
    }

    /// Wraps the rejection in the error a transport returns for it.
    pub fn into_io_error(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

impl fmt::Display for CertificateRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RejectionKind::UnknownIssuer { ca_file: None } => f.write_str(
                "the server's certificate is issued by an unknown authority (one not in this \
                 system's trust store)",
            ),
            RejectionKind::UnknownIssuer {
                ca_file: Some(path),
            } => write!(
                f,
                "the server's certificate is not issued by a certificate in {}",
                path.display()
            ),
            RejectionKind::CaUsedAsServerCertificate => f.write_str(
                "the server presents a CA certificate as its own (as a self-signed certificate \
                 made with `openssl req -x509` is)",
            ),
            RejectionKind::WrongName { host } => {
                write!(
                    f,
                    "the server's certificate is not valid for the name {host}"
                )
            }
            RejectionKind::Expired => f.write_str("the server's certificate has expired"),
            RejectionKind::NotYetValid => f.write_str("the server's certificate is not valid yet"),
            RejectionKind::PinMismatch { expected } => write!(
                f,
                "server certificate SHA-256 fingerprint did not match the pinned one: expected \
                 {}, got {}",
                hex(expected),
                self.presented_sha256_hex()
            ),
            RejectionKind::Other(why) => write!(f, "the server's certificate was refused: {why}"),
        }
    }
}

impl std::error::Error for CertificateRejected {}
