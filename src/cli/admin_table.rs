//! `underpass admin sessions list` as a table for people: one line per session with its
//! client, peer, protocol, carriers, carriers lost, streams and bindings.

use serde_json::Value;

/// The table for the admin API's `sessions` answer.
pub fn sessions(listing: &Value) -> String {
    let header = [
        "SESSION", "CLIENT", "PEER", "PROTO", "CARRIERS", "LOST", "STREAMS", "BINDINGS",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let number = |v: &Value| {
        v.as_u64()
            .map_or_else(|| "-".to_string(), |n| n.to_string())
    };
    for s in listing["sessions"].as_array().into_iter().flatten() {
        let mut carriers = format!(
            "{}/{}",
            number(&s["carriersActive"]),
            number(&s["connectionsGranted"])
        );
        if s["parked"].as_bool() == Some(true) {
            carriers.push_str(" parked");
        }
        rows.push(vec![
            text(&s["sessionId"]),
            text(&s["client"]),
            text(&s["peerAddr"]),
            if s["isV2"].as_bool() == Some(true) {
                "v2"
            } else {
                "v1"
            }
            .to_string(),
            carriers,
            // An older server has no `carrierLosses`: "-".
            number(&s["carrierLosses"]),
            number(&s["activeStreams"]),
            bindings(&s["bindings"]),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `http demo`, `http :21000`, `tcp :22000`, `pull :15432`, `forward :5432`, space separated.
fn bindings(list: &Value) -> String {
    let items: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let kind = match (b["kind"].as_str(), b["mode"].as_str()) {
                (_, Some(mode @ ("pull" | "forward"))) => mode,
                (Some(kind), _) => kind,
                _ => "?",
            };
            let port = b["containerPort"].as_u64().unwrap_or(0);
            match (b["route"].as_str(), port) {
                (Some(route), 0) => format!("{kind} {route}"),
                (Some(route), p) => format!("{kind} {route}+:{p}"),
                (None, p) => format!("{kind} :{p}"),
            }
        })
        .collect();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_line_per_session_with_its_client() {
        let listing = json!({"sessions": [{
            "sessionId": "s_abc", "client": "alice", "peerAddr": "127.0.0.1:5000", "isV2": true,
            "connectionsGranted": 4, "carriersActive": 3, "activeStreams": 2, "parked": false,
            "carrierLosses": 5,
            "bindings": [
                {"bindId": 1, "kind": "http", "mode": "expose", "containerPort": 0, "route": "alice"},
                {"bindId": 2, "kind": "tcp", "mode": "expose", "containerPort": 21000, "route": null},
                {"bindId": 3, "kind": "tcp", "mode": "pull", "containerPort": 15432, "route": null}
            ]}], "total": 1});
        let table = sessions(&listing);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(
            lines[0].starts_with("SESSION") && lines[0].contains("CLIENT"),
            "{table}"
        );
        assert!(lines[1].starts_with("s_abc"), "{table}");
        assert!(
            lines[1].contains("alice   127.0.0.1:5000  v2     3/4       5     2"),
            "{table}"
        );
        assert!(
            lines[1].ends_with("http alice tcp :21000 pull :15432"),
            "{table}"
        );
        // The CLIENT column starts where its header does.
        assert_eq!(lines[0].find("CLIENT"), lines[1].find("alice"));
    }
}
