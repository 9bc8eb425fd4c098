//! Shared-secret tokens (`--token`, `--admin-token`): generation, bearer parsing and
//! comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{self, HeaderMap};
use rand::RngCore;
use subtle::ConstantTimeEq;

/// Compares a presented token with the expected one in constant time for equal lengths.
///
/// Like [`super::basic_auth::BasicAuthPolicy::check`], differing lengths return false early,
/// which reveals at most the token's length, never its content.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new random token: 32 bytes (256 bits) from the OS-seeded thread RNG, URL-safe base64
/// without padding, so 43 characters that survive shells, URLs and env files unquoted.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive,
/// surrounding whitespace ignored). `None` when the header is missing, not Bearer, not
/// visible ASCII, or the token is empty.
pub fn parse_bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn auth(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value).unwrap(),
        );
        h
    }

    #[test]
    fn equal_and_unequal_tokens() {
        assert!(tokens_equal("abc", "abc"));
        assert!(tokens_equal("", ""));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "ab"));
        assert!(!tokens_equal("abc", "abcd"));
        assert!(!tokens_equal("", "a"));
        assert!(!tokens_equal("ABC", "abc"));
    }

    #[test]
    fn generated_tokens_are_long_url_safe_and_distinct() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.len(), 43);
        assert!(a.len() >= 40);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(parse_bearer(&auth(b"Bearer tok-123")), Some("tok-123"));
        assert_eq!(parse_bearer(&auth(b"bearer tok")), Some("tok"));
        assert_eq!(parse_bearer(&auth(b"BEARER   tok  ")), Some("tok"));
        assert_eq!(parse_bearer(&auth(b"Bearer")), None);
        assert_eq!(parse_bearer(&auth(b"Bearer ")), None);
        assert_eq!(parse_bearer(&auth(b"Bearertok")), None);
        assert_eq!(parse_bearer(&auth(b"Basic dTpw")), None);
        assert_eq!(parse_bearer(&auth(b"Bearer \xff")), None);
        assert_eq!(parse_bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn bearer_then_compare() {
        let expected = generate_token();
        let h = auth(format!("Bearer {expected}").as_bytes());
        assert!(tokens_equal(parse_bearer(&h).unwrap(), &expected));
        let h = auth(b"Bearer wrong");
        assert!(!tokens_equal(parse_bearer(&h).unwrap(), &expected));
    }
}
