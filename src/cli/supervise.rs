//! Keeps a client running: connect, bind, wait for the session to end, reconnect with backoff.
//! Permanent failures (wrong token, refused binding) end the process with a clear message.

use std::future::Future;
use std::time::Duration;

use crate::client::{Backoff, Binding, ClientError, ClientOptions, ClientSession};

/// Backoff between reconnect attempts: about 1 s doubling to 30 s.
fn reconnect_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// Runs `bind` on every fresh session until a permanent error or Ctrl-C. `bind` gets the session
/// and whether this is the first successful connection (to print the banner once).
pub async fn run<F, Fut>(opts: ClientOptions, mut bind: F) -> Result<(), ClientError>
where
    F: FnMut(ClientSession, bool) -> Fut,
    Fut: Future<Output = Result<Vec<Binding>, ClientError>>,
{
    let mut backoff = reconnect_backoff();
    let mut first = true;
    // One listener for the whole run: a Ctrl-C that comes while binding (between two selects)
    // is kept for the next one instead of being lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let session = tokio::select! {
            s = ClientSession::connect(&opts) => s,
            _ = &mut ctrl_c => return Ok(()),
        };
        let session = match session {
            Ok(s) => s,
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, "cannot connect; retrying in {:.1}s", wait.as_secs_f64());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = &mut ctrl_c => return Ok(()),
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
        backoff.reset();
        // Serve until the session ends for good; a dropped connection is resumed first, which
        // keeps every binding as it was.
        loop {
            tokio::select! {
                reason = session.closed() => {
                    tracing::warn!(%reason, "connection lost; resuming the session");
                }
                revoked = session.next_revocation() => {
                    if let Some((_, reason)) = revoked {
                        drop(bindings);
                        session.close();
                        return Err(ClientError::Closed(format!("binding revoked: {reason}")));
                    }
                }
                _ = &mut ctrl_c => {
                    drop(bindings);
                    session.close();
                    // Give GOAWAY a moment to leave.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Ok(());
                }
            }
            if session.mux().inspect(|st| st.peer_went_away()) {
                // The server said goodbye (shutdown, kill): nothing to resume.
                tracing::warn!("the server ended the session; connecting a new one");
                break;
            }
            match resume(&session, &opts).await {
                Ok(()) => tracing::info!("session resumed; every binding kept"),
                Err(e) if e.is_permanent() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot resume; connecting a new session");
                    break;
                }
            }
        }
        drop(bindings);
    }
}

/// How long a lost session is worth resuming: the server's default resume grace.
const RESUME_WINDOW: Duration = Duration::from_secs(60);

/// Resumes `session`, retrying with backoff while the server is unreachable, for as long as the
/// server may still hold the session.
async fn resume(session: &ClientSession, opts: &ClientOptions) -> Result<(), ClientError> {
    let started = tokio::time::Instant::now();
    // Short first waits: a blip is usually over in a second or two.
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(4));
    loop {
        match session.resume(opts).await {
            Ok(()) => return Ok(()),
            Err(e @ ClientError::ResumeRefused(_)) => return Err(e),
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) if started.elapsed() >= RESUME_WINDOW => return Err(e),
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, "resume failed; retrying in {}ms", wait.as_millis());
                tokio::time::sleep(wait).await;
            }
        }
    }
}
