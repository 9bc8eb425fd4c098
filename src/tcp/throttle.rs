//! Bandwidth limits outside the mux: a token bucket shared by every stream of one tunnel client,
//! and a socket wrapper that waits for the bucket before each read and write. Waiting instead of
//! dropping means the limit works through back-pressure: a delayed read from the visitor leaves
//! bytes in its socket, a delayed write to the visitor leaves the mux stream unread, so no
//! credit goes back and the tunnel client slows down. Nothing is lost.
//!
//! Only streams of a limited client are wrapped; unlimited ones never see this code.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A token bucket of bytes per second on tokio's clock. The bucket holds at most a tenth of a
/// second of traffic, so a burst after a quiet spell stays short; a caller may take more than
/// is left (a read returns what it returns), which puts the bucket in debt and delays the next
/// caller until the debt is repaid, so the long-run rate is exact.
#[derive(Debug)]
pub struct TokenBucket {
    /// Bytes per second; 0: unlimited.
    rate: AtomicU64,
    state: Mutex<Level>,
}

#[derive(Debug)]
struct Level {
    /// Bytes that may pass now; negative: owed.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` bytes per second (0: unlimited).
    pub fn new(rate: u64) -> Self {
        Self {
            rate: AtomicU64::new(rate),
            state: Mutex::new(Level {
                tokens: Self::capacity(rate),
                at: Instant::now(),
            }),
        }
    }

    /// Most bytes the bucket holds: a tenth of a second of traffic.
    fn capacity(rate: u64) -> f64 {
        rate as f64 / 10.0
    }

    /// Bytes per second now (0: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Changes the rate; takes effect for the next byte.
    pub fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::Relaxed);
    }

    fn level(&self, now: Instant) -> std::sync::MutexGuard<'_, Level> {
        let rate = self.rate();
        let mut level = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(level.at).as_secs_f64();
        level.tokens = (level.tokens + elapsed * rate as f64).min(Self::capacity(rate));
        level.at = now;
        level
    }

    /// How many bytes may pass now (`u64::MAX` when unlimited), or the instant some may.
    pub fn allowance(&self, now: Instant) -> Result<u64, Instant> {
        let rate = self.rate();
        if rate == 0 {
            return Ok(u64::MAX);
        }
        let level = self.level(now);
        if level.tokens >= 1.0 {
            return Ok(level.tokens as u64);
        }
        // Until the bucket holds one byte again.
        let secs = (1.0 - level.tokens) / rate as f64;
        Err(now + Duration::from_secs_f64(secs))
    }

    /// `None` when bytes may pass now, else the instant they may.
    pub fn wait_until(&self, now: Instant) -> Option<Instant> {
        self.allowance(now).err()
    }

    /// Counts `n` bytes that passed.
    pub fn take(&self, n: usize) {
        if n == 0 || self.rate() == 0 {
            return;
        }
        self.level(Instant::now()).tokens -= n as f64;
    }

    /// Waits until bytes may pass.
    pub async fn ready(&self) {
        while let Some(at) = self.wait_until(Instant::now()) {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Poll form of [`ready`](Self::ready), with the allowance; `sleep` keeps the timer
    /// between polls.
    pub fn poll_ready(
        &self,
        sleep: &mut Option<Pin<Box<Sleep>>>,
        cx: &mut Context<'_>,
    ) -> Poll<u64> {
        loop {
            match self.allowance(Instant::now()) {
                Ok(n) => return Poll::Ready(n),
                Err(at) => {
                    let timer = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    timer.as_mut().reset(at);
                    ready!(timer.as_mut().poll(cx));
                }
            }
        }
    }
}

/// The two buckets of one tunnel client: bytes travelling towards it (visitor to app) and
/// bytes coming from it (app to visitor), each limited on its own.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// Bytes the server sends towards the tunnel client.
    pub to_client: Arc<TokenBucket>,
    /// Bytes the server receives from the tunnel client.
    pub from_client: Arc<TokenBucket>,
}

impl Throttle {
    /// Both directions at `rate` bytes per second.
    pub fn new(rate: u64) -> Self {
        Self {
            to_client: Arc::new(TokenBucket::new(rate)),
            from_client: Arc::new(TokenBucket::new(rate)),
        }
    }

    /// Changes the rate of both directions.
    pub fn set_rate(&self, rate: u64) {
        self.to_client.set_rate(rate);
        self.from_client.set_rate(rate);
    }

    /// True when a rate is set.
    pub fn is_limited(&self) -> bool {
        self.to_client.rate() != 0
    }

    /// Wraps a server-side socket of the client's traffic (a visitor's connection, or the
    /// target of a `forward`): what is read from it travels to the client, what is written to
    /// it came from the client.
    pub fn wrap<T>(&self, io: T) -> Throttled<T> {
        Throttled {
            io,
            throttle: self.clone(),
            read_sleep: None,
            write_sleep: None,
        }
    }
}

/// A socket whose reads draw from [`Throttle::to_client`] and whose writes draw from
/// [`Throttle::from_client`].
#[derive(Debug)]
pub struct Throttled<T> {
    io: T,
    throttle: Throttle,
    read_sleep: Option<Pin<Box<Sleep>>>,
    write_sleep: Option<Pin<Box<Sleep>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Throttled<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.throttle.to_client.poll_ready(&mut this.read_sleep, cx));
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.throttle.to_client.take(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Throttled<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let allowed = ready!(this
            .throttle
            .from_client
            .poll_ready(&mut this.write_sleep, cx));
        // A write can be cut to what the bucket holds (a read cannot without a copy: it takes
        // what arrives and leaves the bucket in debt).
        let len = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..len]))?;
        this.throttle.from_client.take(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let b = TokenBucket::new(0);
        b.take(1 << 30);
        assert_eq!(b.wait_until(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn debt_delays_the_next_caller_by_its_size() {
        let b = TokenBucket::new(1000);
        // A full bucket holds 100 bytes; 600 more put it 500 in debt: half a second.
        assert_eq!(b.wait_until(Instant::now()), None);
        b.take(600);
        let now = Instant::now();
        let at = b.wait_until(now).expect("in debt");
        let wait = at - now;
        assert!(
            wait >= Duration::from_millis(500) && wait <= Duration::from_millis(502),
            "{wait:?}"
        );
        tokio::time::advance(Duration::from_millis(502)).await;
        assert_eq!(b.wait_until(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_buys_at_most_a_tenth_of_a_second() {
        let b = TokenBucket::new(1000);
        tokio::time::advance(Duration::from_secs(60)).await;
        b.take(100);
        assert!(b.wait_until(Instant::now()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_changes_apply_at_once() {
        let b = TokenBucket::new(1000);
        b.take(10_100);
        assert!(b.wait_until(Instant::now()).is_some());
        b.set_rate(0);
        assert_eq!(b.wait_until(Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_socket_moves_everything_at_the_rate() {
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let throttle = Throttle::new(10_000);
        let mut a = throttle.wrap(a);
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            b.write_all(&vec![7u8; 30_000]).await.unwrap();
            b.shutdown().await.unwrap();
            let mut back = Vec::new();
            b.read_to_end(&mut back).await.unwrap();
            back.len()
        });
        let mut got = Vec::new();
        a.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 30_000);
        // 30 kB at 10 kB/s with a 1 kB bucket: at least 2.9 s, all bytes intact.
        assert!(started.elapsed() >= Duration::from_millis(2900));
        let started = Instant::now();
        a.write_all(&got).await.unwrap();
        a.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), 30_000);
        assert!(started.elapsed() >= Duration::from_millis(2900));
    }
}
