//! Client tokens as the server keeps them: SHA-256 digests only, written as 64 hex digits, and
//! a lookup that compares a presented token against every client in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// SHA-256 of a client token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The digest of `token` (its UTF-8 bytes, as `printf %s "$TOKEN" | sha256sum` computes it).
    pub fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// Parses 64 hex digits (either case).
    pub fn parse_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(format!(
                "token_sha256 must be 64 hex digits, got {} characters",
                bytes.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(hi), Some(lo)) => out[i] = (hi * 16 + lo) as u8,
                _ => return Err("token_sha256 must be 64 hex digits (0-9, a-f)".into()),
            }
        }
        Ok(Self(out))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not the token, but it would let anyone who sees logs test guesses offline.
        f.write_str("TokenHash(..)")
    }
}

/// The index of the entry of `hashes` equal to `presented`. Every entry is compared, whether or
/// not an earlier one matched, so the time taken does not tell which client (if any) matched.
pub fn find(presented: &TokenHash, hashes: impl Iterator<Item = TokenHash>) -> Option<usize> {
    let mut found = None;
    for (i, h) in hashes.enumerate() {
        let hit = h.ct_eq(presented);
        if hit && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_strings() {
        // `printf %s abc | sha256sum`
        assert_eq!(
            TokenHash::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            TokenHash::of("").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let h = TokenHash::of("secret");
        assert_eq!(TokenHash::parse_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(TokenHash::parse_hex(&h.to_hex().to_uppercase()).unwrap(), h);
        assert!(TokenHash::parse_hex("abc").unwrap_err().contains("64 hex"));
        let bad = "g".repeat(64);
        assert!(TokenHash::parse_hex(&bad).is_err());
        let multibyte = "é".repeat(32);
        assert!(TokenHash::parse_hex(&multibyte).is_err());
    }

    #[test]
    fn lookup_finds_the_matching_entry() {
        let hashes = [TokenHash::of("a"), TokenHash::of("b"), TokenHash::of("c")];
        assert_eq!(find(&TokenHash::of("b"), hashes.iter().copied()), Some(1));
        assert_eq!(find(&TokenHash::of("d"), hashes.iter().copied()), None);
        assert_eq!(find(&TokenHash::of("a"), std::iter::empty()), None);
    }

    #[test]
    fn debug_hides_the_digest() {
        assert_eq!(format!("{:?}", TokenHash::of("x")), "TokenHash(..)");
    }
}
