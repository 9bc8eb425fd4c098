//! HTTP over the tunnel: the edge rules (routing, forwarded headers, Basic Auth, hop-by-hop
//! hygiene), the server side that turns a visitor request into a stream, and the client side that
//! answers a stream from a local port or an in-process handler.

pub mod body;
pub mod edge;
pub mod headers;
pub mod interim_io;
pub mod local;
mod local_pool;
pub mod tap;
pub mod throttled_body;
pub mod upgraded;
pub mod visitor;
