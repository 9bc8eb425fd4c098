//! Per-binding HTTP Basic Auth (`--basic-auth-username`, `--basic-auth-password`).

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use http::header::{self, HeaderMap};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Some clients drop the `=` padding; accepting both costs nothing and avoids odd 401s.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The credentials guarding one binding's public traffic (HTTP, SSE and WebSocket alike).
///
/// Comparison uses [`subtle::ConstantTimeEq`] on the byte strings. That is constant-time for
/// inputs of equal length and returns early (false) when lengths differ, so it can reveal the
/// *length* of the secret but not its content; for passwords sent over the network that is an
/// accepted trade-off that avoids pulling in a hash crate just to equalise lengths.
#[derive(Clone, Serialize, Deserialize)]
pub struct BasicAuthPolicy {
    /// Required username; `None` accepts any username and checks only the password.
    pub username: Option<String>,
    /// Required password.
    pub password: String,
}

impl BasicAuthPolicy {
    /// A policy requiring `password`, and `username` when given.
    pub fn new(username: Option<String>, password: impl Into<String>) -> Self {
        Self {
            username,
            password: password.into(),
        }
    }

    /// Whether the request's `Authorization: Basic ...` header satisfies this policy.
    ///
    /// The scheme is matched case-insensitively; the decoded credentials are split at the
    /// first `:` (a username cannot contain one, a password can). A missing, non-Basic or
    /// malformed header is simply a failed check.
    pub fn check(&self, headers: &HeaderMap) -> bool {
        let Some((user, pass)) = basic_credentials(headers) else {
            return false;
        };
        let password_ok = pass.ct_eq(self.password.as_bytes());
        // Both comparisons always run, so timing does not tell which one failed.
        let username_ok = match &self.username {
            Some(expected) => user.ct_eq(expected.as_bytes()),
            None => subtle::Choice::from(1),
        };
        bool::from(password_ok & username_ok)
    }
}

impl fmt::Debug for BasicAuthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuthPolicy")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The `WWW-Authenticate` value sent with a 401.
pub fn challenge_header_value() -> &'static str {
    "Basic realm=\"underpass\""
}

/// Whether two bindings carry the same auth policy (both none, or equal username and
/// password). Cluster replicas of one route must agree, or a visitor's access would depend
/// on which replica round robin picks. Compared in constant time like [`BasicAuthPolicy::check`].
pub fn same_policy(a: Option<&BasicAuthPolicy>, b: Option<&BasicAuthPolicy>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let password = a.password.as_bytes().ct_eq(b.password.as_bytes());
            let username = match (&a.username, &b.username) {
                (None, None) => subtle::Choice::from(1),
                (Some(x), Some(y)) => x.as_bytes().ct_eq(y.as_bytes()),
                _ => subtle::Choice::from(0),
            };
            bool::from(password & username)
        }
        _ => false,
    }
}

/// Decoded `(username, password)` bytes of the first `Authorization` header, if it is Basic.
fn basic_credentials(headers: &HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = LENIENT_BASE64.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, pass) = decoded.split_at(colon);
    Some((user.to_vec(), pass[1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use http::HeaderValue;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn basic(creds: &str) -> HeaderMap {
        auth(&format!("Basic {}", STANDARD.encode(creds)))
    }

    fn pw(p: &str) -> BasicAuthPolicy {
        BasicAuthPolicy::new(None, p)
    }

    fn user_pw(u: &str, p: &str) -> BasicAuthPolicy {
        BasicAuthPolicy::new(Some(u.into()), p)
    }

    #[test]
    fn password_only_accepts_any_username() {
        let p = pw("secret");
        assert!(p.check(&basic("alice:secret")));
        assert!(p.check(&basic("bob:secret")));
        assert!(p.check(&basic(":secret")));
        assert!(!p.check(&basic("alice:wrong")));
        assert!(!p.check(&basic("alice:secre")));
        assert!(!p.check(&basic("alice:secret2")));
    }

    #[test]
    fn username_must_match_when_set() {
        let p = user_pw("admin", "secret");
        assert!(p.check(&basic("admin:secret")));
        assert!(!p.check(&basic("Admin:secret")));
        assert!(!p.check(&basic("root:secret")));
        assert!(!p.check(&basic("admin:nope")));
        assert!(!p.check(&basic(":secret")));
    }

    #[test]
    fn password_with_colon_splits_at_first_colon() {
        let p = user_pw("admin", "a:b:c");
        assert!(p.check(&basic("admin:a:b:c")));
        assert!(!p.check(&basic("admin:a:b")));
        assert!(!p.check(&basic("admin:a")));
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        let p = pw("secret");
        let encoded = STANDARD.encode("u:secret");
        assert!(p.check(&auth(&format!("basic {encoded}"))));
        assert!(p.check(&auth(&format!("BASIC   {encoded}  "))));
        let unpadded = STANDARD_NO_PAD.encode("u:secret1");
        assert!(pw("secret1").check(&auth(&format!("Basic {unpadded}"))));
    }

    #[test]
    fn malformed_headers_fail() {
        let p = pw("secret");
        assert!(!p.check(&HeaderMap::new()));
        assert!(!p.check(&auth("Basic")));
        assert!(!p.check(&auth("Basic ")));
        assert!(!p.check(&auth("Basic !!!not-base64!!!")));
        assert!(!p.check(&auth(&format!("Bearer {}", STANDARD.encode("u:secret")))));
        assert!(!p.check(&auth(&format!("Basic {}", STANDARD.encode("nocolon")))));
        assert!(!p.check(&auth(&format!("Basic{}", STANDARD.encode("u:secret")))));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        );
        assert!(!p.check(&h));
    }

    #[test]
    fn non_utf8_credentials_compare_bytewise() {
        let mut h = HeaderMap::new();
        let encoded = STANDARD.encode(b"u:\xffpw");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert!(!pw("pw").check(&h));
    }

    #[test]
    fn empty_password_policy_needs_empty_password() {
        let p = pw("");
        assert!(p.check(&basic("anyone:")));
        assert!(!p.check(&basic("anyone:x")));
    }

    #[test]
    fn debug_hides_password() {
        let p = user_pw("admin", "hunter2");
        let shown = format!("{p:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("admin"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn challenge_value() {
        assert_eq!(challenge_header_value(), "Basic realm=\"underpass\"");
        assert!(HeaderValue::from_str(challenge_header_value()).is_ok());
    }

    #[test]
    fn same_policy_cases() {
        let a = user_pw("admin", "x");
        assert!(same_policy(None, None));
        assert!(same_policy(Some(&a), Some(&a.clone())));
        assert!(!same_policy(Some(&a), None));
        assert!(!same_policy(None, Some(&a)));
        assert!(!same_policy(Some(&a), Some(&user_pw("admin", "y"))));
        assert!(!same_policy(Some(&a), Some(&user_pw("root", "x"))));
        assert!(!same_policy(Some(&a), Some(&pw("x"))));
        assert!(same_policy(Some(&pw("x")), Some(&pw("x"))));
    }

    #[test]
    fn serde_round_trip() {
        let a = user_pw("admin", "p:w");
        let json = serde_json::to_string(&a).unwrap();
        let b: BasicAuthPolicy = serde_json::from_str(&json).unwrap();
        assert!(same_policy(Some(&a), Some(&b)));
    }
}
