//! Host-name routing: which route a public request's host selects, and what a route name may
//! look like (DESIGN.md section 5, "Routing").

use std::net::IpAddr;

use rand::Rng;

use super::authority::Authority;

/// The route name of the root domain (`--subdomain @`).
pub const ROOT_ROUTE: &str = "@";

/// Longest DNS label (RFC 1035 section 2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// The rule quoted in every [`RouteNameError`], so users see how to fix the name.
const RULE: &str = "a route name is `@` (the root domain) or a DNS label: 1-63 characters \
                    of a-z, 0-9 and '-', not starting or ending with '-'";

/// A route name that is neither `@` nor a DNS label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid route name {name:?}: {problem}; {rule}", rule = RULE)]
pub struct RouteNameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it, e.g. "it contains '_'".
    pub problem: String,
}

/// The route selected by a request host, or `None` when no route can match (a 404).
///
/// The host is lowercased, a port is removed (`[::1]:8080` is the IPv6 literal `::1`), and
/// one trailing dot is dropped (`demo.example.com.` is fully qualified, the same name).
/// - With `domain` D (normalised the same way): host `D` is [`ROOT_ROUTE`], `X.D` is `X` when
///   `X` is a single valid label; deeper names (`a.b.D`) and other hosts give `None`. D may be
///   an IP address, for servers without DNS, which then makes the bare IP the root route.
/// - Without a domain: the first label of the host (`demo.example.com` -> `demo`,
///   `localhost` -> `localhost`). IP literal hosts give `None`: `127.0.0.1` has no meaningful
///   first label, and routing it to a route called `127` would be a surprise.
///
/// Only names that [`validate_route_name`] accepts are returned, so a result can be looked up
/// directly in the route table.
pub fn route_for_host(host: &str, domain: Option<&str>) -> Option<String> {
    route_for(&Authority::parse(host)?, domain)
}

/// [`route_for_host`] for an already parsed (and so normalised) authority: the form the edge
/// routes every request with.
pub fn route_for(authority: &Authority, domain: Option<&str>) -> Option<String> {
    let host = authority.host();
    match domain {
        Some(domain) => {
            let domain = Authority::parse(domain)?;
            let domain = domain.host();
            if host == domain {
                return Some(ROOT_ROUTE.to_string());
            }
            let label = host.strip_suffix(domain)?.strip_suffix('.')?;
            is_label(label).then(|| label.to_string())
        }
        None => {
            if host.parse::<IpAddr>().is_ok() {
                return None;
            }
            let label = host.split('.').next()?;
            is_label(label).then(|| label.to_string())
        }
    }
}

/// Checks a requested route name (`--subdomain`), returning it lowercased (and trimmed).
/// `@` is accepted as the root route; anything else must be a DNS label: 1-63 characters of
/// a-z, 0-9 and '-', not starting or ending with '-'.
pub fn validate_route_name(name: &str) -> Result<String, RouteNameError> {
    let lower = name.trim().to_ascii_lowercase();
    if lower == ROOT_ROUTE {
        return Ok(lower);
    }
    let problem = if lower.is_empty() {
        "it is empty".to_string()
    } else if let Some(c) = lower.chars().find(|&c| !is_label_char(c)) {
        format!("it contains {c:?}")
    } else if lower.len() > MAX_LABEL_LEN {
        // Only ASCII is left at this point, so bytes are characters.
        format!("it is {} characters long", lower.len())
    } else if lower.starts_with('-') || lower.ends_with('-') {
        "it starts or ends with '-'".to_string()
    } else {
        return Ok(lower);
    };
    Err(RouteNameError {
        name: name.to_string(),
        problem,
    })
}

/// A fresh name for a client that did not ask for one: `up-` followed by 10 random
/// characters of a-z and 0-9 (about 51 bits, so collisions between live tunnels are
/// negligible and names are not practical to guess).
pub fn random_route_name() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut name = String::with_capacity(13);
    name.push_str("up-");
    for _ in 0..10 {
        name.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    name
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL_LEN
        && s.chars().all(is_label_char)
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(host: &str, domain: Option<&str>) -> Option<String> {
        route_for_host(host, domain)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    const D: Option<&str> = Some("proxy.example.com");

    #[test]
    fn domain_root_and_single_label() {
        assert_eq!(r("proxy.example.com", D), some("@"));
        assert_eq!(r("demo.proxy.example.com", D), some("demo"));
        assert_eq!(
            r("up-k7m3q9t2ab.proxy.example.com", D),
            some("up-k7m3q9t2ab")
        );
    }

    #[test]
    fn domain_ignores_port_case_and_trailing_dot() {
        assert_eq!(r("Demo.Proxy.Example.COM:8080", D), some("demo"));
        assert_eq!(r("demo.proxy.example.com.", D), some("demo"));
        assert_eq!(r("demo.proxy.example.com.:443", D), some("demo"));
        assert_eq!(r("PROXY.example.com.:80", D), some("@"));
        assert_eq!(
            r("demo.proxy.example.com", Some("Proxy.Example.com.")),
            some("demo")
        );
        assert_eq!(r(" demo.proxy.example.com ", D), some("demo"));
    }

    #[test]
    fn domain_rejects_deeper_and_other_hosts() {
        assert_eq!(r("a.b.proxy.example.com", D), None);
        assert_eq!(r("example.com", D), None);
        assert_eq!(r("xproxy.example.com", D), None);
        assert_eq!(r("demo.proxy.example.org", D), None);
        assert_eq!(r(".proxy.example.com", D), None);
        assert_eq!(r("a_b.proxy.example.com", D), None);
        assert_eq!(r("-a.proxy.example.com", D), None);
        assert_eq!(r("127.0.0.1:8080", D), None);
        assert_eq!(r("[::1]:8080", D), None);
    }

    #[test]
    fn bad_hosts_give_none() {
        for bad in [
            "",
            " ",
            ":8080",
            "demo.proxy.example.com:http",
            "demo:1:2x",
            "[::1",
            "[::1]x",
        ] {
            assert_eq!(r(bad, D), None, "{bad:?}");
            assert_eq!(r(bad, None), None, "{bad:?}");
        }
        assert_eq!(r("demo.proxy.example.com:123456", D), None);
    }

    #[test]
    fn ip_domain_makes_the_ip_the_root() {
        assert_eq!(r("203.0.113.5:8080", Some("203.0.113.5")), some("@"));
        assert_eq!(r("[2001:db8::1]:8080", Some("2001:db8::1")), some("@"));
        assert_eq!(r("[2001:DB8::1]", Some("[2001:db8::1]")), some("@"));
        assert_eq!(r("[2001:db8::2]", Some("2001:db8::1")), None);
    }

    #[test]
    fn no_domain_first_label() {
        assert_eq!(r("demo.example.com", None), some("demo"));
        assert_eq!(r("Demo.Example.com:8080", None), some("demo"));
        assert_eq!(r("demo.localhost.", None), some("demo"));
        assert_eq!(r("localhost:8080", None), some("localhost"));
        assert_eq!(r("a_b.example.com", None), None);
        assert_eq!(r(".example.com", None), None);
    }

    #[test]
    fn no_domain_ip_hosts_give_none() {
        assert_eq!(r("127.0.0.1", None), None);
        assert_eq!(r("127.0.0.1:8080", None), None);
        assert_eq!(r("[::1]:8080", None), None);
        assert_eq!(r("[::1]", None), None);
        assert_eq!(r("::1", None), None);
        assert_eq!(r("[fe80::1%25eth0]:80", None), None);
    }

    #[test]
    fn valid_route_names() {
        assert_eq!(validate_route_name("@").unwrap(), "@");
        assert_eq!(validate_route_name(" @ ").unwrap(), "@");
        assert_eq!(validate_route_name("demo").unwrap(), "demo");
        assert_eq!(validate_route_name("Demo-1").unwrap(), "demo-1");
        assert_eq!(validate_route_name("a").unwrap(), "a");
        assert_eq!(validate_route_name("0").unwrap(), "0");
        assert_eq!(
            validate_route_name("xn--bcher-kva").unwrap(),
            "xn--bcher-kva"
        );
        let max = "a".repeat(63);
        assert_eq!(validate_route_name(&max).unwrap(), max);
    }

    #[test]
    fn invalid_route_names() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("-a", "'-'"),
            ("a-", "'-'"),
            ("-", "'-'"),
            ("a_b", "'_'"),
            ("a.b", "'.'"),
            ("a b", "' '"),
            ("@@", "'@'"),
            ("dé", "'é'"),
            ("a*", "'*'"),
        ];
        for (name, problem) in cases {
            let err = validate_route_name(name).unwrap_err();
            assert_eq!(err.name, name);
            let msg = err.to_string();
            assert!(msg.contains(problem), "{name:?}: {msg}");
            assert!(msg.contains("1-63 characters"), "{msg}");
            assert!(msg.contains(&format!("{name:?}")), "{msg}");
        }
        let long = "a".repeat(64);
        let err = validate_route_name(&long).unwrap_err();
        assert!(err.to_string().contains("64 characters long"), "{err}");
    }

    #[test]
    fn route_for_host_results_always_validate() {
        for host in [
            "demo.proxy.example.com",
            "proxy.example.com",
            "X9-z.proxy.example.com",
        ] {
            let route = r(host, D).unwrap();
            assert_eq!(validate_route_name(&route).unwrap(), route);
        }
    }

    #[test]
    fn random_names_have_the_documented_shape() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let name = random_route_name();
            assert_eq!(name.len(), 13);
            assert!(name.starts_with("up-"));
            assert!(name[3..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
            assert_eq!(validate_route_name(&name).unwrap(), name);
            assert!(seen.insert(name));
        }
    }
}
