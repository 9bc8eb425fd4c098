//! The private side: connect a session (with v2 striping), bind services, answer the streams the
//! server opens, and open streams for `forward` bindings.

mod api;
mod backoff;
mod carriers;
mod connect;
mod error;
mod hello_check;
mod options;
mod redial;
mod session;

pub use api::{serve, HttpExpose, TcpExpose};
pub use backoff::Backoff;
pub use connect::connect as connect_session;
pub use error::ClientError;
pub use options::ClientOptions;
pub use session::{Binding, ClientSession, StreamHandler};
/// The trust and egress-proxy settings of [`ClientOptions`], from the transports crate.
pub use underpass_transports::tls::ServerTrust;
pub use underpass_transports::ws::{EgressProxy, HttpProxy};
