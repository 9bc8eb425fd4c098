//! Protocol versions, WebSocket subprotocol names and carrier-count negotiation.

/// Every WebSocket subprotocol the server accepts, preferred first.
pub const SUBPROTOCOLS: [&str; 4] = [
    "hoody-tunnel.v2",
    "hoody-tunnel.v1",
    "underpass.v2",
    "underpass.v1",
];

/// Wire protocol generation: v1 = one carrier, v2 = striping over several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// One carrier per session.
    V1,
    /// Several carriers per session, joined with tickets.
    V2,
}

impl ProtocolVersion {
    /// Parses a subprotocol or HELLO `version` value, including the `underpass.*` aliases.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "hoody-tunnel.v1" | "underpass.v1" => Some(Self::V1),
            "hoody-tunnel.v2" | "underpass.v2" => Some(Self::V2),
            _ => None,
        }
    }

    /// The canonical name sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "hoody-tunnel.v1",
            Self::V2 => "hoody-tunnel.v2",
        }
    }
}

/// Carriers granted for a request of `requested` against a server limit: v1 always gets 1; v2 gets
/// `requested` clamped to `1..=min(16, server_max)`.
pub fn negotiate_connections(
    version: ProtocolVersion,
    requested: Option<u32>,
    server_max: u32,
) -> u32 {
    match version {
        ProtocolVersion::V1 => 1,
        ProtocolVersion::V2 => requested.unwrap_or(1).clamp(1, server_max.clamp(1, 16)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_parse_to_the_same_version() {
        assert_eq!(
            ProtocolVersion::parse("underpass.v2"),
            Some(ProtocolVersion::V2)
        );
        assert_eq!(
            ProtocolVersion::parse("hoody-tunnel.v1"),
            Some(ProtocolVersion::V1)
        );
        assert_eq!(ProtocolVersion::parse("hoody-tunnel.v3"), None);
    }

    #[test]
    fn connections_are_clamped() {
        use ProtocolVersion::*;
        assert_eq!(negotiate_connections(V1, Some(8), 8), 1);
        assert_eq!(negotiate_connections(V2, Some(8), 4), 4);
        assert_eq!(negotiate_connections(V2, Some(0), 4), 1);
        assert_eq!(negotiate_connections(V2, Some(40), 64), 16);
        assert_eq!(negotiate_connections(V2, None, 8), 1);
    }
}
