//! PROXY protocol headers (HAProxy's v1 text and v2 binary forms) for local services that want
//! to know who connected: the client writes one before the visitor's first byte, built from the
//! addresses the server reported in STREAM_OPEN. Encoding is the `ppp` crate's.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use ppp::v2::{Builder, Command, Protocol, Version};

/// Which PROXY protocol header a local service expects (`"v1"` or `"v2"` in a config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
    V1,
    /// The binary header.
    V2,
}

impl FromStr for ProxyProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(Self::V1),
            "v2" | "2" => Ok(Self::V2),
            _ => Err(format!("'{s}' is not a PROXY protocol version (v1 or v2)")),
        }
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        })
    }
}

/// An IPv4 address that travelled as IPv6 (`::ffff:a.b.c.d`, a dual-stack listener) becomes
/// plain IPv4 again, so a visitor and a server address agree on the family when they can.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The header for a connection from `visitor` to `server`. When either is unknown (an older
/// server does not report them) or their families differ, the header says so (`UNKNOWN` /
/// `LOCAL`), and the service falls back to the connection's own addresses.
pub fn proxy_header(
    version: ProxyProtocol,
    visitor: Option<SocketAddr>,
    server: Option<SocketAddr>,
) -> Vec<u8> {
    let pair = visitor
        .zip(server)
        .map(|(v, s)| (canonical(v), canonical(s)))
        .filter(|(v, s)| v.is_ipv4() == s.is_ipv4());
    match (version, pair) {
        (ProxyProtocol::V1, Some(pair)) => ppp::v1::Addresses::from(pair).to_string().into_bytes(),
        (ProxyProtocol::V1, None) => ppp::v1::Addresses::Unknown.to_string().into_bytes(),
        (ProxyProtocol::V2, pair) => {
            let built = match pair {
                Some(pair) => {
                    Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, pair)
                        .build()
                }
                None => Builder::with_addresses(
                    Version::Two | Command::Local,
                    Protocol::Unspecified,
                    ppp::v2::Addresses::Unspecified,
                )
                .build(),
            };
            // Only an oversized TLV section can fail to build, and none is added.
            built.unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn v1_names_both_ends_or_says_unknown() {
        let h = proxy_header(
            ProxyProtocol::V1,
            addr("203.0.113.7:51000"),
            addr("10.0.0.2:2222"),
        );
        assert_eq!(h, b"PROXY TCP4 203.0.113.7 10.0.0.2 51000 2222\r\n");
        let h = proxy_header(
            ProxyProtocol::V1,
            addr("[2001:db8::1]:5"),
            addr("[2001:db8::2]:6"),
        );
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 2001:db8::2 5 6\r\n");
        assert_eq!(
            proxy_header(ProxyProtocol::V1, None, addr("10.0.0.2:2222")),
            b"PROXY UNKNOWN\r\n"
        );
    }

    #[test]
    fn mapped_ipv4_is_written_as_ipv4_and_mixed_families_are_unknown() {
        let h = proxy_header(
            ProxyProtocol::V1,
            addr("[::ffff:203.0.113.7]:51000"),
            addr("[::ffff:10.0.0.2]:2222"),
        );
        assert_eq!(h, b"PROXY TCP4 203.0.113.7 10.0.0.2 51000 2222\r\n");
        let h = proxy_header(
            ProxyProtocol::V1,
            addr("203.0.113.7:1"),
            addr("[2001:db8::2]:6"),
        );
        assert_eq!(h, b"PROXY UNKNOWN\r\n");
    }

    #[test]
    fn v2_round_trips_through_the_parser() {
        let h = proxy_header(
            ProxyProtocol::V2,
            addr("203.0.113.7:51000"),
            addr("10.0.0.2:2222"),
        );
        let parsed = ppp::v2::Header::try_from(&h[..]).unwrap();
        assert_eq!(parsed.command, Command::Proxy);
        assert_eq!(
            parsed.addresses,
            ppp::v2::Addresses::from((
                "203.0.113.7:51000".parse::<SocketAddr>().unwrap(),
                "10.0.0.2:2222".parse::<SocketAddr>().unwrap()
            ))
        );
        let local = proxy_header(ProxyProtocol::V2, None, None);
        let parsed = ppp::v2::Header::try_from(&local[..]).unwrap();
        assert_eq!(parsed.command, Command::Local);
    }

    #[test]
    fn versions_parse() {
        assert_eq!("v2".parse(), Ok(ProxyProtocol::V2));
        assert_eq!("V1".parse(), Ok(ProxyProtocol::V1));
        assert!("v3".parse::<ProxyProtocol>().is_err());
    }
}
