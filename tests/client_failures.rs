//! Final versus retried failures of a client, through the binary: what retrying cannot fix
//! (a refused certificate or pin, a wrong token, a refused binding, a 4xx from the proxy in
//! front of the server) ends the client at once with exit status 1 and one line; what may pass
//! (a refused connection, a timeout, a name that does not resolve, a 5xx from the proxy) is
//! retried with backoff.

mod common;

use std::net::SocketAddr;

use common::{
    final_error, retrying, server_process, tls_front, unused_addr, TestCa, TestCert, TOKEN,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// `underpass http 3000 --server URL --token TOKEN` plus `extra`.
fn http<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["http", "3000", "--server", url, "--token", TOKEN];
    args.extend_from_slice(extra);
    args
}

/// An HTTP server that answers every request with `status_line` and closes, like a reverse
/// proxy whose upstream is down (502) or that has no such location (404).
async fn answering(status_line: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let body = "from the proxy";
                let answer = format!(
                    "HTTP/1.1 {status_line}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// A server that accepts connections and never says a word.
async fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    addr
}

#[tokio::test]
async fn a_refused_connection_is_retried_with_backoff() {
    let url = format!("ws://{}", unused_addr());
    let (_p, seen) = retrying(&http(&url, &[]), &[], 2).await;
    // About 1 s, then about 2 s: each wait is jittered within the upper half of its step.
    let wait = |line: &str| -> f64 {
        let rest = line.split("retrying in ").nth(1).expect("a wait");
        rest.split('s').next().unwrap().parse().expect("seconds")
    };
    let (first, second) = (wait(&seen[0]), wait(&seen[1]));
    assert!((0.5..=1.0).contains(&first), "{seen:?}");
    assert!((1.0..=2.0).contains(&second), "{seen:?}");
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_retried() {
    // .invalid never resolves (RFC 6761); the resolver may come back later, so retry.
    let (_p, seen) = retrying(&http("ws://no-such-host.invalid:8080", &[]), &[], 1).await;
    assert!(seen[0].contains("no-such-host.invalid"), "{seen:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_retried_after_the_timeout() {
    let url = format!("ws://{}", silent().await);
    let (_p, seen) = retrying(&http(&url, &[]), &[], 1).await;
    assert!(seen[0].contains("timed out"), "{seen:?}");
}

#[tokio::test]
async fn a_5xx_from_the_proxy_in_front_is_retried() {
    let url = format!("ws://{}", answering("502 Bad Gateway").await);
    let (_p, seen) = retrying(&http(&url, &[]), &[], 1).await;
    assert!(seen[0].contains("HTTP 502 Bad Gateway"), "{seen:?}");
}

#[tokio::test]
async fn a_4xx_from_the_proxy_in_front_is_final() {
    let url = format!("ws://{}", answering("404 Not Found").await);
    let line = final_error(&http(&url, &[]), &[]).await;
    assert!(line.contains("HTTP 404 Not Found"), "{line}");
    assert!(line.contains("/__underpass__/control"), "{line}");
}

#[tokio::test]
async fn a_wrong_token_and_a_refused_binding_are_final() {
    let (_server, addr) = server_process(&["--token", TOKEN], &[]).await;
    let url = format!("ws://{addr}");
    let line = final_error(&["http", "3000", "--server", &url, "--token", "wrong"], &[]).await;
    assert!(line.contains("refused the token"), "{line}");

    let mut holder = common::spawn(&http(&url, &["--subdomain", "taken"]), &[]);
    holder.expect_line("public:").await;
    let line = final_error(&http(&url, &["--subdomain", "taken"]), &[]).await;
    assert!(line.contains("ROUTE_TAKEN"), "{line}");
}

#[tokio::test]
async fn an_unknown_issuer_is_final_and_says_what_to_pass() {
    let (_server, addr) = server_process(&["--token", TOKEN], &[]).await;
    let leaf = TestCa::new("private CA").leaf(&["127.0.0.1"]);
    let front = tls_front(&leaf, addr).await;
    let url = format!("wss://{front}");
    let line = final_error(&http(&url, &[]), &[]).await;
    assert!(
        line.contains("the server's certificate is issued by an unknown authority"),
        "{line}"
    );
    assert!(line.contains("--ca FILE"), "{line}");
    assert!(
        line.contains(&format!("--server-cert-sha256 {}", leaf.sha256_hex())),
        "{line}"
    );
}

#[tokio::test]
async fn a_pin_mismatch_is_final_over_wss_and_quic() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = TestCert::self_signed_ca(&["127.0.0.1"]);
    let (cert, key) = leaf.write(dir.path(), "server");
    let (mut server, addr) = server_process(
        &[
            "--token",
            TOKEN,
            "--quic-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let quic = server.expect_line("quic: ").await;
    let wrong = "ab".repeat(32);
    let line = final_error(&http(&quic, &["--server-cert-sha256", &wrong]), &[]).await;
    assert!(line.contains("did not match the pinned one"), "{line}");
    assert!(line.contains(&leaf.sha256_hex()), "{line}");

    let front = tls_front(&leaf, addr).await;
    let wss = format!("wss://{front}");
    let line = final_error(&http(&wss, &["--server-cert-sha256", &wrong]), &[]).await;
    assert!(line.contains("did not match the pinned one"), "{line}");
}
