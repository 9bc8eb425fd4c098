//! `--max-connections-per-ip`: how many connections one visitor address may hold at once, on
//! every public listener (the main one, dedicated HTTP ports, tcp expose ports), so a single
//! source cannot take the whole `--fd-budget` with slow or idle connections. Trusted proxies
//! are exempt: they carry many visitors.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The key one address is counted under: an IPv4 address, or the /64 of an IPv6 one (a single
/// host usually owns a whole /64, so counting single IPv6 addresses would not limit it).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Live connections per address.
#[derive(Debug)]
pub struct AddressCap {
    max: usize,
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct AddressSlot {
    key: IpAddr,
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl AddressCap {
    /// A cap of `max` connections per address.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            live: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` when it already holds `max`.
    pub fn try_admit(&self, ip: IpAddr) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let count = live.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            key,
            live: self.live.clone(),
        })
    }

    /// Addresses holding at least one connection.
    pub fn tracked(&self) -> usize {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = live.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                live.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_has_its_own_count_and_slots_come_back() {
        let cap = AddressCap::new(2);
        let a1 = cap.try_admit(ip("203.0.113.7")).unwrap();
        let _a2 = cap.try_admit(ip("::ffff:203.0.113.7")).unwrap();
        assert!(
            cap.try_admit(ip("203.0.113.7")).is_none(),
            "mapped and plain IPv4 are one"
        );
        assert!(cap.try_admit(ip("203.0.113.8")).is_some());
        drop(a1);
        assert!(cap.try_admit(ip("203.0.113.7")).is_some());
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let cap = AddressCap::new(1);
        let _a = cap.try_admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(cap.try_admit(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(cap.try_admit(ip("2001:db8:1:3::1")).is_some());
        assert_eq!(
            address_key(ip("2001:db8:1:2:3:4:5:6")),
            ip("2001:db8:1:2::")
        );
    }

    #[test]
    fn empty_entries_are_forgotten() {
        let cap = AddressCap::new(3);
        let slots: Vec<_> = (0..3)
            .map(|_| cap.try_admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(cap.tracked(), 1);
        drop(slots);
        assert_eq!(cap.tracked(), 0);
    }
}
