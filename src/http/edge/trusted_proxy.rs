//! The set of TCP peers whose `X-Forwarded-*` headers are believed (`--trusted-proxy`,
//! `UNDERPASS_TRUSTED_PROXIES`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A `--trusted-proxy` value that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid trusted proxy {value:?}: expected `loopback`, `private`, an IP address \
     (203.0.113.7, 2001:db8::1) or a CIDR range (10.42.0.0/16, fd00::/8)"
)]
pub struct TrustedProxyError {
    /// The offending value, as given (trimmed).
    pub value: String,
}

/// A set of address ranges whose requests may carry believable forwarding headers.
///
/// Accepted specs (case-insensitive keywords, surrounding whitespace ignored):
/// - `loopback`: 127.0.0.0/8 and ::1.
/// - `private`: RFC 1918 (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16), IPv6 unique local
///   fc00::/7, and link-local 169.254.0.0/16 and fe80::/10. Link-local is included because
///   such addresses cannot be reached from beyond the local link, so they are as much "ours"
///   as RFC 1918 space. Carrier-grade NAT space (100.64.0.0/10) is *not* included: it is
///   shared with other ISP customers; list it explicitly if you use it (e.g. Tailscale).
/// - an IP literal: that single address.
/// - a CIDR range, e.g. `10.42.0.0/16`; host bits are allowed and ignored.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`), in specs and in checked peers, are treated
/// as the IPv4 address, because dual-stack listeners report IPv4 peers in that form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// An empty set: no peer is trusted. This is the default.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses repeated `--trusted-proxy` values. Each value may itself be a comma list, so
    /// `--trusted-proxy loopback,private` works too; empty items are ignored.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, TrustedProxyError> {
        let mut nets = Vec::new();
        for spec in specs {
            for item in spec.as_ref().split(',') {
                push_spec(&mut nets, item)?;
            }
        }
        Ok(Self { nets })
    }

    /// Parses a comma-separated list, the form of `UNDERPASS_TRUSTED_PROXIES`
    /// (e.g. `loopback,private,10.42.0.0/16`). Empty items are ignored, so an empty string
    /// yields the empty set.
    pub fn parse_list(list: &str) -> Result<Self, TrustedProxyError> {
        Self::parse(&[list])
    }

    /// Whether `ip` belongs to one of the trusted ranges.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Whether no peer is trusted at all, which lets callers skip header parsing entirely.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The configured ranges, normalised (for logs and the admin API).
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

fn push_spec(nets: &mut Vec<IpNet>, item: &str) -> Result<(), TrustedProxyError> {
    let item = item.trim();
    if item.is_empty() {
        return Ok(());
    }
    if item.eq_ignore_ascii_case("loopback") {
        nets.push(v4(Ipv4Addr::new(127, 0, 0, 0), 8));
        nets.push(v6(Ipv6Addr::LOCALHOST, 128));
        return Ok(());
    }
    if item.eq_ignore_ascii_case("private") {
        nets.push(v4(Ipv4Addr::new(10, 0, 0, 0), 8));
        nets.push(v4(Ipv4Addr::new(172, 16, 0, 0), 12));
        nets.push(v4(Ipv4Addr::new(192, 168, 0, 0), 16));
        nets.push(v4(Ipv4Addr::new(169, 254, 0, 0), 16));
        nets.push(v6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7));
        nets.push(v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10));
        return Ok(());
    }
    let bad = || TrustedProxyError {
        value: item.to_string(),
    };
    let net = if item.contains('/') {
        item.parse::<IpNet>().map_err(|_| bad())?.trunc()
    } else {
        IpNet::from(item.parse::<IpAddr>().map_err(|_| bad())?)
    };
    nets.push(canonical_net(net));
    Ok(())
}

/// Turns an IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) into its IPv4 form so that it
/// matches the canonicalised peers checked in [`TrustedProxies::is_trusted`].
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(n) = net {
        if let (Some(addr), true) = (n.network().to_ipv4_mapped(), n.prefix_len() >= 96) {
            return v4(addr, n.prefix_len() - 96);
        }
    }
    net
}

fn v4(addr: Ipv4Addr, prefix: u8) -> IpNet {
    // Prefixes here are literals or derived from a validated IPv6 prefix, always <= 32.
    IpNet::V4(Ipv4Net::new(addr, prefix).expect("IPv4 prefix <= 32"))
}

fn v6(addr: Ipv6Addr, prefix: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new(addr, prefix).expect("IPv6 prefix <= 128"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parse(specs: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(specs).unwrap()
    }

    #[test]
    fn empty_trusts_nobody() {
        let t = TrustedProxies::none();
        assert!(t.is_empty());
        assert!(!t.is_trusted(ip("127.0.0.1")));
        assert_eq!(TrustedProxies::parse::<String>(&[]).unwrap(), t);
        assert_eq!(TrustedProxies::parse_list("").unwrap(), t);
        assert_eq!(TrustedProxies::parse_list(" , ,").unwrap(), t);
    }

    #[test]
    fn loopback() {
        let t = parse(&["loopback"]);
        assert!(t.is_trusted(ip("127.0.0.1")));
        assert!(t.is_trusted(ip("127.255.1.2")));
        assert!(t.is_trusted(ip("::1")));
        assert!(t.is_trusted(ip("::ffff:127.0.0.1")));
        assert!(!t.is_trusted(ip("10.0.0.1")));
        assert!(!t.is_trusted(ip("::2")));
    }

    #[test]
    fn private_ranges() {
        let t = parse(&["PRIVATE"]);
        for yes in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "169.254.10.10",
            "fd12:3456::1",
            "fc00::1",
            "fe80::1",
            "::ffff:192.168.0.5",
        ] {
            assert!(t.is_trusted(ip(yes)), "{yes} should be trusted");
        }
        for no in [
            "172.32.0.1",
            "172.15.255.255",
            "192.169.0.1",
            "11.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "::1",
            "2001:db8::1",
            "8.8.8.8",
            "::ffff:8.8.8.8",
        ] {
            assert!(!t.is_trusted(ip(no)), "{no} should not be trusted");
        }
    }

    #[test]
    fn literals_and_cidrs() {
        let t = parse(&["203.0.113.7", "2001:db8::/32", " 10.42.1.9/16 "]);
        assert!(t.is_trusted(ip("203.0.113.7")));
        assert!(!t.is_trusted(ip("203.0.113.8")));
        assert!(t.is_trusted(ip("2001:db8:1::5")));
        assert!(!t.is_trusted(ip("2001:db9::1")));
        assert!(t.is_trusted(ip("10.42.200.1")));
        assert!(!t.is_trusted(ip("10.43.0.1")));
        // Host bits are dropped when normalising.
        assert_eq!(t.nets()[2].to_string(), "10.42.0.0/16");
    }

    #[test]
    fn mapped_specs_match_ipv4_peers() {
        let t = parse(&["::ffff:203.0.113.7", "::ffff:10.0.0.0/104"]);
        assert!(t.is_trusted(ip("203.0.113.7")));
        assert!(t.is_trusted(ip("::ffff:203.0.113.7")));
        assert!(t.is_trusted(ip("10.1.2.3")));
        assert!(!t.is_trusted(ip("11.1.2.3")));
    }

    #[test]
    fn comma_lists_in_repeated_values_and_env_form() {
        let a = parse(&["loopback,private", "", "192.0.2.1"]);
        let b = TrustedProxies::parse_list("loopback, private,,192.0.2.1,").unwrap();
        assert_eq!(a, b);
        assert!(b.is_trusted(ip("192.0.2.1")));
        assert!(b.is_trusted(ip("10.0.0.1")));
        assert!(b.is_trusted(ip("::1")));
    }

    #[test]
    fn parse_accepts_owned_strings() {
        let specs = vec!["loopback".to_string()];
        assert!(TrustedProxies::parse(&specs)
            .unwrap()
            .is_trusted(ip("127.0.0.1")));
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        for bad in [
            "localhost",
            "10.0.0.0/33",
            "10.0.0/8",
            "::1/129",
            "1.2.3.4.5",
            "10.0.0.0/",
            "/8",
            "300.1.1.1",
        ] {
            let err = TrustedProxies::parse(&[bad]).unwrap_err();
            assert_eq!(err.value, bad);
            let msg = err.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("loopback"), "{msg}");
        }
        let err = TrustedProxies::parse_list("loopback, nope ,private").unwrap_err();
        assert_eq!(err.value, "nope");
    }
}
