//! The request inspector (client side): every HTTP exchange through an http expose, captured as
//! it passes ([`Inspector`]), replayable to the local service, and served on a local web page
//! with an API compatible with ngrok's agent API ([`serve`], default `127.0.0.1:4040`).
//!
//! The capture is fed by the client's HTTP answering path through the narrow hook of
//! [`crate::http::tap`]: body chunks are the proxy's own `Bytes` (kept by reference, up to
//! [`InspectConfig::body_cap`] each) and nothing on the data path waits for the inspector.
//! An embedding program can use the capture without the page: [`Inspector::subscribe`].

mod capture;
mod ngrok;
mod packed;
mod record;
mod replay;
mod store;
mod tunnel;
mod web;

pub use capture::{BodyCapture, BodyState};
pub use record::{Exchange, ExchangeState, RequestHead, ResponseHead, Snapshot, UpgradeTraffic};
pub use replay::{ReplayEdit, ReplayError};
pub use store::{InspectConfig, InspectEvent, Inspector, EVENT_BACKLOG};
pub use tunnel::{TunnelInfo, TunnelTap};
pub use web::{serve, serve_first_free, InspectServer};
