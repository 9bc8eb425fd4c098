//! Raw TCP: splicing a socket onto a mux stream, and the socket options every long-lived
//! connection gets.

mod proxy_header;
mod socket_options;
mod splice;

pub use proxy_header::{proxy_header, ProxyProtocol};
pub use socket_options::{tune, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL};
pub use splice::{connect_and_splice, splice, splice_halves};
