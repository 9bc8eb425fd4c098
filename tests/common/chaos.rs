//! A chaos relay for tests: a loopback TCP proxy between a client and the server in which every
//! accepted connection is one carrier. It reads the first WebSocket message the client sends
//! (HELLO is carrier 0, JOIN names its index and ticket), so a test can pick a carrier by index
//! and, per connection:
//! - cut it: RST (SO_LINGER 0, as a crashed middlebox or a conntrack flush) or FIN (a proxy's
//!   read timeout closing it politely);
//! - blackhole it: stop forwarding both ways without closing anything, so only a PING that gets
//!   no PONG can find out (a NAT entry that expired, a dead path);
//! - slow it: forward small chunks with a pause after each.
//!
//! No external tool: plain tokio sockets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::within;

/// How a cut closes the connection on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Reset: both ends get ECONNRESET.
    Rst,
    /// Orderly close: both ends read EOF.
    Fin,
}

/// What a relayed connection does with its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward as they come.
    Pass,
    /// Forward nothing, close nothing.
    Blackhole,
    /// Forward at most 4 KiB, then wait this long, and so on.
    Slow(Duration),
    /// Closed.
    Cut(Cut),
}

/// What the client said first on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// HELLO: carrier 0 of a new session, or of a resumed one.
    Hello {
        /// `resume.sessionId`, when resuming.
        resume: Option<String>,
    },
    /// JOIN: an extra carrier.
    Join {
        /// Session joined.
        session_id: String,
        /// Carrier index.
        index: u32,
        /// The ticket's nonce (a test secret only).
        nonce: String,
    },
    /// Something else (not a carrier, or not readable).
    Other,
}

impl Opening {
    /// Carrier index: 0 for HELLO, the JOIN's index.
    pub fn index(&self) -> Option<u32> {
        match self {
            Opening::Hello { .. } => Some(0),
            Opening::Join { index, .. } => Some(*index),
            Opening::Other => None,
        }
    }
}

/// One relayed connection.
pub struct ChaosConn {
    /// Accept order, from 0.
    pub seq: usize,
    opening: Arc<Mutex<Option<Opening>>>,
    mode: watch::Sender<Mode>,
    /// Pump directions still running (0: both ended, the sockets are closed).
    running: Arc<AtomicUsize>,
    /// The relay's two sockets: (local, peer) towards the client and towards the server.
    sockets: [(SocketAddr, SocketAddr); 2],
}

impl ChaosConn {
    /// What the client said first, once read.
    pub fn opening(&self) -> Option<Opening> {
        self.opening.lock().unwrap().clone()
    }

    /// Carrier index, once known.
    pub fn index(&self) -> Option<u32> {
        self.opening().and_then(|o| o.index())
    }

    /// True while the relay still holds the connection.
    pub fn is_open(&self) -> bool {
        self.running.load(Ordering::SeqCst) > 0
    }

    /// Current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Changes what the connection does from now on.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// True once both ends let go of the connection: the client's and the server's socket of
    /// it are closed (no process holds them any more), although the relay still does. Read
    /// from /proc/net/tcp (Linux), so it works on a blackholed connection the relay does not
    /// read: a socket the process closed is gone from the table or kept by the kernel alone
    /// (inode 0) while it finishes closing.
    pub fn peers_closed(&self) -> bool {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        self.sockets
            .iter()
            .all(|(relay, peer)| socket_inode(&table, *peer, *relay).is_none_or(|inode| inode == 0))
    }
}

/// The inode of the IPv4 socket `local` -> `remote` in a /proc/net/tcp table (0 once no process
/// holds it), if listed.
fn socket_inode(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    // Addresses are the IPv4 address as a little-endian hex u32 and the port in hex.
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => String::new(),
    };
    let (l, r) = (hex(local), hex(remote));
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == l && f[2] == r)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// The relay. Dropping it closes every connection it holds.
pub struct Chaos {
    /// Where clients connect.
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<Arc<ChaosConn>>>>,
    accept: AbortHandle,
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.conns.lock().unwrap().iter() {
            c.set(Mode::Cut(Cut::Rst));
        }
    }
}

impl Chaos {
    /// A relay to `upstream` (the server's listener) on 127.0.0.1:0.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Arc<ChaosConn>>>> = Arc::default();
        let list = conns.clone();
        let accept = tokio::spawn(async move {
            let mut seq = 0;
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let conn = relay(seq, down, up);
                seq += 1;
                list.lock().unwrap().push(conn);
            }
        });
        Self {
            addr,
            conns,
            accept: accept.abort_handle(),
        }
    }

    /// The URL clients dial (`ws://ADDR`).
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Every connection so far, in accept order.
    pub fn connections(&self) -> Vec<Arc<ChaosConn>> {
        self.conns.lock().unwrap().clone()
    }

    /// The newest open connection that is carrier `index`.
    pub fn carrier(&self, index: u32) -> Option<Arc<ChaosConn>> {
        self.connections()
            .into_iter()
            .rev()
            .find(|c| c.is_open() && c.index() == Some(index))
    }

    /// How many connections opened as carrier `index` so far.
    pub fn seen(&self, index: u32) -> usize {
        self.connections()
            .iter()
            .filter(|c| c.index() == Some(index))
            .count()
    }

    /// Indices of the open connections that pass traffic, sorted.
    pub fn passing(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .connections()
            .iter()
            .filter(|c| c.is_open() && matches!(c.mode(), Mode::Pass | Mode::Slow(_)))
            .filter_map(|c| c.index())
            .collect();
        v.sort_unstable();
        v
    }

    /// Every JOIN relayed: (session id, index, nonce).
    pub fn joins(&self) -> Vec<(String, u32, String)> {
        self.connections()
            .iter()
            .filter_map(|c| match c.opening() {
                Some(Opening::Join {
                    session_id,
                    index,
                    nonce,
                }) => Some((session_id, index, nonce)),
                _ => None,
            })
            .collect()
    }

    /// Waits (up to 30 s) until at least `n` connections opened as carrier `index`; returns the
    /// newest.
    pub async fn wait_seen(&self, index: u32, n: usize) -> Arc<ChaosConn> {
        within(30, async {
            loop {
                if self.seen(index) >= n {
                    if let Some(c) = self
                        .connections()
                        .into_iter()
                        .rev()
                        .find(|c| c.index() == Some(index))
                    {
                        return c;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Sets `mode` on the newest open carrier `index`; panics when there is none.
    pub fn set(&self, index: u32, mode: Mode) -> Arc<ChaosConn> {
        let conn = self
            .carrier(index)
            .unwrap_or_else(|| panic!("no open carrier {index} in the relay"));
        conn.set(mode);
        conn
    }

    /// Cuts carrier `index`.
    pub fn cut(&self, index: u32, how: Cut) -> Arc<ChaosConn> {
        self.set(index, Mode::Cut(how))
    }

    /// Blackholes carrier `index`.
    pub fn blackhole(&self, index: u32) -> Arc<ChaosConn> {
        self.set(index, Mode::Blackhole)
    }

    /// Slows carrier `index` down.
    pub fn slow(&self, index: u32, pause: Duration) -> Arc<ChaosConn> {
        self.set(index, Mode::Slow(pause))
    }
}

fn relay(seq: usize, down: TcpStream, up: TcpStream) -> Arc<ChaosConn> {
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (mode, _) = watch::channel(Mode::Pass);
    let ends = |s: &TcpStream| {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        (
            s.local_addr().unwrap_or(unspecified),
            s.peer_addr().unwrap_or(unspecified),
        )
    };
    let conn = Arc::new(ChaosConn {
        seq,
        opening: Arc::default(),
        mode,
        running: Arc::new(AtomicUsize::new(2)),
        sockets: [ends(&down), ends(&up)],
    });
    let (down_r, down_w) = down.into_split();
    let (up_r, up_w) = up.into_split();
    let sniff = Sniffer {
        seen: Vec::new(),
        opening: conn.opening.clone(),
    };
    tokio::spawn(pump(
        down_r,
        up_w,
        conn.mode.subscribe(),
        Some(sniff),
        conn.running.clone(),
    ));
    tokio::spawn(pump(
        up_r,
        down_w,
        conn.mode.subscribe(),
        None,
        conn.running.clone(),
    ));
    conn
}

/// Ends a direction the way the cut asks. Each direction sets SO_LINGER 0 on both sockets for a
/// reset; the sockets close when both directions dropped their halves.
async fn finish(how: Cut, from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    match how {
        Cut::Rst => {
            let _ = socket2::SockRef::from(from.as_ref()).set_linger(Some(Duration::ZERO));
            let _ = socket2::SockRef::from(to.as_ref()).set_linger(Some(Duration::ZERO));
        }
        Cut::Fin => {
            let _ = to.shutdown().await;
        }
    }
}

/// One direction. Stops forwarding at once when the mode changes, even mid-write.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    mut sniff: Option<Sniffer>,
    running: Arc<AtomicUsize>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    'outer: loop {
        let current = *mode.borrow_and_update();
        let limit = match current {
            Mode::Cut(how) => {
                finish(how, from, to).await;
                break;
            }
            Mode::Blackhole => {
                if mode.changed().await.is_err() {
                    break;
                }
                continue;
            }
            Mode::Slow(_) => 4096,
            Mode::Pass => buf.len(),
        };
        let n = tokio::select! {
            r = from.read(&mut buf[..limit]) => match r {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    break;
                }
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        if let Some(s) = sniff.as_mut() {
            if s.feed(&buf[..n]) {
                sniff = None;
            }
        }
        if let Mode::Slow(pause) = current {
            tokio::time::sleep(pause).await;
        }
        let mut pos = 0;
        while pos < n {
            let now = *mode.borrow_and_update();
            match now {
                Mode::Cut(how) => {
                    finish(how, from, to).await;
                    break 'outer;
                }
                Mode::Blackhole => {
                    if mode.changed().await.is_err() {
                        break 'outer;
                    }
                    continue;
                }
                _ => {}
            }
            tokio::select! {
                w = to.write(&buf[pos..n]) => match w {
                    Ok(0) | Err(_) => break 'outer,
                    Ok(k) => pos += k,
                },
                changed = mode.changed() => {
                    if changed.is_err() {
                        break 'outer;
                    }
                }
            }
        }
    }
    running.fetch_sub(1, Ordering::SeqCst);
}

/// Reads the client's first WebSocket message out of the bytes it sends: the HTTP upgrade
/// request, then one masked binary frame holding HELLO or JOIN.
struct Sniffer {
    seen: Vec<u8>,
    opening: Arc<Mutex<Option<Opening>>>,
}

impl Sniffer {
    /// Adds bytes; true once done (identified, or given up).
    fn feed(&mut self, bytes: &[u8]) -> bool {
        self.seen.extend_from_slice(bytes);
        let found = match first_ws_payload(&self.seen) {
            Some(payload) => Some(opening_of(&payload)),
            None if self.seen.len() > 256 * 1024 => Some(Opening::Other),
            None => None,
        };
        match found {
            Some(o) => {
                *self.opening.lock().unwrap() = Some(o);
                true
            }
            None => false,
        }
    }
}

/// The unmasked payload of the first WebSocket frame after the HTTP head, once complete.
fn first_ws_payload(seen: &[u8]) -> Option<Vec<u8>> {
    let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let f = &seen[head_end..];
    if f.len() < 2 {
        return None;
    }
    let masked = f[1] & 0x80 != 0;
    let (len, mut pos) = match f[1] & 0x7f {
        126 => (u16::from_be_bytes([*f.get(2)?, *f.get(3)?]) as usize, 4),
        127 => {
            let b: [u8; 8] = f.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let mask: [u8; 4] = if masked {
        let m = f.get(pos..pos + 4)?.try_into().ok()?;
        pos += 4;
        m
    } else {
        [0; 4]
    };
    let payload = f.get(pos..pos + len)?;
    Some(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect(),
    )
}

/// HELLO or JOIN from a carrier message (9-byte frame header, JSON payload).
fn opening_of(message: &[u8]) -> Opening {
    if message.len() < 9 {
        return Opening::Other;
    }
    let len = u32::from_be_bytes([message[5], message[6], message[7], message[8]]) as usize;
    let payload = &message[9..message.len().min(9 + len)];
    let json: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(_) => return Opening::Other,
    };
    match message[0] {
        0x01 => Opening::Hello {
            resume: json["resume"]["sessionId"].as_str().map(str::to_string),
        },
        0x09 => Opening::Join {
            session_id: json["sessionId"].as_str().unwrap_or_default().to_string(),
            index: json["index"].as_u64().unwrap_or(u64::MAX) as u32,
            nonce: json["nonce"].as_str().unwrap_or_default().to_string(),
        },
        _ => Opening::Other,
    }
}
