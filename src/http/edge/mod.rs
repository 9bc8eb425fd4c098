//! Socket-free helpers used at the public edge of HTTP expose (DESIGN.md section 5).
//!
//! Everything here is pure: header hygiene, trusted-proxy handling, Basic Auth, host routing,
//! token comparison and the error responses a visitor sees. Keeping it free of I/O lets the
//! server's request path stay thin and lets these rules be tested exhaustively in isolation.

pub mod address_policy;
pub mod authority;
pub mod basic_auth;
pub mod forwarded;
pub mod hop_by_hop;
pub mod request;
pub mod routing;
pub mod token;
pub mod trusted_proxy;
pub mod visitor_error;
