//! Serve an HTTP handler to the internet with no local socket at all.
//!
//! `cargo run --example serve -- ws://127.0.0.1:8080 TOKEN` (start `underpass server` first).

use bytes::Bytes;
use underpass::client::{serve, ClientOptions, HttpExpose};
use underpass::http::body::full;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "ws://127.0.0.1:8080".into());
    let token = args
        .next()
        .or_else(|| std::env::var("UNDERPASS_TOKEN").ok())
        .unwrap_or_default();
    let opts = ClientOptions::new(server, token);
    let (session, binding) = serve(
        &opts,
        &HttpExpose::route(Some("hello".into())),
        |req| async move {
            let text = format!(
                "hello from a handler: {} {}\n",
                req.method(),
                req.uri().path()
            );
            http::Response::new(full(Bytes::from(text)))
        },
    )
    .await?;
    println!("serving on route '{}'", binding.subdomain().unwrap_or("@"));
    println!("session ended: {}", session.closed().await);
    Ok(())
}
