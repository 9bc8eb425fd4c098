//! `--visitor-rate`: how many new public requests and TCP connections one visitor address may
//! start per second, so a single source cannot flood the tunnels. Rate limiting is the
//! `governor` crate's (GCRA, keyed by address); a visitor over it gets 429 (HTTP) or a closed
//! connection (TCP).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// After this many checks, addresses whose budget is full again are forgotten, so the table
/// holds recent visitors only.
const CLEANUP_EVERY: u64 = 4096;

/// The per-address budget: `per_second` new requests or connections, in bursts of as many.
pub struct VisitorRate {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl std::fmt::Debug for VisitorRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitorRate")
            .field("tracked", &self.limiter.len())
            .finish()
    }
}

impl VisitorRate {
    /// A limiter admitting `per_second` starts per visitor address and second.
    pub fn new(per_second: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second)),
            checks: AtomicU64::new(0),
        }
    }

    /// True when `ip` may start a request or connection now (and counts it).
    pub fn admit(&self, ip: IpAddr) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&ip.to_canonical()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_budget() {
        let rate = VisitorRate::new(NonZeroU32::new(3).unwrap());
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "::ffff:203.0.113.8".parse().unwrap();
        let admitted = (0..10).filter(|_| rate.admit(a)).count();
        assert_eq!(admitted, 3, "a burst of one second's worth, then refusals");
        assert!(rate.admit(b), "another address is not affected");
        assert!(rate.admit("203.0.113.8".parse().unwrap()));
        assert!(rate.admit(b));
        assert!(!rate.admit(b), "mapped and plain IPv4 share one budget");
    }
}
