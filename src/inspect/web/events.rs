//! `GET /api/events`: the live list as Server-Sent Events. The first event (`reset`) carries
//! every kept exchange and the tunnels; then one `exchange` event per change (a summary; the
//! page fetches details on demand) and `clear` when the list is emptied. A reader that falls
//! behind the broadcast gets a fresh `reset` instead of an unbounded queue.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{interval_at, Instant, Interval};

use crate::http::body::ProxyBody;
use crate::inspect::{ngrok, InspectEvent, Inspector};

/// A comment line this often keeps proxies and the browser from timing the stream out.
const KEEPALIVE: Duration = Duration::from_secs(15);

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn reset(inspector: &Inspector) -> Bytes {
    let requests: Vec<Value> = inspector
        .exchanges()
        .iter()
        .map(|e| ngrok::summary(&e.snapshot()))
        .collect();
    let tunnels: Vec<Value> = inspector.tunnels().iter().map(ngrok::tunnel).collect();
    event("reset", &json!({"requests": requests, "tunnels": tunnels}))
}

struct Feed {
    inspector: Inspector,
    rx: tokio::sync::broadcast::Receiver<InspectEvent>,
    first: Option<Bytes>,
    keepalive: Interval,
}

impl Feed {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        tokio::select! {
            ev = self.rx.recv() => Some(match ev {
                Ok(InspectEvent::Cleared) => event("clear", &json!({})),
                Ok(
                    InspectEvent::Started(e)
                    | InspectEvent::Responded(e)
                    | InspectEvent::Completed(e),
                ) => event("exchange", &ngrok::summary(&e.snapshot())),
                Err(RecvError::Lagged(_)) => reset(&self.inspector),
                Err(RecvError::Closed) => return None,
            }),
            _ = self.keepalive.tick() => Some(Bytes::from_static(b": keepalive\n\n")),
        }
    }
}

/// The event stream response.
pub(super) fn response(inspector: Inspector) -> Response<ProxyBody> {
    // Subscribe before the snapshot: a change in between shows twice, never not at all.
    let rx = inspector.subscribe();
    let feed = Feed {
        first: Some(reset(&inspector)),
        inspector,
        rx,
        keepalive: interval_at(Instant::now() + KEEPALIVE, KEEPALIVE),
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let bytes = feed.next().await?;
        Some((Ok::<_, std::io::Error>(Frame::data(bytes)), feed))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp
}
