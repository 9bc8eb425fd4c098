//! HTTP/1.1 as raw bytes on a TCP socket: for requests no well-behaved client library would
//! send (two Host headers, absolute-form targets, underscore header names), and to read exactly
//! what the edge answered.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::within;

/// A response as it came off the wire.
#[derive(Debug)]
pub struct RawReply {
    /// Status code of the status line.
    pub status: u16,
    /// Header lines (name lowercased, value trimmed), in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was chunked.
    pub body: String,
}

impl RawReply {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as the JSON the echo app answers.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// Opens a connection to `addr` from `from` (a loopback address such as 127.0.0.2, so a test can
/// be two visitors), or from the default address.
pub async fn connect_from(from: Option<IpAddr>, addr: SocketAddr) -> TcpStream {
    match from {
        None => TcpStream::connect(addr).await.unwrap(),
        Some(ip) => {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(ip, 0)).unwrap();
            socket.connect(addr).await.unwrap()
        }
    }
}

/// Sends `request` (whole head and body, as written) and reads the answer until the server
/// closes. The request should carry `Connection: close`.
pub async fn raw_http(addr: SocketAddr, request: &str) -> RawReply {
    raw_http_from(None, addr, request).await
}

/// [`raw_http`] from source address `from`.
pub async fn raw_http_from(from: Option<IpAddr>, addr: SocketAddr, request: &str) -> RawReply {
    let mut tcp = connect_from(from, addr).await;
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    within(10, tcp.read_to_end(&mut raw)).await.unwrap();
    parse_reply(&raw)
}

/// Parses one response (status line, headers, body) from `raw`.
pub fn parse_reply(raw: &[u8]) -> RawReply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    RawReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
