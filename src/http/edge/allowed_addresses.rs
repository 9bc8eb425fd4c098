//! Which visitors a binding admits (`--cidr-allow`): the same forms as `--trusted-proxy`
//! (an IP, a CIDR range, `loopback`, `private`), checked against the visitor's address (for
//! HTTP, the one the edge believes after trusted proxies).

use std::net::IpAddr;

use super::trusted_proxy::TrustedProxies;

/// A binding's allow list; a visitor outside it gets 403 (HTTP) or a closed connection (TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedAddresses(TrustedProxies);

impl AllowedAddresses {
    /// Parses the entries (each may be a comma list); `None` when they name nothing, which
    /// means "everyone" rather than "no one".
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Option<Self>, String> {
        let set = TrustedProxies::parse(specs).map_err(|e| {
            format!(
                "invalid --cidr-allow value {:?}: expected an IP address (203.0.113.7), a CIDR \
                 range (10.0.0.0/8, fd00::/8), `loopback` or `private`",
                e.value
            )
        })?;
        Ok((!set.is_empty()).then_some(Self(set)))
    }

    /// Whether a visitor from `ip` may pass.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.0.is_trusted(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_keywords_and_mapped_addresses() {
        let allow = AllowedAddresses::parse(&["10.0.0.0/8, 203.0.113.7", "loopback"])
            .unwrap()
            .unwrap();
        for ip in [
            "10.1.2.3",
            "203.0.113.7",
            "127.0.0.1",
            "::1",
            "::ffff:10.9.9.9",
        ] {
            assert!(allow.admits(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["11.0.0.1", "203.0.113.8", "192.168.1.1", "2001:db8::1"] {
            assert!(!allow.admits(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(AllowedAddresses::parse::<&str>(&[]), Ok(None));
        assert_eq!(AllowedAddresses::parse(&[" , "]), Ok(None));
        let err = AllowedAddresses::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(
            err.contains("10.0.0.0/33") && err.contains("--cidr-allow"),
            "{err}"
        );
    }
}
