//! Removal of hop-by-hop headers (RFC 9110 section 7.6.1).
//!
//! Every hop of the tunnel (visitor -> server, mux, client -> local service) is its own HTTP
//! connection, so connection-scoped headers must not leak from one hop to the next: a stale
//! `Transfer-Encoding` or `Connection: close` would corrupt framing or kill pooled connections.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that are hop-by-hop whether or not `Connection` lists them. `Keep-Alive` and
/// `Proxy-Connection` are legacy but still sent by real clients.
const ALWAYS_HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes every hop-by-hop header: the fixed list (`Connection`, `Keep-Alive`,
/// `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`, `Trailer`,
/// `Transfer-Encoding`, `Upgrade`) plus every header named in any `Connection` value.
///
/// `Host` is never removed even when `Connection` names it: routing and the promise that the
/// public Host reaches the app unchanged both depend on it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, false);
}

/// Like [`strip_hop_by_hop`], but keeps a WebSocket-style upgrade intact: when the headers
/// carry an `Upgrade` header and a `Connection` value listing `upgrade`, the result holds
/// exactly `Connection: upgrade` and the original `Upgrade` values. Use it for an upgrade
/// request and its `101 Switching Protocols` response; everything else hop-by-hop still goes.
pub fn strip_hop_by_hop_keep_upgrade(headers: &mut HeaderMap) {
    strip(headers, true);
}

/// Whether the headers ask for a protocol upgrade: an `Upgrade` header together with the
/// `upgrade` token in `Connection`. Both are needed, as an `Upgrade` header alone is only an
/// advertisement (RFC 9110 section 7.8).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn strip(headers: &mut HeaderMap, keep_upgrade: bool) {
    let restore_upgrade = keep_upgrade && wants_upgrade(headers);
    let upgrade_values: Vec<HeaderValue> = if restore_upgrade {
        headers.get_all(header::UPGRADE).iter().cloned().collect()
    } else {
        Vec::new()
    };

    // Only the names present are removed (a removal hashes; most heads hold one or none),
    // collected first because removal needs `&mut` while the names borrow the map.
    let hop = HopByHop::of(headers);
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|n| hop.contains(n))
        .cloned()
        .collect();
    for name in present {
        headers.remove(name);
    }

    if restore_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        for value in upgrade_values {
            headers.append(header::UPGRADE, value);
        }
    }
}

/// The names [`strip_hop_by_hop`] removes from one head, to ask of a name without changing
/// the head (copying a head without its hop-by-hop headers).
pub struct HopByHop {
    /// Names listed by `Connection` (never `Host`).
    listed: Vec<HeaderName>,
}

impl HopByHop {
    /// The hop-by-hop names of `headers`.
    pub fn of(headers: &HeaderMap) -> Self {
        let listed = connection_tokens(headers)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|name| name != header::HOST)
            .collect();
        Self { listed }
    }

    /// Whether `name` is hop-by-hop in that head.
    pub fn contains(&self, name: &HeaderName) -> bool {
        ALWAYS_HOP_BY_HOP.contains(name) || self.listed.contains(name)
    }
}

/// The comma-separated tokens of every `Connection` header, trimmed and non-empty. Values
/// that are not visible ASCII are skipped: they cannot name a header anyway.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn removes_fixed_list_and_keeps_end_to_end() {
        let mut h = map(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic abc"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("host", "demo.example.com"),
            ("content-type", "text/plain"),
            ("authorization", "Bearer t"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["authorization", "content-type", "host"]);
    }

    #[test]
    fn removes_headers_named_in_connection_case_insensitive_and_multi_valued() {
        let mut h = map(&[
            ("connection", "X-Foo ,  x-bar,,"),
            ("connection", "X-BAZ"),
            ("x-foo", "1"),
            ("x-bar", "2"),
            ("x-baz", "3"),
            ("x-keep", "4"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["x-keep"]);
    }

    #[test]
    fn invalid_connection_tokens_are_ignored_without_panic() {
        let mut h = map(&[
            ("connection", "bad name, (x), x-ok"),
            ("x-ok", "1"),
            ("x-other", "2"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(names(&h), ["x-other"]);
    }

    #[test]
    fn host_survives_even_when_listed() {
        let mut h = map(&[("connection", "host, close"), ("host", "a.example.com")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get("host").unwrap(), "a.example.com");
        assert!(!h.contains_key("connection"));
    }

    #[test]
    fn plain_strip_drops_upgrade_pair() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn keep_upgrade_keeps_exactly_the_pair() {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade, x-secret"),
            ("upgrade", "websocket"),
            ("x-secret", "s"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ]);
        strip_hop_by_hop_keep_upgrade(&mut h);
        assert_eq!(
            names(&h),
            [
                "connection",
                "sec-websocket-key",
                "sec-websocket-version",
                "upgrade"
            ]
        );
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
    }

    #[test]
    fn keep_upgrade_without_connection_token_strips_upgrade() {
        // An Upgrade header alone is an advertisement, not a request to switch.
        let mut h = map(&[("connection", "keep-alive"), ("upgrade", "h2c")]);
        strip_hop_by_hop_keep_upgrade(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn keep_upgrade_without_upgrade_header_strips_connection() {
        let mut h = map(&[("connection", "upgrade")]);
        strip_hop_by_hop_keep_upgrade(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn wants_upgrade_detection() {
        assert!(wants_upgrade(&map(&[
            ("connection", "keep-alive, UPGRADE"),
            ("upgrade", "websocket")
        ])));
        assert!(!wants_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!wants_upgrade(&map(&[("connection", "upgrade")])));
        assert!(!wants_upgrade(&map(&[
            ("connection", "upgrades"),
            ("upgrade", "websocket")
        ])));
        assert!(!wants_upgrade(&HeaderMap::new()));
    }

    #[test]
    fn empty_map_is_fine() {
        let mut h = HeaderMap::new();
        strip_hop_by_hop(&mut h);
        strip_hop_by_hop_keep_upgrade(&mut h);
        assert!(h.is_empty());
    }
}
