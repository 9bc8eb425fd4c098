//! The admin API as an operator reads it: the JSON of `sessions`, and single values out of the
//! Prometheus text.

use std::net::SocketAddr;

use http::{Method, StatusCode};
use serde_json::Value;

use super::request;

/// An authorized admin GET that must answer 200; the body as text.
pub async fn admin_text(addr: SocketAddr, admin_token: &str, path: &str) -> String {
    let auth = format!("Bearer {admin_token}");
    let r = request(
        addr,
        Method::GET,
        &addr.to_string(),
        path,
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    r.text()
}

/// The sessions of `GET /__underpass__/api/v1/sessions`.
pub async fn admin_sessions(addr: SocketAddr, admin_token: &str) -> Vec<Value> {
    let text = admin_text(addr, admin_token, "/__underpass__/api/v1/sessions").await;
    let v: Value = serde_json::from_str(&text).unwrap();
    v["sessions"].as_array().cloned().unwrap_or_default()
}

/// The value of the series `name` (with its labels, exactly as printed) in the metrics text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// The metrics text.
pub async fn admin_metrics(addr: SocketAddr, admin_token: &str) -> String {
    admin_text(addr, admin_token, "/__underpass__/metrics").await
}
