//! Throttling of wrong Basic Auth credentials per visitor address: after a burst of failures
//! (the allowance per minute) an address gets 429 with `Retry-After`, and while it is throttled
//! its credentials are not even checked, so a guesser cannot tell a right password from a
//! wrong one by the answer. Counting is the `governor` crate's (GCRA, keyed by address); the
//! refusal deadline is kept here because governor cannot look without counting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, Response};

use super::address_cap::address_key;
use crate::http::edge::basic_auth::BasicAuthPolicy;
use crate::http::edge::visitor_error;

/// Throttled addresses kept at most; past it, expired ones are dropped and then any one.
const MAX_BLOCKED: usize = 65_536;
/// After this many failures, addresses whose allowance is full again are forgotten.
const CLEANUP_EVERY: u64 = 1024;

/// Failed Basic Auth attempts per address.
pub struct AuthThrottle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    failures: AtomicU64,
}

impl std::fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthThrottle")
            .field("tracked", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl AuthThrottle {
    /// `per_minute` failures per address and minute, all of them allowed in one burst.
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            blocked: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// How long `ip` must wait before its credentials are checked again, if it is throttled.
    pub fn throttled(&self, ip: IpAddr) -> Option<Duration> {
        let key = address_key(ip);
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&key)?;
        let now = Instant::now();
        if until <= now {
            blocked.remove(&key);
            return None;
        }
        Some(until - now)
    }

    /// Counts a wrong password from `ip`; returns how long it is throttled when this failure
    /// used up its allowance.
    pub fn failed(&self, ip: IpAddr) -> Option<Duration> {
        if self.failures.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = address_key(ip);
        let not_until = self.limiter.check_key(&key).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        if blocked.len() >= MAX_BLOCKED {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            if blocked.len() >= MAX_BLOCKED {
                if let Some(any) = blocked.keys().next().copied() {
                    blocked.remove(&any);
                }
            }
        }
        blocked.insert(key, Instant::now() + wait);
        Some(wait)
    }
}

/// The Basic Auth check of a route for a visitor at `ip`: `None` lets the request pass, else
/// the answer is 429 (throttled: nothing is checked) or 401. Only a request that carried
/// credentials counts as a failure; one without them is simply asked for them.
pub fn basic_auth_gate(
    throttle: Option<&AuthThrottle>,
    policy: &BasicAuthPolicy,
    ip: IpAddr,
    headers: &HeaderMap,
) -> Option<Response<Bytes>> {
    if let Some(wait) = throttle.and_then(|t| t.throttled(ip)) {
        return Some(visitor_error::auth_throttled(retry_secs(wait)));
    }
    if policy.check(headers) {
        return None;
    }
    if headers.contains_key(http::header::AUTHORIZATION) {
        if let Some(wait) = throttle.and_then(|t| t.failed(ip)) {
            tracing::info!(visitor = %ip, "Basic Auth failures over the limit; throttled");
            return Some(visitor_error::auth_throttled(retry_secs(wait)));
        }
    }
    Some(visitor_error::auth_required())
}

/// Whole seconds for `Retry-After`, rounded up.
fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_burst_of_failures_then_a_wait() {
        let t = AuthThrottle::new(NonZeroU32::new(3).unwrap());
        let a = ip("203.0.113.7");
        assert!(
            (0..3).all(|_| t.failed(a).is_none()),
            "the burst is allowed"
        );
        assert!(t.throttled(a).is_none());
        let wait = t.failed(a).expect("the fourth failure throttles");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(t.throttled(a).is_some());
        assert!(
            t.throttled(ip("203.0.113.8")).is_none(),
            "others are not affected"
        );
        assert!(
            t.throttled(ip("::ffff:203.0.113.7")).is_some(),
            "mapped IPv4 is the same"
        );
    }
}
