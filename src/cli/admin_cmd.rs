//! `underpass admin`: the admin API from the command line. Prints the server's JSON pretty (or
//! the metrics text) on stdout; any non-2xx answer becomes one error line and exit status 1.

use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one admin call may take before the command gives up.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read; a listing of the server's limits is far below it.
const MAX_BODY: usize = 64 << 20;

/// Flags of `underpass admin`.
#[derive(Clone, Args)]
pub struct AdminArgs {
    /// The server's main listener (plain http://; the admin API lives under /__underpass__/).
    #[arg(
        long,
        env = "UNDERPASS_ADMIN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// The server's --admin-token.
    #[arg(
        long,
        env = "UNDERPASS_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
    /// What to ask.
    #[command(subcommand)]
    pub command: AdminCommand,
}

impl std::fmt::Debug for AdminArgs {
    /// Written by hand so the secrets show as `<redacted>`; other fields are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminArgs")
            .field("server", &self.server)
            .field("command", &self.command)
            .field(
                "admin_token",
                &crate::redact::Redacted::of(&self.admin_token),
            )
            .finish_non_exhaustive()
    }
}

/// Subcommands of `underpass admin`.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Is the server up: status and version.
    Health,
    /// Prometheus metrics text.
    Metrics,
    /// Sessions with their bindings, stream counts and the fd budget (the `tunnels` view).
    List,
    /// List or kill sessions.
    Sessions {
        /// What to do.
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// List bindings.
    Bindings {
        /// What to do.
        #[command(subcommand)]
        action: BindingsAction,
    },
    /// Re-read the server's clients file (--clients), as SIGHUP does.
    Reload,
}

/// `underpass admin sessions ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum SessionsAction {
    /// Every session, one line each (SESSION, CLIENT, PEER, ...).
    List {
        /// The admin API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Close a session after a grace period; its client sees GOAWAY "killed by admin".
    Kill {
        /// Session id (from `sessions list`).
        id: String,
        /// Milliseconds running streams get before the session closes (0-5000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=5000))]
        grace_ms: u64,
    },
}

/// `underpass admin bindings ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum BindingsAction {
    /// Every binding of every session.
    List,
}

/// Runs one admin call and prints its answer.
pub async fn run(args: AdminArgs) -> Result<(), String> {
    let base = base_url(&args.server)?;
    let (method, path) = match &args.command {
        AdminCommand::Health => (Method::GET, "/__underpass__/api/v1/health".to_string()),
        AdminCommand::Metrics => (Method::GET, "/__underpass__/metrics".to_string()),
        AdminCommand::List => (Method::GET, "/__underpass__/api/v1/tunnels".to_string()),
        AdminCommand::Sessions {
            action: SessionsAction::List { .. },
        } => (Method::GET, "/__underpass__/api/v1/sessions".to_string()),
        AdminCommand::Reload => (Method::POST, "/__underpass__/api/v1/reload".to_string()),
        AdminCommand::Sessions {
            action: SessionsAction::Kill { id, grace_ms },
        } => {
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!(
                    "'{id}' is not a session id (see `underpass admin sessions list`)"
                ));
            }
            (
                Method::DELETE,
                format!("/__underpass__/api/v1/sessions/{id}?grace_ms={grace_ms}"),
            )
        }
        AdminCommand::Bindings {
            action: BindingsAction::List,
        } => (Method::GET, "/__underpass__/api/v1/bindings".to_string()),
    };
    let url = format!("{base}{path}");
    let token = args.admin_token.as_deref().filter(|t| !t.is_empty());
    let (status, body) = tokio::time::timeout(TIMEOUT, call(method, &url, token))
        .await
        .map_err(|_| format!("no answer from {base} within {}s", TIMEOUT.as_secs()))??;
    if !status.is_success() {
        return Err(failure(status, &body, token.is_some()));
    }
    let text = String::from_utf8_lossy(&body);
    if matches!(args.command, AdminCommand::Metrics) {
        print!("{text}");
        return Ok(());
    }
    let table = matches!(
        args.command,
        AdminCommand::Sessions {
            action: SessionsAction::List { json: false }
        }
    );
    // Pretty JSON for people; a body that is not JSON (a proxy's page) is shown as it came.
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) if table => print!("{}", super::admin_table::sessions(&value)),
        Ok(value) => match serde_json::to_string_pretty(&value) {
            Ok(pretty) => println!("{pretty}"),
            Err(_) => println!("{text}"),
        },
        Err(_) => println!("{text}"),
    }
    Ok(())
}

/// The server's base URL without a trailing slash. The admin command speaks plain HTTP only, so
/// an https URL is refused with what to do instead.
fn base_url(server: &str) -> Result<String, String> {
    let server = server.trim();
    let (scheme, rest) = match server.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_string(), server),
    };
    match scheme.as_str() {
        // ws:// is the same listener: clients may have been given that URL.
        "http" | "ws" => {}
        "https" | "wss" => {
            return Err(format!(
                "{server}: https is not supported by `underpass admin`; point --server at the \
                 plain http listener (e.g. http://127.0.0.1:8080 on the server, or through ssh -L)"
            ))
        }
        _ => {
            return Err(format!(
                "{server}: unsupported scheme; use http://HOST:PORT"
            ))
        }
    }
    let url = format!("http://{}", rest.trim_end_matches('/'));
    match url.parse::<Uri>() {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(url),
        _ => Err(format!(
            "{server}: not a valid server URL (use http://HOST:PORT)"
        )),
    }
}

/// One request; the status and the whole body.
async fn call(
    method: Method,
    url: &str,
    token: Option<&str>,
) -> Result<(StatusCode, Bytes), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::new(Empty::new());
    *req.method_mut() = method;
    *req.uri_mut() = url
        .parse()
        .map_err(|e| format!("{url}: not a valid URL: {e}"))?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the admin token must be visible ASCII".to_string())?;
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("cannot reach the admin API at {url}: {}", error_chain(&e)))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer from {url}: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// The one error line for a non-2xx answer: the server's `error` field when it sent one.
fn failure(status: StatusCode, body: &[u8], sent_token: bool) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            text.lines().next().unwrap_or("").trim().to_string()
        });
    let hint = if status == StatusCode::UNAUTHORIZED && !sent_token {
        " (pass --admin-token or set UNDERPASS_ADMIN_TOKEN)"
    } else {
        ""
    };
    format!("admin API answered {status}: {message}{hint}")
}

/// An error and its causes on one line ("client error (Connect): tcp connect error: ...").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(
            base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(base_url("127.0.0.1:9000").unwrap(), "http://127.0.0.1:9000");
        assert_eq!(
            base_url("ws://Example.com:80").unwrap(),
            "http://Example.com:80"
        );
        assert_eq!(base_url("http://h:1/prefix").unwrap(), "http://h:1/prefix");
        assert!(base_url("https://h")
            .unwrap_err()
            .contains("https is not supported"));
        assert!(base_url("wss://h")
            .unwrap_err()
            .contains("https is not supported"));
        assert!(base_url("ftp://h")
            .unwrap_err()
            .contains("unsupported scheme"));
        assert!(base_url("http://").is_err());
    }

    #[test]
    fn failure_lines() {
        let line = failure(
            StatusCode::NOT_FOUND,
            br#"{"error":"admin API disabled (start the server with --admin-token)"}"#,
            true,
        );
        assert_eq!(
            line,
            "admin API answered 404 Not Found: admin API disabled (start the server with --admin-token)"
        );
        let line = failure(StatusCode::UNAUTHORIZED, b"{\"error\":\"missing\"}", false);
        assert!(
            line.ends_with("(pass --admin-token or set UNDERPASS_ADMIN_TOKEN)"),
            "{line}"
        );
        let line = failure(StatusCode::BAD_GATEWAY, b"bad gateway\nmore", true);
        assert_eq!(line, "admin API answered 502 Bad Gateway: bad gateway");
    }
}
