//! The request inspector's flags (`--inspect`, `--inspect-body-cap`, `--inspect-max-requests`)
//! and `inspect` key of `underpass start` files, shared by `http`, `start` and `demo`. On by
//! default at 127.0.0.1:4040, or the next free port when another client holds it.

use std::net::SocketAddr;

use clap::Args;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::inspect::{self, InspectConfig, InspectServer, Inspector};

/// Where the inspector listens when nothing says otherwise.
const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4040);

/// Flags of the request inspector.
#[derive(Debug, Clone, Default, Args)]
pub struct InspectArgs {
    /// Request inspector (web page and ngrok-compatible API): ADDR, PORT or off. Default
    /// 127.0.0.1:4040, or the next free port when that one is taken.
    #[arg(
        long = "inspect",
        env = "UNDERPASS_INSPECT",
        value_name = "ADDR|PORT|off"
    )]
    pub inspect: Option<String>,
    /// Bytes the inspector keeps of each request and response body (e.g. 64KiB; 0 = sizes
    /// only). Default 1MiB.
    #[arg(long, env = "UNDERPASS_INSPECT_BODY_CAP", value_name = "BYTES")]
    pub inspect_body_cap: Option<String>,
    /// Exchanges the inspector keeps, the oldest dropped first. Default 500.
    #[arg(long, env = "UNDERPASS_INSPECT_MAX_REQUESTS", value_name = "N")]
    pub inspect_max_requests: Option<usize>,
}

/// The `inspect` key of an `underpass start` file: `"off"`, an address, or a table with
/// `addr`, `body_cap` and `max_requests`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectFile {
    addr: Option<String>,
    body_cap: Option<String>,
    max_requests: Option<usize>,
}

/// Where the inspector goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Off,
    /// The default: this port or the next free one.
    FirstFree(SocketAddr),
    /// Given by the user: this address or an error.
    Exact(SocketAddr),
}

/// A started inspector: the capture and its listener (stopped when dropped).
#[derive(Debug)]
pub struct Running {
    /// The capture, to attach to http exposes.
    pub inspector: Inspector,
    server: InspectServer,
}

impl Running {
    /// The stdout line announcing it: `inspect: http://127.0.0.1:4040`.
    pub fn line(&self) -> String {
        format!("inspect: {}", self.server.url())
    }
}

impl InspectArgs {
    /// Starts the inspector as the flags (then `file`, then the defaults) say; `None` when off.
    /// A taken address given explicitly is an error; the default moves to a free port.
    pub async fn start(&self, file: Option<&InspectFile>) -> Result<Option<Running>, String> {
        let file = file.cloned().unwrap_or_default();
        let place = match self.inspect.as_deref().or(file.addr.as_deref()) {
            Some(text) => place(text)?,
            None => Place::FirstFree(DEFAULT_ADDR),
        };
        let body_cap = match self
            .inspect_body_cap
            .as_deref()
            .or(file.body_cap.as_deref())
        {
            Some(text) => usize::try_from(
                super::parse::byte_count(text).map_err(|e| format!("inspect body cap: {e}"))?,
            )
            .map_err(|_| format!("inspect body cap: '{text}' is too large"))?,
            None => InspectConfig::DEFAULT_BODY_CAP,
        };
        let max_exchanges = self
            .inspect_max_requests
            .or(file.max_requests)
            .unwrap_or(InspectConfig::DEFAULT_MAX_EXCHANGES);
        if max_exchanges == 0 {
            return Err(
                "inspect max requests must be at least 1 (turn the inspector off with --inspect off)"
                    .into(),
            );
        }
        let inspector = Inspector::new(InspectConfig {
            body_cap,
            max_exchanges,
        });
        let server = match place {
            Place::Off => return Ok(None),
            Place::FirstFree(addr) => inspect::serve_first_free(inspector.clone(), addr).await,
            Place::Exact(addr) => inspect::serve(inspector.clone(), addr).await,
        }
        .map_err(|e| format!("{e} (choose another with --inspect ADDR, or --inspect off)"))?;
        Ok(Some(Running { inspector, server }))
    }
}

/// `off`, `PORT` (on 127.0.0.1), `localhost:PORT`, `IP:PORT` or `[IPv6]:PORT`.
fn place(text: &str) -> Result<Place, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(Place::Off);
    }
    let bad = || format!("inspect: '{text}' is not an address (e.g. 127.0.0.1:4040, 4041 or off)");
    if let Ok(port) = t.parse::<u16>() {
        return Ok(Place::Exact(SocketAddr::new(DEFAULT_ADDR.ip(), port)));
    }
    if let Some(port) = t.strip_prefix("localhost:") {
        let port = port.parse::<u16>().map_err(|_| bad())?;
        return Ok(Place::Exact(SocketAddr::new(DEFAULT_ADDR.ip(), port)));
    }
    t.parse().map(Place::Exact).map_err(|_| bad())
}

/// Either `inspect = "off"` / `inspect = "127.0.0.1:4041"`, or an `[inspect]` table.
impl<'de> Deserialize<'de> for InspectFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InspectFile;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"off\", an address, or a table with addr, body_cap, max_requests")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<InspectFile, E> {
                Ok(InspectFile {
                    addr: Some(v.to_string()),
                    ..InspectFile::default()
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<InspectFile, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let body_cap = t.body_cap.map(|s| match s {
                    Size::Bytes(n) => n.to_string(),
                    Size::Text(s) => s,
                });
                Ok(InspectFile {
                    addr: t.addr,
                    body_cap,
                    max_requests: t.max_requests,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    addr: Option<String>,
    body_cap: Option<Size>,
    max_requests: Option<usize>,
}

/// `1048576` or `"1MiB"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_ports_and_off() {
        let local = |p| Place::Exact(SocketAddr::from(([127, 0, 0, 1], p)));
        assert_eq!(place("off"), Ok(Place::Off));
        assert_eq!(place("4041"), Ok(local(4041)));
        assert_eq!(place("localhost:4042"), Ok(local(4042)));
        assert_eq!(
            place("0.0.0.0:4040"),
            Ok(Place::Exact(SocketAddr::from(([0, 0, 0, 0], 4040))))
        );
        assert!(place("[::1]:4040").is_ok());
        assert!(place("example.com:4040")
            .unwrap_err()
            .contains("not an address"));
        assert!(place("on").is_err());
    }

    #[test]
    fn the_file_key_is_a_string_or_a_table() {
        #[derive(Deserialize)]
        struct F {
            inspect: InspectFile,
        }
        let f: F = toml::from_str("inspect = \"off\"").unwrap();
        assert_eq!(f.inspect.addr.as_deref(), Some("off"));
        let f: F =
            toml::from_str("[inspect]\naddr = \"4041\"\nbody_cap = \"64KiB\"\nmax_requests = 9")
                .unwrap();
        assert_eq!(f.inspect.body_cap.as_deref(), Some("64KiB"));
        assert_eq!(f.inspect.max_requests, Some(9));
        let f: F = toml::from_str("[inspect]\nbody_cap = 1024").unwrap();
        assert_eq!(f.inspect.body_cap.as_deref(), Some("1024"));
        assert!(toml::from_str::<F>("[inspect]\nbody_kap = 1").is_err());
    }
}
