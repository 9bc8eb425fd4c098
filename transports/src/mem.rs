//! In-memory carriers, for tests of the mux, the server and the client without sockets.
//!
//! They keep the promises of a real carrier (order, message boundaries, back-pressure, clean
//! close versus loss, the size limit) so a test that passes on them means something on a real
//! transport. [`MemLink::cut`] simulates a dropped connection and [`MemOptions::delay`] a slow
//! path.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::{Carrier, CarrierInfo, CarrierRx, CarrierTx, Endpoint, Transport, MAX_MESSAGE_BYTES};

/// Messages in flight per direction before `send` waits: small enough that a test notices a
/// missing reader, large enough not to serialise a busy mux.
const CHANNEL_CAPACITY: usize = 64;

/// Carriers dialled but not yet accepted before [`MemTransport::connect`] waits.
const ACCEPT_BACKLOG: usize = 64;

/// Options for [`pair_with`] and [`MemTransport::with_options`].
#[derive(Debug, Clone, Default)]
pub struct MemOptions {
    /// One-way delay added to every message (and to the clean close), measured from `send`.
    /// Messages stay in order. Because the channel holds at most 64 messages, a delay also caps
    /// the messages in flight, like a real bandwidth-delay product.
    pub delay: Option<Duration>,
}

/// Handle on the link under one in-memory carrier pair, to break it from a test.
#[derive(Debug, Clone)]
pub struct MemLink {
    cut: Arc<watch::Sender<bool>>,
}

impl MemLink {
    /// Breaks the link as if the connection was lost: from now on `recv` on both sides returns
    /// an [`io::ErrorKind::ConnectionReset`] error (even if messages were still queued), and
    /// `send`/`close` fail the same way. Pending `recv` and `send` calls wake up with the error.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Whether [`cut`](Self::cut) was called.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

/// What travels through the channel: the close marker lets the receiver tell a clean close
/// from a peer that vanished (dropped its half), as a WebSocket close frame does.
enum Item {
    Data(Bytes),
    Close,
}

struct Envelope {
    item: Item,
    /// Not before this instant (only with a delay).
    deliver_at: Option<Instant>,
}

fn oversized_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("message over the {MAX_MESSAGE_BYTES}-byte limit"),
    )
}

fn reset_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "in-memory link was cut")
}

/// Resolves once the link is cut; never if it cannot be cut any more.
async fn cut_signal(cut: &mut watch::Receiver<bool>) {
    if cut.wait_for(|is_cut| *is_cut).await.is_err() {
        // The MemLink and its clones are gone, so nobody can cut this link any more.
        std::future::pending::<()>().await;
    }
}

struct MemTx {
    /// `None` once closed.
    tx: Option<mpsc::Sender<Envelope>>,
    delay: Option<Duration>,
    cut: watch::Receiver<bool>,
}

impl MemTx {
    async fn push(&mut self, item: Item) -> io::Result<()> {
        if *self.cut.borrow() {
            return Err(reset_error());
        }
        let Some(tx) = &self.tx else {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "carrier already closed",
            ));
        };
        let envelope = Envelope {
            item,
            deliver_at: self.delay.map(|d| Instant::now() + d),
        };
        tokio::select! {
            biased;
            () = cut_signal(&mut self.cut) => Err(reset_error()),
            sent = tx.send(envelope) => sent.map_err(|_| {
                io::Error::new(io::ErrorKind::BrokenPipe, "peer dropped its end of the carrier")
            }),
        }
    }
}

#[async_trait]
impl CarrierTx for MemTx {
    async fn send(&mut self, message: Bytes) -> io::Result<()> {
        self.push(Item::Data(message)).await
    }

    async fn close(&mut self) -> io::Result<()> {
        if self.tx.is_none() {
            return Ok(());
        }
        let result = self.push(Item::Close).await;
        // Dropping the sender is what lets the peer's channel drain and end.
        self.tx = None;
        result
    }
}

struct MemRx {
    rx: mpsc::Receiver<Envelope>,
    /// A message taken from the channel whose delay has not elapsed yet. Kept here, not in the
    /// future, so cancelling `recv` during the wait loses nothing.
    pending: Option<Envelope>,
    cut: watch::Receiver<bool>,
    /// The peer closed cleanly; every later `recv` returns `Ok(None)`.
    done: bool,
    /// A message over the size limit arrived; a real transport would be unusable now, so every
    /// later `recv` fails too.
    oversized: bool,
}

#[async_trait]
impl CarrierRx for MemRx {
    async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        if *self.cut.borrow() {
            return Err(reset_error());
        }
        if self.oversized {
            return Err(oversized_error());
        }
        if self.done {
            return Ok(None);
        }
        if self.pending.is_none() {
            let next = tokio::select! {
                biased;
                () = cut_signal(&mut self.cut) => return Err(reset_error()),
                next = self.rx.recv() => next,
            };
            match next {
                Some(envelope) => self.pending = Some(envelope),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "peer dropped the carrier without closing it",
                    ))
                }
            }
        }
        if let Some(at) = self.pending.as_ref().and_then(|e| e.deliver_at) {
            tokio::select! {
                biased;
                () = cut_signal(&mut self.cut) => return Err(reset_error()),
                () = tokio::time::sleep_until(at) => {}
            }
        }
        let Some(envelope) = self.pending.take() else {
            // Unreachable: filled above and only taken here.
            return Err(io::Error::other(
                "in-memory carrier lost its pending message",
            ));
        };
        match envelope.item {
            Item::Data(message) if message.len() > MAX_MESSAGE_BYTES => {
                self.oversized = true;
                Err(oversized_error())
            }
            Item::Data(message) => Ok(Some(message)),
            Item::Close => {
                self.done = true;
                Ok(None)
            }
        }
    }
}

fn half(
    tx: mpsc::Sender<Envelope>,
    rx: mpsc::Receiver<Envelope>,
    delay: Option<Duration>,
    cut: &watch::Sender<bool>,
) -> Carrier {
    Carrier {
        tx: Box::new(MemTx {
            tx: Some(tx),
            delay,
            cut: cut.subscribe(),
        }),
        rx: Box::new(MemRx {
            rx,
            pending: None,
            cut: cut.subscribe(),
            done: false,
            oversized: false,
        }),
        info: CarrierInfo {
            transport: "mem",
            ..CarrierInfo::default()
        },
    }
}

/// Two connected in-memory carriers with no delay that cannot be cut.
pub fn pair() -> (Carrier, Carrier) {
    let (a, b, _link) = pair_with(MemOptions::default());
    (a, b)
}

/// Two connected in-memory carriers with the given options, and the link between them.
pub fn pair_with(opts: MemOptions) -> (Carrier, Carrier, MemLink) {
    let (a_to_b, b_from_a) = mpsc::channel(CHANNEL_CAPACITY);
    let (b_to_a, a_from_b) = mpsc::channel(CHANNEL_CAPACITY);
    let (cut, _) = watch::channel(false);
    let a = half(a_to_b, a_from_b, opts.delay, &cut);
    let b = half(b_to_a, b_from_a, opts.delay, &cut);
    (a, b, MemLink { cut: Arc::new(cut) })
}

/// Client side of an in-memory "server": every [`connect`](Transport::connect) creates a carrier
/// pair and hands the server half to the [`MemAcceptor`]. The endpoint URL is ignored.
#[derive(Debug, Clone)]
pub struct MemTransport {
    server: mpsc::Sender<(Carrier, MemLink)>,
    opts: MemOptions,
}

/// Server side of a [`MemTransport`]: yields the server half of each dialled carrier.
#[derive(Debug)]
pub struct MemAcceptor {
    incoming: mpsc::Receiver<(Carrier, MemLink)>,
}

impl MemTransport {
    /// A transport and the acceptor that receives its carriers.
    pub fn new() -> (MemTransport, MemAcceptor) {
        Self::with_options(MemOptions::default())
    }

    /// Like [`new`](Self::new), with the options applied to every carrier.
    pub fn with_options(opts: MemOptions) -> (MemTransport, MemAcceptor) {
        let (server, incoming) = mpsc::channel(ACCEPT_BACKLOG);
        (MemTransport { server, opts }, MemAcceptor { incoming })
    }
}

impl MemAcceptor {
    /// The server half of the next dialled carrier; `None` once every [`MemTransport`] clone is
    /// gone.
    pub async fn accept(&mut self) -> Option<Carrier> {
        self.accept_with_link()
            .await
            .map(|(carrier, _link)| carrier)
    }

    /// Like [`accept`](Self::accept), with the link so a test can cut this carrier.
    pub async fn accept_with_link(&mut self) -> Option<(Carrier, MemLink)> {
        self.incoming.recv().await
    }
}

#[async_trait]
impl Transport for MemTransport {
    fn name(&self) -> &'static str {
        "mem"
    }

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Carrier> {
        let (mut client, mut server, link) = pair_with(self.opts.clone());
        client.info.subprotocol = Some(endpoint.subprotocol.clone());
        // The server half sees what a WebSocket upgrade would have shown it, so server code
        // authenticates the same way on both transports.
        server.info.subprotocol = Some(endpoint.subprotocol.clone());
        server.info.bearer = endpoint.bearer.clone();
        self.server.send((server, link)).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "in-memory acceptor is gone",
            )
        })?;
        Ok(client)
    }
}
