//! underpass: a reverse tunnel. A public server accepts carriers from private clients; each session
//! multiplexes HTTP requests and TCP connections with per-stream and per-session flow control.
// Unsafe code only where a C library must be called (`allocator`), allowed there alone.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod allocator;
pub mod bench;
pub mod cli;
pub mod client;
pub mod http;
pub mod inspect;
pub mod mux;
pub mod proto;
pub mod redact;
pub mod server;
pub mod tcp;
