//! What a client accepts in HELLO_OK before acting on it. The server is trusted with the
//! session but not with the client's memory: a join-ticket index sizes the carrier table, and
//! a window of 0 would stall every stream forever. An answer outside PROTOCOL.md's ranges ends
//! the connection attempt with [`ClientError::BadServer`], which retrying does not fix.

use super::error::ClientError;
use crate::proto::HelloOk;

/// Most carriers one session may have (PROTOCOL.md: `connectionsGranted` is 1..16).
pub const MAX_CARRIERS: u32 = 16;
/// Most streams a client follows from `maxStreams`, whatever the server announces: its queue
/// bounds grow with the limit (four answers and one event per stream), and every stream also
/// holds a descriptor, so more than this is never usable and only lets a server grow them.
pub const MAX_ANNOUNCED_STREAMS: usize = 1 << 20;
/// Longest session id and ticket nonce accepted (ours are 22 and 32 characters).
const MAX_ID_LEN: usize = 256;

/// Checks a HELLO_OK that answered a HELLO asking for `asked` carriers.
pub fn check_hello_ok(ok: &HelloOk, asked: u32) -> Result<(), ClientError> {
    problem(ok, asked).map_or(Ok(()), |p| {
        Err(ClientError::BadServer(format!("invalid HELLO_OK: {p}")))
    })
}

fn problem(ok: &HelloOk, asked: u32) -> Option<String> {
    if ok.stream_window == 0 || ok.session_window == 0 {
        return Some(format!(
            "a flow-control window of 0 (streamWindow {}, sessionWindow {}) would stall every stream",
            ok.stream_window, ok.session_window
        ));
    }
    if ok.max_streams == Some(0) {
        return Some("maxStreams 0 would refuse every stream".into());
    }
    if ok.session_id.is_empty() || ok.session_id.len() > MAX_ID_LEN {
        return Some(format!(
            "a session id of {} bytes (1..{MAX_ID_LEN})",
            ok.session_id.len()
        ));
    }
    let granted = ok.connections_granted.unwrap_or(1);
    if !(1..=MAX_CARRIERS.min(asked.max(1))).contains(&granted) {
        return Some(format!(
            "connectionsGranted {granted} is outside 1..{} (asked for {asked})",
            MAX_CARRIERS.min(asked.max(1))
        ));
    }
    let tickets = ok.join_tickets.as_deref().unwrap_or_default();
    if tickets.len() >= granted as usize {
        return Some(format!(
            "{} join tickets for {granted} carriers (at most {})",
            tickets.len(),
            granted - 1
        ));
    }
    let mut seen = [false; MAX_CARRIERS as usize];
    for ticket in tickets {
        let index = ticket.index;
        if index == 0 || index >= granted {
            return Some(format!(
                "join ticket index {index} is outside 1..{}",
                granted - 1
            ));
        }
        if std::mem::replace(&mut seen[index as usize], true) {
            return Some(format!("two join tickets for carrier {index}"));
        }
        if ticket.nonce.is_empty() || ticket.nonce.len() > MAX_ID_LEN {
            return Some(format!(
                "a join ticket nonce of {} bytes (1..{MAX_ID_LEN})",
                ticket.nonce.len()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::JoinTicket;

    fn ok(granted: Option<u32>, indices: &[u32]) -> HelloOk {
        HelloOk {
            session_id: "s_1".into(),
            resumed: false,
            resumed_binds: Vec::new(),
            connections_granted: granted,
            join_tickets: granted.map(|_| {
                indices
                    .iter()
                    .map(|&index| JoinTicket {
                        index,
                        nonce: "n".into(),
                        expires_ms: 1000,
                    })
                    .collect()
            }),
            stream_window: 1 << 20,
            session_window: 16 << 20,
            server_version: None,
            domain: None,
            max_streams: Some(4096),
        }
    }

    fn err(ok: &HelloOk, asked: u32) -> String {
        check_hello_ok(ok, asked).unwrap_err().to_string()
    }

    #[test]
    fn well_formed_answers_pass() {
        assert!(check_hello_ok(&ok(None, &[]), 1).is_ok());
        assert!(check_hello_ok(&ok(Some(4), &[1, 2, 3]), 4).is_ok());
        assert!(
            check_hello_ok(&ok(Some(2), &[1]), 4).is_ok(),
            "fewer than asked"
        );
        assert!(
            check_hello_ok(&ok(Some(3), &[2]), 4).is_ok(),
            "a ticket may be missing"
        );
    }

    #[test]
    fn hostile_answers_are_refused_with_what_is_wrong() {
        assert!(err(&ok(Some(2), &[u32::MAX]), 4).contains("index 4294967295 is outside 1..1"));
        assert!(err(&ok(Some(4), &[0]), 4).contains("index 0"));
        assert!(err(&ok(Some(4), &[1, 1]), 4).contains("two join tickets"));
        assert!(err(&ok(Some(2), &[1, 1, 1]), 4).contains("3 join tickets for 2 carriers"));
        assert!(err(&ok(Some(17), &[]), 32).contains("connectionsGranted 17"));
        assert!(err(&ok(Some(8), &[]), 4).contains("asked for 4"));
        assert!(err(&ok(Some(0), &[]), 4).contains("connectionsGranted 0"));
        let mut zero = ok(None, &[]);
        zero.stream_window = 0;
        assert!(err(&zero, 1).contains("window of 0"));
        let mut zero = ok(None, &[]);
        zero.session_window = 0;
        assert!(err(&zero, 1).contains("window of 0"));
        let mut zero = ok(None, &[]);
        zero.max_streams = Some(0);
        assert!(err(&zero, 1).contains("maxStreams 0"));
        let mut long = ok(Some(2), &[1]);
        long.join_tickets.as_mut().unwrap()[0].nonce = "n".repeat(300);
        assert!(err(&long, 2).contains("nonce of 300 bytes"));
    }
}
