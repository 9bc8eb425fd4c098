//! The inspector shows secrets (cookies, Authorization headers, webhook signatures) and can send
//! requests to the app, so it answers only its own pages:
//!
//! - the `Host` must name this listener (`localhost:PORT` or an IP address with PORT): a web
//!   page that rebinds its DNS name to 127.0.0.1 (DNS rebinding) still sends its own name;
//! - a request with an `Origin` must come from this listener's origin, so no other site's page
//!   can read, replay or clear (CSRF); a state-changing request a browser marks as cross-site
//!   (`Sec-Fetch-Site`) is refused too. Scripts (curl, ngrok clients) send no `Origin`.

use std::net::{IpAddr, Ipv6Addr};

use http::{header, HeaderMap, Method};

/// Why a request is refused (the text the caller gets with a 403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    Host(String),
    Origin(String),
    CrossSite,
}

impl Refusal {
    pub(super) fn message(&self, port: u16) -> String {
        match self {
            Refusal::Host(host) => format!(
                "underpass inspector: Host {host:?} is not this inspector; open http://127.0.0.1:{port}/"
            ),
            Refusal::Origin(origin) => format!(
                "underpass inspector: requests from the page at {origin:?} are refused (only the inspector's own page may use it)"
            ),
            Refusal::CrossSite => {
                "underpass inspector: cross-site requests that change state are refused".into()
            }
        }
    }
}

/// Checks one request against the listener's `port`.
pub(super) fn check(method: &Method, headers: &HeaderMap, port: u16) -> Result<(), Refusal> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_allowed(host, port) {
        return Err(Refusal::Host(host.to_string()));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        if !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return Err(Refusal::Origin(origin));
        }
    }
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if changes_state && site.is_some_and(|s| s != "same-origin" && s != "none") {
        return Err(Refusal::CrossSite);
    }
    Ok(())
}

/// `localhost` or an IP literal, with this port (80 when absent). An IP literal cannot be a
/// rebound DNS name; any other name could be.
fn host_allowed(host: &str, port: u16) -> bool {
    let (name, given_port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, tail)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<Ipv6Addr>().is_err() {
            return false;
        }
        (None, tail.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((name, p)) => (Some(name), Some(p)),
            None => (Some(host), None),
        }
    };
    let port_ok = match given_port {
        Some(p) => p.parse::<u16>() == Ok(port),
        None => port == 80,
    };
    let name_ok = match name {
        None => true,
        Some(n) => n.eq_ignore_ascii_case("localhost") || n.parse::<IpAddr>().is_ok(),
    };
    port_ok && name_ok && !host.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_this_listener_s_hosts() {
        for ok in [
            "127.0.0.1:4040",
            "localhost:4040",
            "LOCALHOST:4040",
            "[::1]:4040",
            "10.1.2.3:4040",
        ] {
            assert!(host_allowed(ok, 4040), "{ok}");
        }
        for bad in [
            "evil.example:4040",
            "127.0.0.1:4041",
            "127.0.0.1",
            "localhost.evil.example:4040",
            "[::1]",
            "[nope]:4040",
            "",
            "127.0.0.1:4040:4040",
        ] {
            assert!(!host_allowed(bad, 4040), "{bad}");
        }
        assert!(host_allowed("localhost", 80));
    }

    #[test]
    fn foreign_origins_and_cross_site_writes_are_refused() {
        let own = headers(&[
            ("host", "127.0.0.1:4040"),
            ("origin", "http://127.0.0.1:4040"),
        ]);
        assert_eq!(check(&Method::POST, &own, 4040), Ok(()));
        let curl = headers(&[("host", "localhost:4040")]);
        assert_eq!(check(&Method::DELETE, &curl, 4040), Ok(()));
        let evil = headers(&[
            ("host", "127.0.0.1:4040"),
            ("origin", "http://evil.example"),
        ]);
        assert!(matches!(
            check(&Method::POST, &evil, 4040),
            Err(Refusal::Origin(_))
        ));
        let null = headers(&[("host", "127.0.0.1:4040"), ("origin", "null")]);
        assert!(matches!(
            check(&Method::GET, &null, 4040),
            Err(Refusal::Origin(_))
        ));
        let cross = headers(&[("host", "127.0.0.1:4040"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(check(&Method::POST, &cross, 4040), Err(Refusal::CrossSite));
        assert_eq!(check(&Method::GET, &cross, 4040), Ok(()));
        let rebound = headers(&[("host", "attacker.example:4040")]);
        assert!(matches!(
            check(&Method::GET, &rebound, 4040),
            Err(Refusal::Host(_))
        ));
    }
}
