//! Checked bulk transfers for chaos tests: a TCP source that answers `len` deterministic bytes
//! for a seed, and a fetcher that verifies every byte as it arrives (no whole copy kept), so a
//! test can tell a transfer that completed byte-exact from one that failed cleanly (short) and
//! from one that was corrupted (never acceptable).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Deterministic bytes for a seed, produced in pieces (xorshift64).
#[derive(Debug, Clone)]
pub struct Pattern(u64);

impl Pattern {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Writes the next `buf.len()` bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// A TCP source: reads a 16-byte request (`seed: u64`, `len: u64`, big-endian), answers `len`
/// bytes of [`Pattern`] for the seed, then closes.
pub async fn source_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = [0u8; 16];
                if tcp.read_exact(&mut req).await.is_err() {
                    return;
                }
                let seed = u64::from_be_bytes(req[..8].try_into().unwrap());
                let mut left = u64::from_be_bytes(req[8..].try_into().unwrap());
                let mut pattern = Pattern::new(seed);
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    pattern.fill(&mut buf[..n]);
                    if tcp.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}

/// How a fetch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Every byte, in order.
    Complete,
    /// The connection ended early (reset or closed) after `got` correct bytes.
    Failed {
        /// Correct bytes received.
        got: u64,
    },
    /// A byte differed at offset `at`: data was lost or mixed up.
    Corrupt {
        /// First wrong offset.
        at: u64,
    },
}

/// One transfer from a [`source_server`] (directly or through a tunnel).
pub struct Fetch {
    tcp: TcpStream,
    pattern: Pattern,
    expected: Vec<u8>,
    /// Bytes asked for.
    pub len: u64,
    /// Correct bytes so far.
    pub got: u64,
}

impl Fetch {
    /// Connects to `addr` and asks for `len` bytes of `seed`. The socket's receive buffer is
    /// small and fixed (no autotuning, which here may reach 32 MiB), so a fetch that stops
    /// reading soon holds the sender back, and a cut while it pauses finds its transfer
    /// unfinished.
    pub async fn start(addr: SocketAddr, seed: u64, len: u64) -> std::io::Result<Self> {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(128 * 1024)?;
        let mut tcp = socket.connect(addr).await?;
        let mut req = [0u8; 16];
        req[..8].copy_from_slice(&seed.to_be_bytes());
        req[8..].copy_from_slice(&len.to_be_bytes());
        tcp.write_all(&req).await?;
        Ok(Self {
            tcp,
            pattern: Pattern::new(seed),
            expected: Vec::new(),
            len,
            got: 0,
        })
    }

    /// Reads until at least `n` bytes arrived in total (or the end); `Some` once it ended.
    pub async fn read_until(&mut self, n: u64) -> Option<Fetched> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.got < n.min(self.len) {
            let read = match self.tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return Some(Fetched::Failed { got: self.got }),
                Ok(k) => k,
            };
            if self.got + read as u64 > self.len {
                return Some(Fetched::Corrupt { at: self.len });
            }
            self.expected.resize(read, 0);
            self.pattern.fill(&mut self.expected);
            if let Some(i) = (0..read).find(|i| buf[*i] != self.expected[*i]) {
                return Some(Fetched::Corrupt {
                    at: self.got + i as u64,
                });
            }
            self.got += read as u64;
        }
        if self.got < self.len {
            return None;
        }
        // Everything arrived: the source closes now; more bytes would be corruption.
        match self.tcp.read(&mut buf).await {
            Ok(0) | Err(_) => Some(Fetched::Complete),
            Ok(_) => Some(Fetched::Corrupt { at: self.len }),
        }
    }

    /// Reads to the end.
    pub async fn finish(mut self) -> Fetched {
        match self.read_until(u64::MAX).await {
            Some(end) => end,
            None => Fetched::Failed { got: self.got },
        }
    }
}

/// A loopback app that reads everything a connection sends and answers with its length.
pub async fn counting_sink() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(k) = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, &n.to_be_bytes()).await;
            });
        }
    });
    addr
}
