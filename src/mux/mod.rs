//! The session multiplexer: many streams over one or more carriers, with per-stream and
//! per-session flow control.
//!
//! [`MuxState`] is the protocol logic without I/O (frames in, frames out, time passed in), so it
//! is tested by pumping two states into each other. [`Session`] is the small async driver around
//! it: one reader and one writer task per carrier, stream handles that implement tokio's
//! `AsyncRead`/`AsyncWrite`, and a keepalive timer.

mod bind_traffic;
mod carrier_life;
mod carrier_tasks;
mod config;
mod driver;
mod error;
mod flow;
mod head_limit;
mod idle;
mod inbound;
mod outbox;
mod state;
mod stream;
mod stream_ops;
mod stream_slot;
mod transmit;

pub use bind_traffic::{BindTraffic, TrafficByBinding};
pub use carrier_life::CarrierLife;
pub use config::{MuxConfig, Role, DEFAULT_MAX_STREAMS};
pub use driver::{Session, SessionEvent};
pub use error::MuxError;
pub use flow::{RecvWindow, SendCredit};
pub use outbox::{Batch, OutFrame};
pub use state::{MuxEvent, MuxState, MuxStats};
pub use stream::{MuxStream, RecvHalf, SendHalf};
pub use stream_slot::RecvItem;

#[cfg(test)]
mod tests;
