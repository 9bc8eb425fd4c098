//! Who the visitor is: client address, scheme and host, derived from the TCP peer and, only
//! when that peer is a trusted proxy, from its `X-Forwarded-*` headers; and writing the
//! resulting `X-Forwarded-*` headers for the app.
//!
//! Order of use on a request: [`client_info`] on the incoming headers first, then strip
//! hop-by-hop headers, then [`write_forwarded_headers`]. Computing first means a
//! `Connection: x-forwarded-for` trick cannot hide a trusted proxy's headers from us, and
//! writing last means nothing we set is stripped afterwards.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::authority::Authority;
use super::trusted_proxy::TrustedProxies;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Headers (besides every `x-forwarded-*`) that apps and frameworks read as the client's
/// address: the classic ones and the CDN-specific spellings (Akamai, Cloudflare, Fastly, ...).
/// A visitor must never be able to set one, in any spelling.
const CLIENT_ADDRESS_HEADERS: [&str; 11] = [
    "x-real-ip",
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x-originating-ip",
    "client-ip",
];

/// What the edge believes about the visitor of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The visitor's address: the TCP peer, or for a trusted peer the rightmost untrusted
    /// address of the `X-Forwarded-For` chain.
    pub client_ip: IpAddr,
    /// `"http"` or `"https"`, as the visitor used it.
    pub proto: &'static str,
    /// The public host the visitor asked for: a trusted proxy's well-formed
    /// `X-Forwarded-Host`, else the request's own authority. Routing uses it and it is sent on
    /// as `X-Forwarded-Host`.
    pub host: Option<Authority>,
    /// Whether the TCP peer is a trusted proxy, i.e. whether its forwarding headers were used
    /// and may be passed on.
    pub peer_trusted: bool,
    /// The outgoing `X-Forwarded-For` value: the believed incoming chain plus the TCP peer.
    pub forwarded_for: HeaderValue,
}

/// Works out the visitor behind a request whose own authority is `host` (see
/// [`request_authority`](super::authority::request_authority)).
///
/// Untrusted peer: every incoming forwarding header is ignored; the client is the peer, the
/// scheme is that of our own listener (`is_tls`), the host is `host`.
///
/// Trusted peer: the chain is the incoming `X-Forwarded-For` entries (all headers, comma
/// lists; `X-Real-IP` as a one-entry chain when there is no `X-Forwarded-For`) followed by
/// the peer. Walking from the right, trusted addresses are skipped and the first untrusted
/// one is the client; if all are trusted, the leftmost is. An entry that is not an address
/// (`unknown`, garbage) ends the walk: we cannot tell who is behind it, so the client is the
/// trusted hop just to its right, the last one we can vouch for. `X-Forwarded-Proto` (`http`
/// or `https`) and `X-Forwarded-Host` are used when present and well-formed.
pub fn client_info(
    peer: SocketAddr,
    headers: &HeaderMap,
    is_tls: bool,
    host: Option<&Authority>,
    trusted: &TrustedProxies,
) -> ClientInfo {
    // Dual-stack listeners report IPv4 peers as ::ffff:a.b.c.d; apps expect a.b.c.d.
    let peer_ip = peer.ip().to_canonical();
    let own_proto = if is_tls { "https" } else { "http" };
    let peer_value =
        HeaderValue::from_str(&peer_ip.to_string()).expect("an IP address is a valid header value");

    if !trusted.is_trusted(peer_ip) {
        return ClientInfo {
            client_ip: peer_ip,
            proto: own_proto,
            host: host.cloned(),
            peer_trusted: false,
            forwarded_for: peer_value,
        };
    }

    let mut entries: Vec<&[u8]> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|e| !e.is_empty())
        .collect();
    if entries.is_empty() {
        if let Some(real_ip) = headers.get(X_REAL_IP) {
            let real_ip = real_ip.as_bytes().trim_ascii();
            if !real_ip.is_empty() {
                entries.push(real_ip);
            }
        }
    }

    let mut client_ip = peer_ip;
    for entry in entries.iter().rev() {
        match parse_chain_entry(entry) {
            Some(ip) => {
                client_ip = ip;
                if !trusted.is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }

    let mut chain = Vec::new();
    for entry in &entries {
        chain.extend_from_slice(entry);
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(peer_value.as_bytes());
    // The entries came out of header values, so the join is one too; the fallback is only
    // there to avoid a panic path.
    let forwarded_for = HeaderValue::from_bytes(&chain).unwrap_or(peer_value);

    let proto = headers
        .get(X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .and_then(|p| {
            if p.eq_ignore_ascii_case("https") {
                Some("https")
            } else if p.eq_ignore_ascii_case("http") {
                Some("http")
            } else {
                None
            }
        })
        .unwrap_or(own_proto);

    ClientInfo {
        client_ip,
        proto,
        host: forwarded_host(headers).or_else(|| host.cloned()),
        peer_trusted: true,
        forwarded_for,
    }
}

/// Sets `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Real-IP` (the
/// client address, for apps that only read that one) on the request going to the app.
///
/// For an untrusted peer it first removes every header that names a client address or the
/// public host (`X-Forwarded-*`, `X-Real-IP`, `Forwarded`, `True-Client-IP`,
/// `CF-Connecting-IP`, ..., see [`CLIENT_ADDRESS_HEADERS`]), so a visitor cannot spoof any of
/// them. For a trusted peer those it sent are passed through untouched: they are that proxy's
/// statement, not the visitor's. Spellings with `_` for `-` (`X_Forwarded_For`) are removed
/// from everyone: CGI-style stacks (PHP, WSGI, Rack, nginx's `$http_`) read them as the real
/// header, and no proxy writes them.
pub fn write_forwarded_headers(headers: &mut HeaderMap, info: &ClientInfo) {
    let spoofable: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let underscored = name.as_str().contains('_');
            (underscored || !info.peer_trusted) && names_client_address(name.as_str())
        })
        .cloned()
        .collect();
    for name in spoofable {
        headers.remove(name);
    }
    headers.insert(X_FORWARDED_FOR, info.forwarded_for.clone());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(info.proto));
    match &info.host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host.header_value());
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
    let client = if info.peer_trusted {
        HeaderValue::from_str(&info.client_ip.to_string())
            .expect("an IP address is a valid header value")
    } else {
        // An untrusted peer's chain is its own address alone: the client's, already formatted.
        info.forwarded_for.clone()
    };
    headers.insert(X_REAL_IP, client);
}

/// Whether a (lowercase) header name, read with `_` as `-` the way CGI-style stacks do, is
/// one of the client-address or public-host headers.
fn names_client_address(name: &str) -> bool {
    let named = |dashed: &str| {
        dashed.starts_with("x-forwarded-") || CLIENT_ADDRESS_HEADERS.contains(&dashed)
    };
    // Most names have no `_`: no copy for them.
    if name.contains('_') {
        named(&name.replace('_', "-"))
    } else {
        named(name)
    }
}

/// The first item of `X-Forwarded-Host` if it is a host (`name`, `name:port`, `[v6]:port`);
/// proxies that chain append to it, and the first item is the public one.
fn forwarded_host(headers: &HeaderMap) -> Option<Authority> {
    let value = headers.get(X_FORWARDED_HOST)?.to_str().ok()?;
    Authority::parse(value.split(',').next()?)
}

/// One `X-Forwarded-For` entry as an address. Besides bare addresses, some proxies write
/// `a.b.c.d:port` or `[v6]:port`; those are accepted and the port dropped.
fn parse_chain_entry(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?;
    let ip = if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = s.parse::<SocketAddr>() {
        sa.ip()
    } else {
        // `[v6]` without a port.
        let inner = s.strip_prefix('[')?.strip_suffix(']')?;
        IpAddr::V6(inner.parse::<Ipv6Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> SocketAddr {
        SocketAddr::new(s.parse().unwrap(), 40000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn trusted(specs: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(specs).unwrap()
    }

    fn auth(s: &str) -> Authority {
        Authority::parse(s).unwrap()
    }

    fn host_of(info: &ClientInfo) -> Option<String> {
        info.host.as_ref().map(ToString::to_string)
    }

    fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn untrusted_peer_spoofed_headers_are_ignored_and_removed() {
        let mut h = map(&[
            ("host", "demo.example.com"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example.com"),
            ("x-forwarded-port", "443"),
            ("x-real-ip", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-other", "kept"),
        ]);
        let t = trusted(&["private"]);
        let p = peer("203.0.113.9");
        let info = client_info(p, &h, false, Some(&auth("demo.example.com")), &t);
        assert_eq!(info.client_ip, ip("203.0.113.9"));
        assert_eq!(info.proto, "http");
        assert_eq!(host_of(&info).as_deref(), Some("demo.example.com"));
        assert!(!info.peer_trusted);

        write_forwarded_headers(&mut h, &info);
        assert_eq!(get(&h, "x-forwarded-for"), Some("203.0.113.9"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&h, "x-forwarded-host"), Some("demo.example.com"));
        assert_eq!(get(&h, "x-real-ip"), Some("203.0.113.9"));
        assert_eq!(get(&h, "x-forwarded-port"), None);
        assert_eq!(get(&h, "forwarded"), None);
        assert_eq!(get(&h, "x-other"), Some("kept"));
        assert_eq!(get(&h, "host"), Some("demo.example.com"));
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn no_trusted_proxies_at_all_and_tls() {
        let h = map(&[("x-forwarded-proto", "http")]);
        let info = client_info(peer("::1"), &h, true, None, &TrustedProxies::none());
        assert_eq!(info.client_ip, ip("::1"));
        assert_eq!(info.proto, "https");
        assert_eq!(host_of(&info), None);
        let mut out = HeaderMap::new();
        out.insert("x-forwarded-host", HeaderValue::from_static("stale"));
        write_forwarded_headers(&mut out, &info);
        assert_eq!(get(&out, "x-forwarded-host"), None);
        assert_eq!(get(&out, "x-forwarded-for"), Some("::1"));
    }

    #[test]
    fn trusted_peer_single_hop() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "demo.example.com"),
            ("x-forwarded-port", "443"),
        ]);
        let t = trusted(&["loopback"]);
        let info = client_info(
            peer("127.0.0.1"),
            &h,
            false,
            Some(&auth("127.0.0.1:8080")),
            &t,
        );
        assert_eq!(info.client_ip, ip("198.51.100.7"));
        assert_eq!(info.proto, "https");
        assert_eq!(host_of(&info).as_deref(), Some("demo.example.com"));
        assert!(info.peer_trusted);
        write_forwarded_headers(&mut h, &info);
        assert_eq!(get(&h, "x-forwarded-for"), Some("198.51.100.7, 127.0.0.1"));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&h, "x-forwarded-host"), Some("demo.example.com"));
        assert_eq!(get(&h, "x-forwarded-port"), Some("443"));
        assert_eq!(get(&h, "x-real-ip"), Some("198.51.100.7"));
    }

    #[test]
    fn trusted_chain_with_several_hops_picks_rightmost_untrusted() {
        // The visitor forged "6.6.6.6"; 198.51.100.7 is who connected to our first proxy.
        let h = map(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        let t = trusted(&["private", "loopback"]);
        let info = client_info(
            peer("10.0.0.9"),
            &h,
            false,
            Some(&auth("a.example.com")),
            &t,
        );
        assert_eq!(info.client_ip, ip("198.51.100.7"));
        assert_eq!(
            info.forwarded_for,
            "6.6.6.6, 198.51.100.7, 10.0.0.5, 10.0.0.9"
        );
    }

    #[test]
    fn all_trusted_chain_gives_leftmost() {
        let h = map(&[("x-forwarded-for", "10.1.1.1,10.2.2.2")]);
        let t = trusted(&["private"]);
        let info = client_info(peer("10.0.0.9"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("10.1.1.1"));
    }

    #[test]
    fn trusted_peer_without_headers_is_the_client() {
        let h = HeaderMap::new();
        let t = trusted(&["loopback"]);
        let info = client_info(
            peer("127.0.0.1"),
            &h,
            false,
            Some(&auth("x.example.com")),
            &t,
        );
        assert_eq!(info.client_ip, ip("127.0.0.1"));
        assert_eq!(info.proto, "http");
        assert_eq!(host_of(&info).as_deref(), Some("x.example.com"));
        assert_eq!(info.forwarded_for, "127.0.0.1");
    }

    #[test]
    fn garbage_entries_stop_the_walk_without_panic() {
        let t = trusted(&["private"]);
        let h = map(&[("x-forwarded-for", "198.51.100.7, unknown, 10.0.0.5")]);
        let info = client_info(peer("10.0.0.9"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("10.0.0.5"));
        assert_eq!(
            info.forwarded_for,
            "198.51.100.7, unknown, 10.0.0.5, 10.0.0.9"
        );

        let h = map(&[("x-forwarded-for", "not-an-ip")]);
        let info = client_info(peer("10.0.0.9"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("10.0.0.9"));

        for weird in [
            ",,,",
            " , ",
            "1.2.3.4:notaport",
            "[::1",
            "999.1.1.1",
            "[1.2.3.4]",
        ] {
            let h = map(&[("x-forwarded-for", weird)]);
            let info = client_info(peer("10.0.0.9"), &h, false, None, &t);
            assert_eq!(info.client_ip, ip("10.0.0.9"), "{weird}");
        }

        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.7").unwrap(),
        );
        let info = client_info(peer("10.0.0.9"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("198.51.100.7"));
        let mut out = HeaderMap::new();
        write_forwarded_headers(&mut out, &info);
        assert_eq!(
            out.get("x-forwarded-for").unwrap().as_bytes(),
            b"\xff\xfe, 198.51.100.7, 10.0.0.9"
        );
    }

    #[test]
    fn entries_with_ports_and_ipv6() {
        let t = trusted(&["private", "loopback"]);
        let h = map(&[("x-forwarded-for", "[2001:db8::7]:1234, 198.51.100.7:5555")]);
        let info = client_info(peer("::1"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("198.51.100.7"));

        let h = map(&[("x-forwarded-for", "2001:db8::7, fd00::1")]);
        let info = client_info(peer("::1"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("2001:db8::7"));
        assert_eq!(info.forwarded_for, "2001:db8::7, fd00::1, ::1");

        let h = map(&[("x-forwarded-for", "[2001:db8::8]")]);
        let info = client_info(peer("::1"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("2001:db8::8"));
    }

    #[test]
    fn ipv4_mapped_peer_and_entries_are_canonicalised() {
        let t = trusted(&["loopback"]);
        let h = map(&[("x-forwarded-for", "::ffff:198.51.100.7")]);
        let info = client_info(peer("::ffff:127.0.0.1"), &h, false, None, &t);
        assert!(info.peer_trusted);
        assert_eq!(info.client_ip, ip("198.51.100.7"));
        assert_eq!(info.forwarded_for, "::ffff:198.51.100.7, 127.0.0.1");

        let info = client_info(peer("::ffff:203.0.113.1"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("203.0.113.1"));
        assert_eq!(info.forwarded_for, "203.0.113.1");
    }

    #[test]
    fn x_real_ip_is_a_fallback_chain_for_trusted_peers() {
        let t = trusted(&["loopback"]);
        let h = map(&[("x-real-ip", " 198.51.100.7 ")]);
        let info = client_info(peer("127.0.0.1"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("198.51.100.7"));
        assert_eq!(info.forwarded_for, "198.51.100.7, 127.0.0.1");

        // XFF wins when both are present.
        let h = map(&[("x-real-ip", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]);
        let info = client_info(peer("127.0.0.1"), &h, false, None, &t);
        assert_eq!(info.client_ip, ip("2.2.2.2"));
    }

    #[test]
    fn bad_proto_and_host_fall_back() {
        let t = trusted(&["loopback"]);
        let h = map(&[
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "evil host/with spaces"),
        ]);
        let p = peer("127.0.0.1");
        let info = client_info(p, &h, true, Some(&auth("demo.example.com")), &t);
        assert_eq!(info.proto, "https");
        assert_eq!(host_of(&info).as_deref(), Some("demo.example.com"));

        let long = "a".repeat(300);
        let h = map(&[("x-forwarded-host", &long), ("x-forwarded-proto", "")]);
        let info = client_info(p, &h, false, Some(&auth("h")), &t);
        assert_eq!(host_of(&info).as_deref(), Some("h"));
        assert_eq!(info.proto, "http");
    }

    #[test]
    fn proto_and_host_lists_take_first_item() {
        let t = trusted(&["loopback"]);
        let h = map(&[
            ("x-forwarded-proto", "https, http"),
            ("x-forwarded-host", "Demo.Example.com:443, inner.local"),
        ]);
        let p = peer("127.0.0.1");
        let info = client_info(p, &h, false, Some(&auth("127.0.0.1:8080")), &t);
        assert_eq!(info.proto, "https");
        assert_eq!(host_of(&info).as_deref(), Some("Demo.Example.com:443"));
        let h = map(&[("x-forwarded-host", "[::1]:8080")]);
        let info = client_info(p, &h, false, None, &t);
        assert_eq!(host_of(&info).as_deref(), Some("[::1]:8080"));
    }

    #[test]
    fn forwarded_host_of_an_untrusted_peer_is_ignored() {
        let t = trusted(&["loopback"]);
        let h = map(&[("x-forwarded-host", "evil.example.com")]);
        let good = auth("good.example.com");
        let info = client_info(peer("8.8.8.8"), &h, false, Some(&good), &t);
        assert_eq!(host_of(&info).as_deref(), Some("good.example.com"));
        let info = client_info(peer("8.8.8.8"), &h, false, None, &t);
        assert_eq!(host_of(&info), None);
        let info = client_info(peer("127.0.0.1"), &HeaderMap::new(), false, Some(&good), &t);
        assert_eq!(host_of(&info).as_deref(), Some("good.example.com"));
    }

    #[test]
    fn underscore_and_cdn_spellings_are_removed() {
        let mut h = map(&[
            ("x_forwarded_for", "6.6.6.6"),
            ("true-client-ip", "6.6.6.6"),
            ("cf-connecting-ip", "6.6.6.6"),
            ("x-client-ip", "6.6.6.6"),
            ("x_real_ip", "6.6.6.6"),
            ("x-other_header", "kept"),
        ]);
        let t = trusted(&["loopback"]);
        let mut trusted_h = h.clone();
        let info = client_info(peer("203.0.113.9"), &h, false, None, &t);
        write_forwarded_headers(&mut h, &info);
        for gone in [
            "x_forwarded_for",
            "true-client-ip",
            "cf-connecting-ip",
            "x-client-ip",
            "x_real_ip",
        ] {
            assert_eq!(get(&h, gone), None, "{gone}");
        }
        assert_eq!(get(&h, "x-other_header"), Some("kept"));
        // A trusted proxy's CDN headers stay; underscore spellings go from everyone.
        let info = client_info(peer("127.0.0.1"), &trusted_h, false, None, &t);
        write_forwarded_headers(&mut trusted_h, &info);
        assert_eq!(get(&trusted_h, "true-client-ip"), Some("6.6.6.6"));
        assert_eq!(get(&trusted_h, "x_forwarded_for"), None);
        assert_eq!(get(&trusted_h, "x_real_ip"), None);
    }
}
