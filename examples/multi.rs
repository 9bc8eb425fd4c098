//! Two HTTP services and a pull in one session.
//!
//! `cargo run --example multi -- ws://127.0.0.1:8080 TOKEN`

use std::net::SocketAddr;

use underpass::client::{ClientOptions, ClientSession, HttpExpose};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args.next().unwrap_or_else(|| "ws://127.0.0.1:8080".into());
    let token = args.next().unwrap_or_default();
    let session = ClientSession::connect(&ClientOptions::new(server, token)).await?;
    let web = session
        .expose_http(3000, &HttpExpose::route(Some("web".into())))
        .await?;
    let api = session
        .expose_http(5000, &HttpExpose::route(Some("api".into())))
        .await?;
    let db = session
        .pull(SocketAddr::from(([127, 0, 0, 1], 5432)), 0)
        .await?;
    println!("web -> {:?}", web.public_url());
    println!("api -> {:?}", api.public_url());
    println!(
        "postgres on the server at 127.0.0.1:{}",
        db.container_port()
    );
    println!("session ended: {}", session.closed().await);
    Ok(())
}
