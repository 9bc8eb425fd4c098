//! The hoody-compatible control listener: carriers at `/api/v1/tunnel/connect`, the admin API at
//! `/api/v1/tunnel/...`, nothing proxied.

mod common;

use std::net::SocketAddr;

use common::*;
use http::Method;
use underpass::client::ClientOptions;

const ADMIN: &str = "admin-token-for-tests";

/// An admin request to the control listener: status and body text.
async fn call(addr: SocketAddr, method: Method, path: &str) -> (u16, String) {
    let auth = format!("Bearer {ADMIN}");
    let r = request(
        addr,
        method,
        "control",
        path,
        &[("authorization", &auth)],
        "",
    )
    .await;
    (r.status.as_u16(), r.text())
}

#[tokio::test]
async fn hoody_style_paths_connect_list_scrape_and_kill() {
    let server = server_with(|c| {
        c.control_listen = Some("127.0.0.1:0".parse().unwrap());
        c.admin_token = Some(ADMIN.into());
    })
    .await;
    let control = server.control_addr().unwrap();
    for connections in [1, 4] {
        let url = format!("ws://{control}/api/v1/tunnel/connect");
        let opts = ClientOptions::new(url, TOKEN).connections(connections);
        let client = client_with(opts).await;
        let pull = client.pull(echo_server().await, 0).await.unwrap();
        let at = SocketAddr::from(([127, 0, 0, 1], pull.container_port()));
        assert_eq!(tcp_roundtrip(at, b"via control").await, b"via control");

        let (status, tunnels) = call(control, Method::GET, "/api/v1/tunnel/tunnels").await;
        assert_eq!(status, 200, "{tunnels}");
        let v: serde_json::Value = serde_json::from_str(&tunnels).unwrap();
        assert_eq!(v["sessions"][0]["sessionId"], client.session_id());
        assert_eq!(
            v["sessions"][0]["pullBindings"][0]["containerPort"],
            pull.container_port()
        );
        let (status, metrics) = call(control, Method::GET, "/api/v1/tunnel/metrics").await;
        assert_eq!(status, 200);
        assert!(
            metrics.contains("hoody_tunnel_sessions_active 1"),
            "{metrics}"
        );

        let kill = format!("/api/v1/tunnel/sessions/{}?grace_ms=0", client.session_id());
        assert_eq!(call(control, Method::DELETE, &kill).await.0, 202);
        within(5, client.closed()).await;
        let state = server.state().clone();
        within(5, async {
            while !state.sessions.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    // Public traffic is never served on the control listener.
    assert_eq!(call(control, Method::GET, "/").await.0, 404);
}
