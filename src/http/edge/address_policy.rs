//! Which visitors a binding admits (`--cidr-allow`, `--cidr-deny`): the same forms as
//! `--trusted-proxy` (an IP, a CIDR range, `loopback`, `private`), checked against the
//! visitor's address (for HTTP, the one the edge believes after trusted proxies).

use std::net::IpAddr;

use super::trusted_proxy::TrustedProxies;

/// A binding's address policy: a visitor must be in the allow list (when there is one) and
/// not in the deny list; others get 403 (HTTP) or a closed connection (TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Option<TrustedProxies>,
    deny: Option<TrustedProxies>,
}

/// Parses the entries of one flag (each may be a comma list); `None` when they name nothing.
fn ranges<S: AsRef<str>>(specs: &[S], flag: &str) -> Result<Option<TrustedProxies>, String> {
    let set = TrustedProxies::parse(specs).map_err(|e| {
        format!(
            "invalid {flag} value {:?}: expected an IP address (203.0.113.7), a CIDR range \
             (10.0.0.0/8, fd00::/8), `loopback` or `private`",
            e.value
        )
    })?;
    Ok((!set.is_empty()).then_some(set))
}

impl AddressPolicy {
    /// The policy of `allow` and `deny` entries; `None` when both are empty, which admits
    /// everyone.
    pub fn parse<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Result<Option<Self>, String> {
        let allow = ranges(allow, "--cidr-allow")?;
        let deny = ranges(deny, "--cidr-deny")?;
        Ok((allow.is_some() || deny.is_some()).then_some(Self { allow, deny }))
    }

    /// Whether a visitor from `ip` may pass.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.allow.as_ref().is_none_or(|a| a.is_trusted(ip))
            && !self.deny.as_ref().is_some_and(|d| d.is_trusted(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_allow_list_admits_its_ranges_only() {
        let policy = AddressPolicy::parse(&["10.0.0.0/8, 203.0.113.7", "loopback"], &[])
            .unwrap()
            .unwrap();
        for ok in [
            "10.1.2.3",
            "203.0.113.7",
            "127.0.0.1",
            "::1",
            "::ffff:10.9.9.9",
        ] {
            assert!(policy.admits(ip(ok)), "{ok}");
        }
        for no in ["11.0.0.1", "203.0.113.8", "192.168.1.1", "2001:db8::1"] {
            assert!(!policy.admits(ip(no)), "{no}");
        }
    }

    #[test]
    fn a_deny_list_wins_over_the_allow_list() {
        let deny_only = AddressPolicy::parse(&[], &["198.51.100.0/24"])
            .unwrap()
            .unwrap();
        assert!(deny_only.admits(ip("203.0.113.1")));
        assert!(!deny_only.admits(ip("198.51.100.9")));
        let both = AddressPolicy::parse(&["10.0.0.0/8"], &["10.6.6.6"])
            .unwrap()
            .unwrap();
        assert!(both.admits(ip("10.1.1.1")));
        assert!(!both.admits(ip("10.6.6.6")));
    }

    #[test]
    fn empty_lists_are_no_policy_and_bad_entries_name_their_flag() {
        assert_eq!(AddressPolicy::parse::<&str>(&[], &[]), Ok(None));
        assert_eq!(AddressPolicy::parse(&[" , "], &[""]), Ok(None));
        let err = AddressPolicy::parse(&["10.0.0.0/33"], &[]).unwrap_err();
        assert!(
            err.contains("10.0.0.0/33") && err.contains("--cidr-allow"),
            "{err}"
        );
        let err = AddressPolicy::parse(&[], &["nope"]).unwrap_err();
        assert!(err.contains("nope") && err.contains("--cidr-deny"), "{err}");
    }
}
