//! The one authority of a request (RFC 9112 section 3.2): the target's authority when the
//! request line uses absolute form, else the single `Host` header. It is worked out once per
//! request, normalised, and everything the edge decides from a host (routing, Basic Auth and
//! address policy of the route, `X-Forwarded-Host`, the `Host` the app sees) uses this value,
//! so no two of them can disagree about which site a request is for.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Uri, Version};

/// Longest host name accepted: a 253-byte DNS name with some slack; longer is garbage.
const MAX_HOST_LEN: usize = 260;

/// A host and optional port. Decisions use the normalised [`host`](Self::host) (ASCII
/// lowercase, one trailing dot dropped, an IPv6 literal without its brackets); what is sent on
/// (`Host`, `X-Forwarded-Host`) is the authority as the visitor wrote it, so the app sees the
/// public Host unchanged. Built only by [`Authority::parse`], so it is always well-formed and
/// always a valid header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    host: String,
    port: Option<u16>,
    as_sent: String,
}

/// Why a request has no usable authority; each is a 400 (RFC 9112 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// An HTTP/1.1 request without a Host header.
    #[error("request has no Host header")]
    Missing,
    /// More than one Host header line.
    #[error("request has more than one Host header")]
    Duplicate,
    /// A Host header or absolute-form target that is not a host[:port].
    #[error("request has an invalid Host header or target authority")]
    Invalid,
}

impl Authority {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` (and a bare IPv6 literal, which some
    /// configurations write for `--domain`). Refuses userinfo, paths, lists, spaces and any other
    /// character a host cannot have.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(parse_port(after.strip_prefix(':')?)?),
            };
            (ipv6_literal(inside)?, port)
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 literal: every ':' belongs to the address.
            (s.parse::<Ipv6Addr>().ok()?.to_string(), None)
        } else if let Some((name, port)) = s.split_once(':') {
            (reg_name(name)?, Some(parse_port(port)?))
        } else {
            (reg_name(s)?, None)
        };
        Some(Self {
            host,
            port,
            as_sent: s.to_string(),
        })
    }

    /// The host without port or brackets (`demo.example.com`, `::1`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, when one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The normalised `host[:port]` (`demo.example.com:8080`, `[::1]`).
    pub fn normalised(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    /// The authority as sent, as a header value (`Host`, `X-Forwarded-Host`).
    pub fn header_value(&self) -> HeaderValue {
        // Only visible ASCII survives `parse`, so this cannot fail; the fallback avoids a panic
        // path anyway.
        HeaderValue::from_str(&self.as_sent).unwrap_or(HeaderValue::from_static("invalid"))
    }
}

impl fmt::Display for Authority {
    /// The authority as the visitor wrote it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_sent)
    }
}

/// The authority a request is for: the absolute-form target's (RFC 9112 section 3.2.2: it
/// wins and `Host` is ignored), else the one `Host` header. `Ok(None)` only for an HTTP/1.0
/// request without either, which may legitimately have none.
pub fn request_authority(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<Authority>, HostError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Duplicate);
    }
    if let Some(target) = uri.authority() {
        if target.as_str().contains('@') {
            return Err(HostError::Invalid);
        }
        return Authority::parse(target.as_str())
            .map(Some)
            .ok_or(HostError::Invalid);
    }
    match host {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(Authority::parse)
            .map(Some)
            .ok_or(HostError::Invalid),
        None if version == Version::HTTP_10 || version == Version::HTTP_09 => Ok(None),
        None => Err(HostError::Missing),
    }
}

/// A DNS-style name (or IPv4 literal), lowercased, one trailing dot dropped. Characters are
/// those of an RFC 3986 reg-name without percent-encoding and sub-delimiters, which no real
/// host uses and which would only let a visitor smuggle lists or separators through.
fn reg_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let ok = !name.is_empty()
        && name.len() <= MAX_HOST_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    ok.then(|| name.to_ascii_lowercase())
}

/// The inside of `[...]`: an IPv6 address, written back in its canonical form.
fn ipv6_literal(inside: &str) -> Option<String> {
    inside
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| IpAddr::V6(ip).to_string())
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Option<String> {
        Authority::parse(s).map(|a| a.normalised())
    }

    #[test]
    fn normalises_case_trailing_dot_and_ipv6() {
        assert_eq!(a("Demo.Example.COM"), Some("demo.example.com".into()));
        assert_eq!(
            a("demo.example.com.:8080"),
            Some("demo.example.com:8080".into())
        );
        assert_eq!(a(" demo "), Some("demo".into()));
        assert_eq!(a("[2001:DB8::1]:443"), Some("[2001:db8::1]:443".into()));
        assert_eq!(a("2001:db8::1"), Some("[2001:db8::1]".into()));
        assert_eq!(a("127.0.0.1:80"), Some("127.0.0.1:80".into()));
        let v6 = Authority::parse("[::1]:8080").unwrap();
        assert_eq!((v6.host(), v6.port()), ("::1", Some(8080)));
        let mixed = Authority::parse("Demo.Example.COM.:81").unwrap();
        assert_eq!(
            mixed.to_string(),
            "Demo.Example.COM.:81",
            "sent on as written"
        );
        assert_eq!(mixed.header_value(), "Demo.Example.COM.:81");
    }

    #[test]
    fn refuses_what_is_not_a_host() {
        for bad in [
            "",
            ":80",
            "a b",
            "a,b",
            "a/b",
            "user@host",
            "host:",
            "host:http",
            "host:123456",
            "host:99999",
            "[::1",
            "[::1]x",
            "[nothex]",
            "demo:1:2x",
            "a\tb",
            ".",
        ] {
            assert_eq!(a(bad), None, "{bad:?}");
        }
        assert_eq!(a(&"a".repeat(MAX_HOST_LEN + 1)), None);
    }

    fn headers(hosts: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for host in hosts {
            h.append(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        h
    }

    #[test]
    fn absolute_form_wins_and_duplicates_are_refused() {
        let abs: Uri = "http://a.example.com:81/x".parse().unwrap();
        let origin: Uri = "/x".parse().unwrap();
        let one = headers(&["b.example.com"]);
        let got = request_authority(Version::HTTP_11, &abs, &one).unwrap();
        assert_eq!(got.unwrap().to_string(), "a.example.com:81");
        let got = request_authority(Version::HTTP_11, &origin, &one).unwrap();
        assert_eq!(got.unwrap().to_string(), "b.example.com");
        let two = headers(&["a", "a"]);
        for uri in [&abs, &origin] {
            assert_eq!(
                request_authority(Version::HTTP_11, uri, &two),
                Err(HostError::Duplicate)
            );
        }
        let none = HeaderMap::new();
        assert_eq!(
            request_authority(Version::HTTP_11, &origin, &none),
            Err(HostError::Missing)
        );
        assert_eq!(
            request_authority(Version::HTTP_10, &origin, &none),
            Ok(None)
        );
        let userinfo: Uri = "http://u:p@a.example.com/".parse().unwrap();
        assert_eq!(
            request_authority(Version::HTTP_11, &userinfo, &one),
            Err(HostError::Invalid)
        );
        let bad = headers(&["a, b"]);
        assert_eq!(
            request_authority(Version::HTTP_11, &origin, &bad),
            Err(HostError::Invalid)
        );
    }
}
