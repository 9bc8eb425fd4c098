//! SHA-256 certificate fingerprints: computed, printed and parsed.

use std::io;
use std::path::Path;

/// SHA-256 of a certificate's DER. ring is already in the build as rustls' crypto provider, so
/// this adds no crate (sha2 would add several).
pub(crate) fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The SHA-256 fingerprint of a DER certificate as 64 lowercase hex digits: what
/// `--server-cert-sha256` takes and what the server prints as `quic-cert-sha256:`.
pub fn sha256_hex(der: &[u8]) -> String {
    hex(&sha256(der))
}

/// Parses a SHA-256 fingerprint written as 64 hex digits, optionally separated by `:` (as
/// `openssl x509 -fingerprint -sha256` prints it), in either case.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let digits: Vec<u8> = text
        .trim()
        .bytes()
        .filter(|&c| c != b':')
        .map(|c| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(|| format!("SHA-256 fingerprint '{text}' has a character that is not hex"))?;
    if digits.len() != 64 {
        return Err(format!(
            "SHA-256 fingerprint '{text}' has {} hex digits instead of 64",
            digits.len()
        ));
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Ok(out)
}

/// A PEM file that could not be read, as an `io::Error` naming the file.
pub(crate) fn pem_error(what: &str, path: &Path, err: rustls_pki_types::pem::Error) -> io::Error {
    match err {
        rustls_pki_types::pem::Error::Io(e) => {
            io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
        }
        other => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} {}: {other}", path.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        let fp = [0xabu8; 32];
        assert_eq!(hex(&fp), "ab".repeat(32));
        assert_eq!(parse_fingerprint(&"AB".repeat(32)).unwrap(), fp);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), fp);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        // SHA-256 of the empty string.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
