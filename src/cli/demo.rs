//! `underpass demo`: a server, a client and a small app in one process on loopback.

use std::net::SocketAddr;

use clap::Args;

use super::demo_app;
use super::inspect_args::InspectArgs;
use crate::client::{ClientOptions, ClientSession, HttpExpose};
use crate::http::edge::token::generate_token;
use crate::server::{Server, ServerConfig};

/// Flags of `underpass demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where the demo server listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    /// The request inspector.
    pub inspect: InspectArgs,
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    let token = generate_token();
    let mut cfg = ServerConfig::local(token.clone());
    cfg.listen = args.listen;
    cfg.domain = Some("localhost".into());
    let server = Server::start(cfg).await.map_err(|e| e.to_string())?;
    let addr = server.local_addr();
    let app = demo_app::start().await.map_err(|e| e.to_string())?;
    let inspect = args.inspect.start(None).await?;
    let opts = ClientOptions::new(server.control_url(), token);
    let session = ClientSession::connect(&opts)
        .await
        .map_err(|e| e.to_string())?;
    let spec = HttpExpose {
        inspector: inspect.as_ref().map(|i| i.inspector.clone()),
        ..HttpExpose::route(Some("demo".into()))
    };
    let binding = session
        .expose_http(app.port(), &spec)
        .await
        .map_err(|e| e.to_string())?;
    let port = addr.port();
    let base = format!("http://demo.localhost:{port}");
    if let Some(i) = &inspect {
        i.inspector.set_public_url("demo", &base);
    }
    println!("open: {base}/");
    if let Some(i) = &inspect {
        println!("{}", i.line());
    }
    println!("curl -H 'Host: demo.localhost' http://127.0.0.1:{port}/");
    println!("curl -N -H 'Host: demo.localhost' http://127.0.0.1:{port}/events");
    println!("websocat -H 'Host: demo.localhost' ws://127.0.0.1:{port}/ws   # WebSocket echo");
    println!("(Ctrl-C to stop)");
    let _ = tokio::signal::ctrl_c().await;
    drop(binding);
    session.close();
    server.shutdown().await;
    drop(inspect);
    Ok(())
}
