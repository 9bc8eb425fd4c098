//! Make a local Postgres reachable on the server's loopback, like `underpass pull 5432`.
//!
//! `cargo run --example pull -- ws://127.0.0.1:8080 TOKEN 5432`

use std::net::SocketAddr;

use underpass::client::{ClientOptions, ClientSession};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "ws://127.0.0.1:8080".into());
    let token = args.next().unwrap_or_default();
    let port: u16 = args.next().unwrap_or_else(|| "5432".into()).parse()?;
    let session = ClientSession::connect(&ClientOptions::new(server, token)).await?;
    // 0: the server picks a free loopback port and reports it.
    let binding = session
        .pull(SocketAddr::from(([127, 0, 0, 1], port)), 0)
        .await?;
    println!(
        "server-side code can now connect to 127.0.0.1:{}",
        binding.container_port()
    );
    println!("session ended: {}", session.closed().await);
    Ok(())
}
