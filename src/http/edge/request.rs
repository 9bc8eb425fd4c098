//! What the edge derives from one request's head, computed once when the request arrives and
//! handed to every later step (rate limit, routing, address policy, Basic Auth throttling, the
//! headers written for the app), so no step re-derives the host or the client on its own.

use std::net::SocketAddr;

use http::Request;

use super::authority::{request_authority, Authority, HostError};
use super::forwarded::{client_info, ClientInfo};
use super::trusted_proxy::TrustedProxies;

/// The edge's view of one request.
#[derive(Debug, Clone)]
pub struct EdgeRequest {
    /// The request's own authority (absolute-form target, else Host): the `Host` the app sees.
    pub authority: Option<Authority>,
    /// The visitor as the edge believes it. Its `host` (a trusted proxy's `X-Forwarded-Host`,
    /// else [`authority`](Self::authority)) is what the request is routed by and what
    /// `X-Forwarded-Host` says.
    pub client: ClientInfo,
}

impl EdgeRequest {
    /// The view of request `req` from `peer`; a Host problem is a 400.
    pub fn new<B>(
        peer: SocketAddr,
        req: &Request<B>,
        trusted: &TrustedProxies,
    ) -> Result<Self, HostError> {
        let authority = request_authority(req.version(), req.uri(), req.headers())?;
        let client = client_info(peer, req.headers(), false, authority.as_ref(), trusted);
        Ok(Self { authority, client })
    }

    /// The public host the request is for (routing key).
    pub fn public_host(&self) -> Option<&Authority> {
        self.client.host.as_ref()
    }
}
