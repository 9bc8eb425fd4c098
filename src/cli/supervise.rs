//! Keeps a client running: connect, bind, wait for the session to end, reconnect with backoff.
//! Permanent failures (wrong token, refused binding) end the process with a clear message.

use std::future::Future;
use std::time::Duration;

use crate::client::{Binding, ClientError, ClientOptions, ClientSession};

/// Backoff between reconnect attempts: 1 s doubling to 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.min(5)).min(30))
}

/// Runs `bind` on every fresh session until a permanent error or Ctrl-C. `bind` gets the session
/// and whether this is the first successful connection (to print the banner once).
pub async fn run<F, Fut>(opts: ClientOptions, mut bind: F) -> Result<(), ClientError>
where
    F: FnMut(ClientSession, bool) -> Fut,
    Fut: Future<Output = Result<Vec<Binding>, ClientError>>,
{
    let mut attempt = 0u32;
    let mut first = true;
    loop {
        let session = tokio::select! {
            s = ClientSession::connect(&opts) => s,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let session = match session {
            Ok(s) => s,
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                let wait = backoff(attempt);
                tracing::warn!(error = %e, "cannot connect; retrying in {}s", wait.as_secs());
                attempt += 1;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        };
        let bindings = match bind(session.clone(), first).await {
            Ok(b) => b,
            Err(e) => {
                session.close();
                return Err(e);
            }
        };
        if !first {
            tracing::info!("reconnected");
        }
        first = false;
        attempt = 0;
        tokio::select! {
            reason = session.closed() => {
                tracing::warn!(%reason, "session ended; reconnecting");
            }
            revoked = session.next_revocation() => {
                if let Some((_, reason)) = revoked {
                    drop(bindings);
                    session.close();
                    return Err(ClientError::Closed(format!("binding revoked: {reason}")));
                }
            }
            _ = tokio::signal::ctrl_c() => {
                drop(bindings);
                session.close();
                // Give GOAWAY a moment to leave.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(());
            }
        }
        drop(bindings);
        tokio::time::sleep(backoff(0)).await;
    }
}
