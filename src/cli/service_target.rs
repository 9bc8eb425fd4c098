//! Where a binding's connections lead on the client's side: a port on this machine's loopback
//! (`3000`), or a service elsewhere on the client's network (`192.168.1.5:80`, `nas.lan:8080`,
//! `[fd00::5]:80`), as `ngrok http 192.168.1.5:80` or frp's `localIP` allow.

use std::net::SocketAddr;

/// Checks a `PORT` or `HOST:PORT` argument and returns it as `HOST:PORT` (a bare port means
/// `127.0.0.1`). Names are resolved later, by [`resolve`].
pub fn service_target(s: &str) -> Result<String, String> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return match port {
            0 => Err("port 0 is not a service (1-65535)".into()),
            p => Ok(format!("127.0.0.1:{p}")),
        };
    }
    let bad = || format!("'{s}' is not a port or HOST:PORT (e.g. 3000 or 192.168.1.5:80)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if port == 0 || bare.is_empty() || (host.starts_with('[') != host.ends_with(']')) {
        return Err(bad());
    }
    Ok(s.to_string())
}

/// Resolves a `HOST:PORT` from [`service_target`] to its first address.
pub async fn resolve(target: &str) -> Result<SocketAddr, String> {
    tokio::net::lookup_host(target)
        .await
        .map_err(|e| format!("cannot resolve '{target}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{target}' has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_host_ports() {
        assert_eq!(service_target("3000").unwrap(), "127.0.0.1:3000");
        assert_eq!(
            service_target(" 192.168.1.5:80 ").unwrap(),
            "192.168.1.5:80"
        );
        assert_eq!(service_target("nas.lan:8080").unwrap(), "nas.lan:8080");
        assert_eq!(service_target("[fd00::5]:80").unwrap(), "[fd00::5]:80");
        for bad in [
            "0",
            "70000",
            "nas.lan",
            ":80",
            "host:0",
            "host:x",
            "[fd00::5:80",
        ] {
            assert!(service_target(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn addresses_resolve_without_dns() {
        assert_eq!(
            resolve("127.0.0.2:80").await.unwrap(),
            SocketAddr::from(([127, 0, 0, 2], 80))
        );
        assert_eq!(
            resolve("[::1]:80").await.unwrap(),
            "[::1]:80".parse::<SocketAddr>().unwrap()
        );
    }
}
