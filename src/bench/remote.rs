//! Measuring against a server that runs elsewhere (`underpass bench --server URL`): the client,
//! the sink, the HTTP app and the load generator stay in this process, the server is the given
//! one, so the figures include the real network between the two, crossed twice (load generator
//! to server, then server to client through the tunnel).

use std::net::SocketAddr;

use crate::client::ClientOptions;

/// A server elsewhere to measure against, instead of one started in this process.
#[derive(Debug, Clone)]
pub struct RemoteServer {
    /// Where the server's dedicated public ports are reached: its host name or address.
    pub host: String,
    /// The server URL as given, for the report (never the token).
    pub url: String,
    /// What to measure: a name for the report and how to connect for it.
    pub paths: Vec<(String, ClientOptions)>,
}

/// Resolves `host:port` to the first address (a server's public port).
pub async fn public_addr(host: &str, port: u16) -> Result<SocketAddr, String> {
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

/// The host of a server URL (`wss://proxy.example.com:8443/x` -> `proxy.example.com`, IPv6
/// brackets removed), or `None` when the URL has none.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h)?,
        None => authority.split(':').next().unwrap_or(""),
    };
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_server_urls() {
        for (url, host) in [
            ("wss://proxy.example.com", Some("proxy.example.com")),
            ("ws://127.0.0.1:8080/", Some("127.0.0.1")),
            ("https://user@host.test:8443/path?q", Some("host.test")),
            ("quic://[::1]:4433", Some("::1")),
            ("ws://", None),
        ] {
            assert_eq!(url_host(url).as_deref(), host, "{url}");
        }
    }
}
