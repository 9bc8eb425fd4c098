//! Which `wss://` servers a client trusts, through the binary and the library: the system's
//! store (`SSL_CERT_FILE` included), `--ca` / `UNDERPASS_CA` / `ca =` in a `start` file /
//! `ClientOptions::ca`, and a pinned self-signed certificate made by `openssl req -x509`.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::{final_error, server_process, spawn, tls_front, within, Proc, TestCa, TOKEN};
use underpass::client::{ClientError, ClientOptions, ClientSession};

/// A server, and a TLS front to it whose certificate `ca` issued for 127.0.0.1 and localhost.
async fn server_behind_tls(ca: &TestCa) -> (Proc, SocketAddr, SocketAddr) {
    let (server, addr) = server_process(&["--token", TOKEN], &[]).await;
    let front = tls_front(&ca.leaf(&["127.0.0.1", "localhost"]), addr).await;
    (server, addr, front)
}

fn http<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["http", "3000", "--server", url, "--token", TOKEN];
    args.extend_from_slice(extra);
    args
}

/// The client runs and prints its public URL.
async fn starts(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut p = spawn(args, env);
    p.expect_line("public: ").await
}

#[tokio::test]
async fn a_private_ca_is_trusted_from_the_flag_the_variable_and_ssl_cert_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("company CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let ca_path = ca_file.to_str().unwrap();
    let (_server, addr, front) = server_behind_tls(&ca).await;
    let url = format!("wss://{front}");

    let public = starts(&http(&url, &["--ca", ca_path]), &[]).await;
    assert!(public.starts_with("https://"), "{public}");
    starts(&http(&url, &[]), &[("UNDERPASS_CA", ca_path)]).await;
    // The system trust store, pointed elsewhere as OpenSSL tools allow.
    starts(&http(&url, &[]), &[("SSL_CERT_FILE", ca_path)]).await;
    starts(
        &http(&url, &[]),
        &[("SSL_CERT_DIR", dir.path().to_str().unwrap())],
    )
    .await;

    // Another CA does not vouch for it; neither does the certificate for another name.
    let other = TestCa::new("other CA").write(dir.path(), "other.pem");
    let line = final_error(&http(&url, &["--ca", other.to_str().unwrap()]), &[]).await;
    assert!(line.contains("not issued by a certificate in"), "{line}");
    let only_ip = tls_front(&ca.leaf(&["127.0.0.1"]), addr).await;
    let line = final_error(
        &http(
            &format!("wss://localhost:{}", only_ip.port()),
            &["--ca", ca_path],
        ),
        &[],
    )
    .await;
    assert!(line.contains("not valid for the name localhost"), "{line}");
    let by_name = format!("wss://localhost:{}", front.port());
    starts(&http(&by_name, &["--ca", ca_path]), &[]).await;
}

/// `openssl req -x509` as a user types it: a self-signed certificate with `CA:TRUE`.
fn openssl_self_signed(dir: &Path) -> (String, String) {
    let cert = dir.join("self.crt");
    let key = dir.join("self.key");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed (Debian package openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fp = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let fp = String::from_utf8(fp.stdout).unwrap();
    let fp = fp.trim().rsplit('=').next().unwrap().to_string();
    (cert.to_str().unwrap().to_string(), fp)
}

#[tokio::test]
async fn an_openssl_self_signed_certificate_is_explained_and_can_be_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, fingerprint) = openssl_self_signed(dir.path());
    let pem = std::fs::read_to_string(&cert_file).unwrap();
    let key = std::fs::read_to_string(dir.path().join("self.key")).unwrap();
    let cert = common::TestCert {
        cert_pem: pem,
        key_pem: key,
        der: Vec::new(),
    };
    let (_server, addr) = server_process(&["--token", TOKEN], &[]).await;
    let front = tls_front(&cert, addr).await;
    let url = format!("wss://{front}");

    // Given as a CA, it is refused in words instead of "CaUsedAsEndEntity".
    let line = final_error(&http(&url, &["--ca", &cert_file]), &[]).await;
    assert!(line.contains("openssl req -x509"), "{line}");
    assert!(!line.contains("CaUsedAsEndEntity"), "{line}");
    let hex: String = fingerprint.replace(':', "").to_ascii_lowercase();
    assert!(
        line.contains(&format!("--server-cert-sha256 {hex}")),
        "{line}"
    );

    // Pinned (as openssl prints the fingerprint, colons and all), it is used.
    starts(&http(&url, &["--server-cert-sha256", &fingerprint]), &[]).await;
}

#[tokio::test]
async fn start_takes_ca_from_its_file_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("start CA");
    ca.write(dir.path(), "ca.pem");
    let (_server, _, front) = server_behind_tls(&ca).await;
    let config = dir.path().join("underpass.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"wss://{front}\"\ntoken = \"{TOKEN}\"\nca = \"ca.pem\"\n\n[[http]]\nport = 3000\n"
        ),
    )
    .unwrap();
    let mut p = spawn(&["start", "--config", config.to_str().unwrap()], &[]);
    let line = p.expect_line("http 127.0.0.1:3000 -> ").await;
    assert!(line.starts_with("https://"), "{line}");
}

#[tokio::test]
async fn library_options_trust_a_ca_file_and_refuse_for_good_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("library CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let (_server, _, front) = server_behind_tls(&ca).await;
    let url = format!("wss://{front}");

    let session = within(
        20,
        ClientSession::connect(&ClientOptions::new(&url, TOKEN).ca(&ca_file)),
    )
    .await
    .expect("connects with the CA file");
    session.close();

    let err = within(20, ClientSession::connect(&ClientOptions::new(&url, TOKEN)))
        .await
        .expect_err("an unknown CA is refused");
    assert!(matches!(err, ClientError::Certificate { .. }), "{err}");
    assert!(err.is_permanent());

    let missing = ClientOptions::new(&url, TOKEN).ca(dir.path().join("missing.pem"));
    let err = missing.check().expect_err("a missing CA file is reported");
    assert!(
        err.is_permanent() && err.to_string().contains("missing.pem"),
        "{err}"
    );
}
