//! The server's certificate: loaded, generated or cached.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::fingerprint::{hex, pem_error, sha256};

/// Certificate chain (end-entity first) and private key of a QUIC server.
pub struct QuicServerCert {
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: PrivateKeyDer<'static>,
}

impl fmt::Debug for QuicServerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("QuicServerCert")
            .field("certificates", &self.chain.len())
            .field("sha256", &self.fingerprint_sha256_hex())
            .finish_non_exhaustive()
    }
}

impl Clone for QuicServerCert {
    fn clone(&self) -> Self {
        QuicServerCert {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl QuicServerCert {
    /// A chain (end-entity certificate first) and its key. Whether they match is checked by
    /// [`QuicAcceptor::bind`](super::QuicAcceptor::bind).
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<Self> {
        if chain.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "empty certificate chain",
            ));
        }
        Ok(QuicServerCert { chain, key })
    }

    /// Reads a PEM certificate chain (end-entity first) and a PEM private key (PKCS#8, PKCS#1
    /// or SEC1), e.g. from `--tls-cert` and `--tls-key`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> io::Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| pem_error("certificate file", cert, e))?;
        if chain.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("certificate file {}: no certificate in it", cert.display()),
            ));
        }
        let key_der =
            PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("key file", key, e))?;
        Self::new(chain, key_der)
    }

    /// A fresh self-signed certificate (ECDSA P-256) for `names`: DNS names or IP addresses.
    /// Clients pin it by its fingerprint, or use its PEM as their CA file.
    pub fn self_signed(names: &[String]) -> io::Result<Self> {
        Ok(Self::generate(names)?.0)
    }

    /// The certificate and key in one PEM text too, for [`load_or_create`](Self::load_or_create).
    fn generate(names: &[String]) -> io::Result<(Self, String)> {
        if names.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a self-signed certificate needs at least one name",
            ));
        }
        let certified = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot generate a certificate for {names:?}: {e}"),
            )
        })?;
        let pem = format!(
            "{}{}",
            certified.cert.pem(),
            certified.signing_key.serialize_pem()
        );
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        Ok((Self::new(vec![certified.cert.der().clone()], key)?, pem))
    }

    /// The certificate cached at `cache_path` (certificate and key PEM in one file), or a new
    /// self-signed one for `names` written there (mode 0600 on Unix), so that a restarted server
    /// keeps its fingerprint and pinned clients keep working. `names` only matter when the
    /// certificate is created: delete the file to get one for other names. A file that exists
    /// but cannot be read is an error, never silently replaced.
    pub fn load_or_create(cache_path: &Path, names: &[String]) -> io::Result<Self> {
        match std::fs::metadata(cache_path) {
            Ok(_) => return Self::from_pem_files(cache_path, cache_path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("certificate cache {}: {e}", cache_path.display()),
                ))
            }
        }
        let (cert, pem) = Self::generate(names)?;
        write_private_file(cache_path, pem.as_bytes()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot write certificate cache {}: {e}",
                    cache_path.display()
                ),
            )
        })?;
        tracing::info!(
            path = %cache_path.display(),
            sha256 = %cert.fingerprint_sha256_hex(),
            "created a self-signed QUIC certificate"
        );
        Ok(cert)
    }

    /// SHA-256 of the end-entity certificate's DER: what clients pin.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        sha256(self.chain[0].as_ref())
    }

    /// [`fingerprint_sha256`](Self::fingerprint_sha256) as 64 lowercase hex digits.
    pub fn fingerprint_sha256_hex(&self) -> String {
        hex(&self.fingerprint_sha256())
    }

    /// The certificate chain, end-entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// Writes `data` to `path` readable by the owner only, through a temporary file and a rename so
/// that a crash never leaves a half-written key behind.
fn write_private_file(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(data)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
