//! Whether an accepted connection may be served: a place under `--max-connections-per-ip`
//! for its address (trusted proxies exempt), then a permit of the `--fd-budget`. Both are held
//! by the [`Admitted`] value for as long as the socket lives.

use std::net::IpAddr;

use tokio::sync::OwnedSemaphorePermit;

use super::address_cap::AddressSlot;
use super::state::ServerState;

/// What admitted one connection; dropping it frees its places.
#[derive(Debug)]
pub struct Admitted {
    _fd: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAdmitted {
    /// `--fd-budget` is spent: 503.
    OverBudget,
    /// The address holds `--max-connections-per-ip` connections already: 429.
    OverAddressCap,
}

impl ServerState {
    /// Admits a connection from `peer`, or says why not. The address is checked first, so a
    /// refused address never takes a permit of the budget.
    pub fn admit_connection(&self, peer: IpAddr) -> Result<Admitted, NotAdmitted> {
        let address = match &self.address_cap {
            Some(cap) if !self.config.trusted_proxies.is_trusted(peer) => {
                Some(cap.try_admit(peer).ok_or(NotAdmitted::OverAddressCap)?)
            }
            _ => None,
        };
        let fd = self
            .fd_budget
            .try_acquire()
            .ok_or(NotAdmitted::OverBudget)?;
        Ok(Admitted {
            _fd: fd,
            _address: address,
        })
    }

    /// Admits a connection that only the budget limits: a `pull` listener's, on loopback, from
    /// server-side code that may well keep a large connection pool.
    pub fn admit_local_connection(&self) -> Result<Admitted, NotAdmitted> {
        let fd = self
            .fd_budget
            .try_acquire()
            .ok_or(NotAdmitted::OverBudget)?;
        Ok(Admitted {
            _fd: fd,
            _address: None,
        })
    }
}
