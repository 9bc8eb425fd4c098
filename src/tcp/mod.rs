//! Raw TCP: splicing a socket onto a mux stream, and the socket options every long-lived
//! connection gets.

mod held;
mod proxy_header;
mod read_sizing;
mod socket_options;
mod splice;
mod throttle;
mod vectored;

pub use held::Held;
pub use proxy_header::{proxy_header, ProxyProtocol};
pub use socket_options::{tune, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL};
pub use splice::{
    connect_and_splice, connect_and_splice_with, splice, splice_halves, splice_io, splice_with,
    SpliceMeter,
};
pub use throttle::{Throttle, Throttled, TokenBucket};
