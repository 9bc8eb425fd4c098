//! A custom transport: the mux runs over anything that implements `Transport`. Here, in-memory
//! carriers with a 2 ms one-way delay, as a test bed for latency behaviour.
//!
//! `cargo run --example custom_transport`

use std::time::{Duration, Instant};

use bytes::Bytes;
use underpass::mux::{MuxConfig, Role, Session, SessionEvent};
use underpass::proto::StreamOpen;
use underpass_transports::mem::{pair_with, MemOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (a, b, _link) = pair_with(MemOptions {
        delay: Some(Duration::from_millis(2)),
    });
    let server = Session::start(MuxConfig::new(Role::Server), a);
    let client = Session::start(MuxConfig::new(Role::Client), b);
    tokio::spawn(async move {
        while let Some(SessionEvent::Incoming(stream, _)) = client.next_event().await {
            let (mut r, mut w) = stream.split();
            while let Ok(Some(chunk)) = r.recv_chunk().await {
                let _ = w.send(chunk).await;
            }
            let _ = w.finish();
        }
    });
    let started = Instant::now();
    let (mut r, mut w) = server.open(&StreamOpen::tcp(1))?.split();
    w.send(Bytes::from_static(b"ping over a custom carrier"))
        .await?;
    w.finish()?;
    let echoed = r.recv_chunk().await?.unwrap_or_default();
    println!(
        "{:?} back after {:?}",
        String::from_utf8_lossy(&echoed),
        started.elapsed()
    );
    Ok(())
}
