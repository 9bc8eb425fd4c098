//! Egress proxies: WebSocket carriers tunnelled through an HTTP proxy with `CONNECT`, chosen
//! explicitly or from `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` as curl does.

use std::fmt;
use std::io;
use std::net::IpAddr;

use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderValue, HOST, PROXY_AUTHORIZATION, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Which HTTP proxy, if any, WebSocket carriers go through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EgressProxy {
    /// Straight to the server.
    #[default]
    Direct,
    /// `HTTPS_PROXY` for `wss://` and `HTTP_PROXY` for `ws://` (lowercase names too, the
    /// lowercase one first, as curl reads them), unless `NO_PROXY` names the server's host.
    /// Read at each dial.
    FromEnv,
    /// Always this proxy, whatever the environment says.
    Http(HttpProxy),
}

/// An HTTP proxy: `http://[user:pass@]host[:port]` (port 80 when absent). Its `Debug` and
/// `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpProxy {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

/// The proxy answered `CONNECT` with something other than 2xx. Carried inside the `io::Error`
/// of a dial: 407 (credentials missing or wrong) and other 4xx are settings to fix, 5xx (the
/// proxy could not reach the server) may pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRefused {
    /// `host:port` of the proxy.
    pub proxy: String,
    /// Whether the request carried credentials.
    pub with_credentials: bool,
    /// HTTP status of the answer.
    pub status: u16,
    /// Where the tunnel was to lead, `host:port`.
    pub target: String,
}

impl fmt::Display for ProxyRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(
            f,
            "the proxy {} answered CONNECT {} with HTTP {} {reason}",
            self.proxy, self.target, self.status
        )
    }
}

impl std::error::Error for ProxyRefused {}

impl fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for HttpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.credentials {
            Some((user, _)) => write!(f, "http://{user}:***@{}", self.authority()),
            None => write!(f, "http://{}", self.authority()),
        }
    }
}

impl HttpProxy {
    /// Parses `http://[user:pass@]host[:port]`; a bare `host:port` means `http://`. The user
    /// and password may be percent-encoded. The error never repeats the password.
    pub fn parse(url: &str) -> Result<HttpProxy, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "proxy scheme '{scheme}' is not supported: give an http:// proxy (it tunnels \
                     wss with CONNECT)"
                ))
            }
            None => url,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let shown = format!("http://{hostport}");
        let uri: Uri = format!("http://{hostport}/")
            .parse()
            .map_err(|_| format!("bad proxy URL {shown}: expected http://[USER:PASS@]HOST:PORT"))?;
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty() && uri.path() == "/")
            .ok_or_else(|| {
                format!("bad proxy URL {shown}: expected http://[USER:PASS@]HOST:PORT")
            })?;
        // `Authority::port` hides a port that does not fit in u16; read it from the text.
        let port_text = authority
            .as_str()
            .rsplit_once(':')
            .filter(|(h, _)| !h.starts_with('[') || h.ends_with(']'))
            .map(|(_, p)| p);
        let port = match port_text {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("bad proxy URL {shown}: the port is not 1-65535"))?,
        };
        let credentials = userinfo
            .map(|u| {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                Ok::<_, String>((percent_decode(user)?, percent_decode(pass)?))
            })
            .transpose()
            .map_err(|e| format!("proxy URL {shown}: {e} in the credentials"))?;
        Ok(HttpProxy {
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            credentials,
        })
    }

    /// `host:port` of the proxy (IPv6 in brackets).
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad %-escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "text that is not UTF-8".to_string())
}

impl EgressProxy {
    /// The proxy for a carrier to `host` (`tls`: a `wss://` URL), if any. A malformed proxy
    /// variable is an [`io::ErrorKind::InvalidInput`] error naming the variable.
    pub fn for_target(&self, tls: bool, host: &str) -> io::Result<Option<HttpProxy>> {
        match self {
            EgressProxy::Direct => Ok(None),
            EgressProxy::Http(proxy) => Ok(Some(proxy.clone())),
            EgressProxy::FromEnv => {
                let names: &[&str] = if tls {
                    &["https_proxy", "HTTPS_PROXY"]
                } else {
                    // curl ignores uppercase HTTP_PROXY (CGI sets it from a request header);
                    // a client is no CGI script, so both are read.
                    &["http_proxy", "HTTP_PROXY"]
                };
                let Some((name, value)) = names.iter().find_map(|n| env_value(n).map(|v| (*n, v)))
                else {
                    return Ok(None);
                };
                let no_proxy = env_value("no_proxy").or_else(|| env_value("NO_PROXY"));
                if no_proxy.is_some_and(|list| no_proxy_matches(&list, host)) {
                    return Ok(None);
                }
                HttpProxy::parse(&value).map(Some).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {e}"))
                })
            }
        }
    }
}

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether `NO_PROXY` (comma list of `*`, host names, `.domain` suffixes, IP addresses and
/// CIDR ranges; ports ignored) names `host`.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let (Some(ip), Some((net, bits))) = (ip, entry.split_once('/')) {
                return in_cidr(ip, net, bits);
            }
            let entry = strip_port(&entry);
            if let (Some(ip), Ok(e)) = (ip, entry.parse::<IpAddr>()) {
                return ip == e;
            }
            let domain = entry.trim_start_matches("*.").trim_start_matches('.');
            host == domain || host.ends_with(&format!(".{domain}"))
        })
}

fn strip_port(entry: &str) -> &str {
    if let Some(v6) = entry.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h,
        _ => entry,
    }
}

fn in_cidr(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A TCP connection to `host:port` tunnelled through `proxy` with `CONNECT`, and the proxy's
/// address.
pub(super) async fn connect_via(
    proxy: &HttpProxy,
    host: &str,
    port: u16,
) -> io::Result<(TokioIo<Upgraded>, Option<std::net::SocketAddr>)> {
    let tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot reach the proxy {proxy}: {e}")))?;
    tcp.set_nodelay(true)?;
    let peer = tcp.peer_addr().ok();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| io::Error::other(format!("proxy {proxy}: {e}")))?;
    // Drives the proxy connection until the tunnel is handed over.
    tokio::spawn(conn.with_upgrades());
    let target = authority(host, port);
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(target.as_str())
        .header(HOST, target.as_str())
        .header(USER_AGENT, concat!("underpass/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CONNECT {target}: {e}"),
            )
        })?;
    if let Some((user, pass)) = &proxy.credentials {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "proxy credentials cannot go in a header",
            )
        })?;
        value.set_sensitive(true);
        request.headers_mut().insert(PROXY_AUTHORIZATION, value);
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| io::Error::other(format!("proxy {proxy}: CONNECT {target}: {e}")))?;
    if !response.status().is_success() {
        let refused = ProxyRefused {
            proxy: proxy.authority(),
            with_credentials: proxy.credentials.is_some(),
            status: response.status().as_u16(),
            target,
        };
        let kind = match refused.status {
            407 => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::ConnectionRefused,
        };
        return Err(io::Error::new(kind, refused));
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| io::Error::other(format!("proxy {proxy}: CONNECT {target}: {e}")))?;
    Ok((TokioIo::new(upgraded), peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        let p = HttpProxy::parse("http://proxy.corp:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, &p.credentials),
            ("proxy.corp", 3128, &None)
        );
        let p = HttpProxy::parse("http://al%40ice:p%3Ass@[::1]:8080/").unwrap();
        assert_eq!(p.host, "::1");
        assert_eq!(p.credentials, Some(("al@ice".into(), "p:ss".into())));
        assert_eq!(p.to_string(), "http://al@ice:***@[::1]:8080");
        assert!(!format!("{p:?}").contains("p:ss"));
        assert_eq!(HttpProxy::parse("10.0.0.1:3128").unwrap().port, 3128);
        assert_eq!(HttpProxy::parse("http://h").unwrap().port, 80);
        for bad in [
            "socks5://h:1080",
            "https://h:443",
            "http://",
            "http://h:99999",
            "http://h/x",
        ] {
            assert!(HttpProxy::parse(bad).is_err(), "{bad}");
        }
        let err = HttpProxy::parse("http://u:secret%zz@h:1").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn no_proxy_lists() {
        let list = "localhost, .corp.example,10.0.0.0/8, 192.168.1.5:8080,[::1]";
        for host in [
            "localhost",
            "a.corp.example",
            "corp.example",
            "10.2.3.4",
            "192.168.1.5",
            "::1",
        ] {
            assert!(no_proxy_matches(list, host), "{host}");
        }
        for host in [
            "example.com",
            "xcorp.example",
            "11.0.0.1",
            "192.168.1.6",
            "::2",
        ] {
            assert!(!no_proxy_matches(list, host), "{host}");
        }
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("example.com", "www.example.com"));
        assert!(no_proxy_matches("*.example.com", "www.example.com"));
    }

    #[test]
    fn refusals_name_the_proxy_and_the_status() {
        let r = ProxyRefused {
            proxy: "p:3128".into(),
            with_credentials: false,
            status: 407,
            target: "h:443".into(),
        };
        let text = r.to_string();
        assert_eq!(
            text,
            "the proxy p:3128 answered CONNECT h:443 with HTTP 407 Proxy Authentication Required"
        );
    }
}
