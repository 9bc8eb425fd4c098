//! The trust anchors of a client: the operating system's store (or the bundled Mozilla roots
//! when it has none), or the certificates of a CA file.

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_rustls::rustls::RootCertStore;

use super::fingerprint::pem_error;

/// The system's roots, read once per process: reading and parsing the store takes milliseconds
/// and it does not change while a client runs.
pub(crate) fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS.get_or_init(|| Arc::new(load_system_roots())).clone()
}

fn load_system_roots() -> RootCertStore {
    // Honours SSL_CERT_FILE and SSL_CERT_DIR, like OpenSSL-based tools.
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipped part of the system trust store");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added > 0 {
        tracing::debug!(added, ignored, "trusting the system's certificate store");
        return roots;
    }
    // A minimal container image often has no store at all; public servers still work.
    tracing::debug!("no system certificate store; trusting the bundled Mozilla roots");
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The certificates of a PEM file (one or more), as trust anchors.
pub(crate) fn ca_file_roots(path: &Path) -> io::Result<RootCertStore> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error("CA file", path, e))?;
    let mut roots = RootCertStore::empty();
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
    Ok(roots)
}
