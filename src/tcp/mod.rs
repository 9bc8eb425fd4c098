//! Raw TCP: splicing a socket onto a mux stream, and the socket options every long-lived
//! connection gets.

mod socket_options;
mod splice;

pub use socket_options::{tune, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL};
pub use splice::{connect_and_splice, splice, splice_halves};
