//! Publish a local HTTP service on a host route, like `underpass http 3000 --subdomain demo`.
//!
//! `cargo run --example expose -- ws://127.0.0.1:8080 TOKEN 3000`

use underpass::client::{ClientOptions, ClientSession, HttpExpose};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "ws://127.0.0.1:8080".into());
    let token = args.next().unwrap_or_default();
    let port: u16 = args.next().unwrap_or_else(|| "3000".into()).parse()?;
    let session = ClientSession::connect(&ClientOptions::new(server, token)).await?;
    let binding = session
        .expose_http(port, &HttpExpose::route(Some("demo".into())))
        .await?;
    println!(
        "route: {:?}  public url: {:?}",
        binding.subdomain(),
        binding.public_url()
    );
    println!("session ended: {}", session.closed().await);
    Ok(())
}
