//! Subdomain patterns of a client's scope: a route name (`alice`), the root (`@`), or a name
//! with `*` wildcards (`alice-*`, `*-staging`, `*`). A wildcard stands for any run of label
//! characters, never for the root. Route names are single DNS labels, so `*` is the only
//! wildcard worth having; a glob crate would also accept `?`, `[a-z]` and `**`, which a label
//! cannot use, and each would need refusing.

use crate::http::edge::routing::ROOT_ROUTE;

/// One entry of `subdomains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Parses an entry: lowercased; `@`, or label characters (a-z, 0-9, `-`) and `*`, at most
    /// 63 characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        let p = text.trim().to_ascii_lowercase();
        if p == ROOT_ROUTE {
            return Ok(Self(p));
        }
        if p.is_empty() {
            return Err("an empty subdomain pattern".into());
        }
        if let Some(c) = p
            .chars()
            .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*'))
        {
            return Err(format!(
                "subdomain pattern {text:?} contains {c:?}; use a DNS label, '@' for the root, \
                 and '*' as the wildcard"
            ));
        }
        if p.len() > 63 {
            return Err(format!(
                "subdomain pattern {text:?} is longer than 63 characters"
            ));
        }
        Ok(Self(p))
    }

    /// True when route `name` (already validated and lowercased) matches.
    pub fn matches(&self, name: &str) -> bool {
        if name == ROOT_ROUTE || self.0 == ROOT_ROUTE {
            return name == self.0;
        }
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*`-only glob: the classic linear matcher that remembers the last star and, on a mismatch,
/// lets that star swallow one more character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, name: &str) -> bool {
        Pattern::parse(p).unwrap().matches(name)
    }

    #[test]
    fn plain_names_match_exactly() {
        assert!(m("alice", "alice"));
        assert!(m("Alice", "alice"));
        assert!(!m("alice", "alice2"));
        assert!(!m("alice", "bob"));
    }

    #[test]
    fn wildcards() {
        assert!(m("alice-*", "alice-dev"));
        assert!(m("alice-*", "alice-a-b-c"));
        assert!(!m("alice-*", "alice"));
        assert!(!m("alice-*", "bob-alice-x"));
        assert!(m("*-staging", "web-staging"));
        assert!(!m("*-staging", "web-staging2"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("*", "anything"));
        assert!(m("**", "x"));
    }

    #[test]
    fn the_root_needs_its_own_entry() {
        assert!(m("@", "@"));
        assert!(!m("*", "@"));
        assert!(!m("@", "alice"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a.b").is_err());
        assert!(Pattern::parse("a?").is_err());
        assert!(Pattern::parse("[ab]").is_err());
        assert!(Pattern::parse(&"a".repeat(64)).is_err());
        assert!(Pattern::parse("under_score").is_err());
    }
}
