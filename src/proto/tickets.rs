//! *(underpass)* TICKET_REQUEST and TICKET: a fresh join ticket for a lost carrier, so a client
//! can re-dial carrier k of a running session (HELLO_OK's tickets are single-use).
//!
//! Both frames are in the extension range, so a peer that does not know them skips them: a
//! client never gets an answer from such a server and stops asking.
//!
//! `receivedBytes` settles the flow-control credit of what the lost carrier swallowed: each side
//! says how many DATA payload bytes it took from that carrier while it lived, and the other side
//! takes back the session credit of everything it sent there beyond that (bytes in flight when
//! the connection died never reach the receiver, so they would never be returned by WINDOW).

use serde::{Deserialize, Serialize};

/// TICKET_REQUEST (0x41), client -> server on carrier 0: "carrier `index` is gone, let me
/// re-join it".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketRequest {
    /// Carrier index to re-join (1..connectionsGranted-1).
    pub index: u32,
    /// *(underpass)* DATA payload bytes the client received on the lost carrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_bytes: Option<u64>,
}

/// Why the server hands out no ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketError {
    /// Machine-readable reason: `INVALID_INDEX`, `NOT_STRIPED`, `SHUTTING_DOWN`.
    pub code: String,
    /// Human-readable reason.
    pub message: String,
}

/// TICKET (0x42), server -> client: a single-use join ticket for one carrier index, or why
/// there is none.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarrierTicket {
    /// Carrier index the ticket admits.
    pub index: u32,
    /// Secret single-use nonce for JOIN (absent with `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Milliseconds the ticket stays valid (absent with `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
    /// Set when no ticket is handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TicketError>,
    /// *(underpass)* DATA payload bytes the server received on the lost carrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_bytes: Option<u64>,
}

impl std::fmt::Debug for CarrierTicket {
    /// The nonce is a secret: it never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierTicket")
            .field("index", &self.index)
            .field("nonce", &crate::redact::Redacted::of(&self.nonce))
            .field("expires_in_ms", &self.expires_in_ms)
            .field("error", &self.error)
            .field("received_bytes", &self.received_bytes)
            .finish()
    }
}

impl CarrierTicket {
    /// A refusal for `index`.
    pub fn refused(index: u32, code: &str, message: impl Into<String>) -> Self {
        Self {
            index,
            nonce: None,
            expires_in_ms: None,
            error: Some(TicketError {
                code: code.to_string(),
                message: message.into(),
            }),
            received_bytes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_camel_case_and_optional_fields_optional() {
        let req: TicketRequest = serde_json::from_str(r#"{"index":2}"#).unwrap();
        assert_eq!(req.received_bytes, None);
        let json = serde_json::to_string(&TicketRequest {
            index: 2,
            received_bytes: Some(7),
        })
        .unwrap();
        assert_eq!(json, r#"{"index":2,"receivedBytes":7}"#);
        let t: CarrierTicket =
            serde_json::from_str(r#"{"index":1,"nonce":"n","expiresInMs":30000}"#).unwrap();
        assert_eq!(t.nonce.as_deref(), Some("n"));
        assert_eq!(t.expires_in_ms, Some(30000));
        let refused =
            serde_json::to_string(&CarrierTicket::refused(9, "INVALID_INDEX", "no")).unwrap();
        assert_eq!(
            refused,
            r#"{"index":9,"error":{"code":"INVALID_INDEX","message":"no"}}"#
        );
    }

    #[test]
    fn debug_hides_the_nonce() {
        let t = CarrierTicket {
            index: 1,
            nonce: Some("s3cret-nonce".into()),
            expires_in_ms: Some(1),
            error: None,
            received_bytes: None,
        };
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
