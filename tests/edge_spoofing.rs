//! Client-address headers a visitor could forge: from an untrusted peer, every spelling of
//! them (underscores instead of dashes, the CDN-specific names) is removed before the app, and
//! only the `X-Forwarded-*` / `X-Real-IP` the edge wrote itself arrive. Sent as raw bytes, so
//! the header names reach the server exactly as written.

mod common;

use common::*;

/// Headers apps and frameworks read as "the client's address" or "the public host".
const FORGED: &[&str] = &[
    "X_Forwarded_For",
    "X_Forwarded_Host",
    "X_Forwarded_Proto",
    "X-Forwarded_For",
    "X_Real_IP",
    "X-Real-IP",
    "True-Client-IP",
    "True_Client_IP",
    "X-Client-IP",
    "X_Client_IP",
    "CF-Connecting-IP",
    "CF_Connecting_IP",
    "X-Cluster-Client-IP",
    "Fastly-Client-IP",
    "Forwarded",
    "Forwarded-For",
    "X-Forwarded",
    "X-Forwarded-Port",
];

fn forged_request(host: &str) -> String {
    let mut req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for name in FORGED {
        req.push_str(&format!("{name}: 6.6.6.6\r\n"));
    }
    req.push_str("X-Other: kept\r\n\r\n");
    req
}

/// Names the app saw, lowercased.
fn names(seen: &serde_json::Value) -> Vec<String> {
    seen["headers"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.to_ascii_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_client_address_headers_never_reach_the_app() {
    let demo = demo(echo_app("app").await).await;
    let r = raw_http(demo.addr(), &forged_request(DEMO_HOST)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    let names = names(&seen);
    for forged in FORGED {
        let lower = forged.to_ascii_lowercase();
        if lower == "x-real-ip" {
            continue;
        }
        assert!(
            !names.contains(&lower),
            "{forged} reached the app: {names:?}"
        );
    }
    assert_eq!(seen_one(&seen, "x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        seen_one(&seen, "x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        seen_one(&seen, "x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(
        seen_one(&seen, "x-forwarded-host").as_deref(),
        Some(DEMO_HOST)
    );
    assert_eq!(seen_one(&seen, "x-other").as_deref(), Some("kept"));
    let text = seen.to_string();
    assert!(
        !text.contains("6.6.6.6"),
        "a forged value reached the app: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_keeps_its_cdn_headers_but_not_underscore_spellings() {
    let server = server_with(|cfg| {
        cfg.domain = Some(DOMAIN.into());
        cfg.trusted_proxies =
            underpass::http::edge::trusted_proxy::TrustedProxies::parse(&["loopback"]).unwrap();
    })
    .await;
    let client = client(&server).await;
    let _b = client
        .expose_http(echo_app("app").await, &named("demo"))
        .await
        .unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {DEMO_HOST}\r\nConnection: close\r\nCF-Connecting-IP: 198.51.100.7\r\n\
         X-Forwarded-For: 198.51.100.7\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n"
    );
    let r = raw_http(server.local_addr(), &req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(
        seen_one(&seen, "cf-connecting-ip").as_deref(),
        Some("198.51.100.7"),
        "the proxy's own statement passes"
    );
    assert_eq!(
        seen_one(&seen, "x-forwarded-for").as_deref(),
        Some("198.51.100.7, 127.0.0.1")
    );
    assert!(!names(&seen).contains(&"x_forwarded_for".to_string()));
}
