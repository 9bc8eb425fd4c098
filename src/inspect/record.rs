//! One exchange as the inspector keeps it: the request head, both bodies as they pass, the
//! response head, timings and the outcome. The data path feeds it through
//! [`ExchangeTap`](crate::http::tap::ExchangeTap); readers take a [`Snapshot`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::capture::{BodyCapture, BodyState};
use super::packed::PackedHeaders;
use super::store::InspectEvent;
use crate::http::tap::{ExchangeTap, Side};
use crate::proto::{first_header, StreamOpen};

/// A request as the client received it from the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method (`GET`, `POST`, ...).
    pub method: String,
    /// Request target: path and query.
    pub target: String,
    /// Headers in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// A protocol upgrade (WebSocket).
    pub upgrade: bool,
}

impl RequestHead {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }

    /// The head of a request from the tunnel.
    fn of(open: &StreamOpen) -> Self {
        Self {
            method: open.method.clone().unwrap_or_else(|| "GET".into()),
            target: open.target.clone().unwrap_or_else(|| "/".into()),
            headers: open.headers.clone(),
            upgrade: open.is_upgrade,
        }
    }

    /// The visitor's address: the first `X-Forwarded-For` entry the server wrote.
    pub fn visitor(&self) -> Option<String> {
        let first = self.header("x-forwarded-for")?.split(',').next()?.trim();
        (!first.is_empty()).then(|| first.to_string())
    }
}

/// The app's response head (or the error the client answered in its place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Headers in order, names in lower case.
    pub headers: Vec<(String, String)>,
}

/// Bytes an upgraded connection (WebSocket) moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpgradeTraffic {
    /// From the visitor to the app.
    pub to_app: u64,
    /// From the app to the visitor.
    pub from_app: u64,
}

/// Where an exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeState {
    /// Waiting for the response head.
    Waiting,
    /// The response (or an upgraded connection) is streaming.
    Streaming,
    /// Over, with a whole response.
    Complete,
    /// Over, with the response cut short.
    Cut,
    /// Over without a response: the visitor left first.
    NoResponse,
}

impl ExchangeState {
    /// The name used in the JSON API.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeState::Waiting => "waiting",
            ExchangeState::Streaming => "streaming",
            ExchangeState::Complete => "complete",
            ExchangeState::Cut => "cut",
            ExchangeState::NoResponse => "no_response",
        }
    }
}

/// Everything known about an exchange at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Id (16 hex digits, as ngrok's).
    pub id: String,
    /// The tunnel (binding) that answered it.
    pub tunnel_name: String,
    /// For a replay: the id of the exchange it replays.
    pub replay_of: Option<String>,
    /// When the request reached the client.
    pub started_at: SystemTime,
    /// The request head.
    pub request: RequestHead,
    /// The request body as captured.
    pub request_body: BodyCapture,
    /// The response head, once it came.
    pub response: Option<ResponseHead>,
    /// The response body as captured.
    pub response_body: BodyCapture,
    /// From the request to the response head.
    pub time_to_head: Option<Duration>,
    /// From the request to the end of the exchange; `None` while it runs.
    pub duration: Option<Duration>,
    /// For an upgrade: bytes each way so far.
    pub upgrade: Option<UpgradeTraffic>,
    /// Where it stands.
    pub state: ExchangeState,
}

#[derive(Debug, Clone)]
struct Progress {
    request_body: BodyCapture,
    /// Status and headers, packed: turned into a [`ResponseHead`] when someone reads them.
    response: Option<(u16, PackedHeaders)>,
    response_body: BodyCapture,
    time_to_head: Option<Duration>,
    duration: Option<Duration>,
    upgrade: Option<UpgradeTraffic>,
}

/// A record's request.
#[derive(Debug)]
enum Request {
    /// As it came from the tunnel, shared with the data path rather than copied; made into a
    /// [`RequestHead`] when someone first reads it.
    Tunnel {
        open: Arc<StreamOpen>,
        head: OnceLock<RequestHead>,
    },
    /// Made here (a replay).
    Made(RequestHead),
}

/// The shared state of one exchange.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) tunnel: Arc<str>,
    pub(crate) started_at: SystemTime,
    request: Request,
    pub(crate) replay_of: Option<String>,
    started: Instant,
    cap: usize,
    /// False once evicted or cleared: its later changes are not announced.
    retained: AtomicBool,
    progress: Mutex<Progress>,
    events: broadcast::Sender<InspectEvent>,
}

/// Where a record's request head comes from.
pub(crate) enum NewRequest {
    /// A request from the tunnel, as the client answers it.
    Open(Arc<StreamOpen>),
    /// A head made here (a replay).
    Head(RequestHead),
}

/// What a new record starts from.
pub(crate) struct NewRecord {
    pub(crate) id: String,
    pub(crate) tunnel: Arc<str>,
    pub(crate) request: NewRequest,
    pub(crate) replay_of: Option<String>,
    /// A body known up front (a replay); `None`: it streams in through the tap.
    pub(crate) body: Option<Bytes>,
    pub(crate) cap: usize,
}

impl Record {
    pub(crate) fn new(new: NewRecord, events: broadcast::Sender<InspectEvent>) -> Self {
        let request_body = match &new.body {
            Some(body) => BodyCapture::whole(body, new.cap),
            None => BodyCapture::new(),
        };
        let request = match new.request {
            NewRequest::Open(open) => Request::Tunnel {
                open,
                head: OnceLock::new(),
            },
            NewRequest::Head(head) => Request::Made(head),
        };
        Self {
            id: new.id,
            tunnel: new.tunnel,
            started_at: SystemTime::now(),
            request,
            replay_of: new.replay_of,
            started: Instant::now(),
            cap: new.cap,
            retained: AtomicBool::new(true),
            progress: Mutex::new(Progress {
                request_body,
                response: None,
                response_body: BodyCapture::new(),
                time_to_head: None,
                duration: None,
                upgrade: None,
            }),
            events,
        }
    }

    /// The request head (made on the first call for a request from the tunnel).
    pub(crate) fn request(&self) -> &RequestHead {
        match &self.request {
            Request::Tunnel { open, head } => head.get_or_init(|| RequestHead::of(open)),
            Request::Made(head) => head,
        }
    }

    /// The request's first `Content-Length`, read without making the whole head.
    fn declared_length(&self) -> Option<u64> {
        let headers = match &self.request {
            Request::Tunnel { open, .. } => &open.headers,
            Request::Made(head) => &head.headers,
        };
        first_header(headers, "content-length").and_then(|v| v.trim().parse().ok())
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn forget(&self) {
        self.retained.store(false, Ordering::Relaxed);
    }

    pub(crate) fn is_retained(&self) -> bool {
        self.retained.load(Ordering::Relaxed)
    }

    /// Tells subscribers, unless the exchange was already dropped from the store.
    pub(crate) fn announce(self: &Arc<Self>, make: fn(Exchange) -> InspectEvent) {
        if self.is_retained() {
            // No subscriber is not an error.
            let _ = self.events.send(make(Exchange(self.clone())));
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let p = self.progress().clone();
        let state = match (&p.response, p.duration) {
            (None, None) => ExchangeState::Waiting,
            (Some(_), None) => ExchangeState::Streaming,
            (None, Some(_)) => ExchangeState::NoResponse,
            (Some(_), Some(_)) if p.response_body.state() == BodyState::Cut => ExchangeState::Cut,
            (Some(_), Some(_)) => ExchangeState::Complete,
        };
        Snapshot {
            id: self.id.clone(),
            tunnel_name: self.tunnel.to_string(),
            replay_of: self.replay_of.clone(),
            started_at: self.started_at,
            request: self.request().clone(),
            request_body: p.request_body,
            response: p.response.map(|(status, headers)| ResponseHead {
                status,
                headers: headers.unpack(),
            }),
            response_body: p.response_body,
            time_to_head: p.time_to_head,
            duration: p.duration,
            upgrade: p.upgrade,
            state,
        }
    }
}

/// The data path's view: every call is a short lock, never an await.
pub(crate) struct Watched(pub(crate) Arc<Record>);

impl ExchangeTap for Watched {
    fn chunk(&self, side: Side, data: &Bytes) {
        let cap = self.0.cap;
        let mut p = self.0.progress();
        match side {
            Side::Request => p.request_body.push(data, cap),
            Side::Response => p.response_body.push(data, cap),
        }
    }

    fn wants(&self, side: Side) -> bool {
        let p = self.0.progress();
        let body = match side {
            Side::Request => &p.request_body,
            Side::Response => &p.response_body,
        };
        body.state() == BodyState::Open && body.captured() < self.0.cap
    }

    fn body_end(&self, side: Side, complete: bool) {
        let mut p = self.0.progress();
        let late = side == Side::Request
            && p.request_body.state() == BodyState::Open
            && p.duration.is_some();
        match side {
            // With a Content-Length, the body is whole when it has that many bytes: hyper stops
            // reading at that length without polling the end, and a stream that ends short
            // (a visitor that never sent the body it announced) is not whole.
            Side::Request => {
                let whole = match self.0.declared_length() {
                    Some(length) => length == p.request_body.total(),
                    None => complete,
                };
                p.request_body.end(whole)
            }
            Side::Response => p.response_body.end(complete),
        }
        if late {
            // The request body ended after the response (read for the inspector alone).
            p.request_body.compact();
            drop(p);
            self.0.announce(InspectEvent::Completed);
        }
    }

    fn response_head(&self, status: StatusCode, headers: &HeaderMap) {
        {
            let mut p = self.0.progress();
            p.response = Some((status.as_u16(), PackedHeaders::of(headers)));
            p.time_to_head = Some(self.0.started.elapsed());
            if status == StatusCode::SWITCHING_PROTOCOLS {
                // A 101 has no body: raw bytes follow, counted as upgrade traffic.
                p.upgrade.get_or_insert_with(UpgradeTraffic::default);
                p.response_body.end(true);
            }
        }
        self.0.announce(InspectEvent::Responded);
    }

    fn upgraded_bytes(&self, to_app: u64, from_app: u64) {
        let mut p = self.0.progress();
        let traffic = p.upgrade.get_or_insert_with(UpgradeTraffic::default);
        traffic.to_app += to_app;
        traffic.from_app += from_app;
    }

    fn finish(&self, _status: StatusCode) {
        {
            let mut guard = self.0.progress();
            let p = &mut *guard;
            p.duration = Some(self.0.started.elapsed());
            if p.response.is_some() {
                // The answer is out (or was cut): a body still "open" will not grow any more.
                p.response_body.end(false);
            }
            for body in [&mut p.request_body, &mut p.response_body] {
                if body.state() != BodyState::Open {
                    body.compact();
                }
            }
        }
        self.0.announce(InspectEvent::Completed);
    }
}

/// A handle on one captured exchange; clones share it. Read it with [`Exchange::snapshot`].
#[derive(Debug, Clone)]
pub struct Exchange(pub(crate) Arc<Record>);

impl Exchange {
    /// Id (16 hex digits, as ngrok's).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The tunnel (binding) that answered it.
    pub fn tunnel_name(&self) -> &str {
        &self.0.tunnel
    }

    /// The request head.
    pub fn request(&self) -> &RequestHead {
        self.0.request()
    }

    /// For a replay: the id of the exchange it replays.
    pub fn replay_of(&self) -> Option<&str> {
        self.0.replay_of.as_deref()
    }

    /// Everything known about it now.
    pub fn snapshot(&self) -> Snapshot {
        self.0.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(headers: &[(&str, &str)]) -> Watched {
        let (events, _) = broadcast::channel(4);
        let request = RequestHead {
            method: "POST".into(),
            target: "/".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            upgrade: false,
        };
        let new = NewRecord {
            id: "0".into(),
            tunnel: "t".into(),
            request: NewRequest::Head(request),
            replay_of: None,
            body: None,
            cap: 1024,
        };
        Watched(Arc::new(Record::new(new, events)))
    }

    #[test]
    fn a_tunnel_request_is_read_from_its_shared_head() {
        let (events, _) = broadcast::channel(4);
        let open = StreamOpen {
            method: Some("PUT".into()),
            target: Some("/up?x=1".into()),
            headers: vec![("Content-Length".into(), " 3 ".into())],
            is_upgrade: false,
            ..StreamOpen::tcp(1)
        };
        let new = NewRecord {
            id: "0".into(),
            tunnel: "t".into(),
            request: NewRequest::Open(Arc::new(open)),
            replay_of: None,
            body: None,
            cap: 1024,
        };
        let watched = Watched(Arc::new(Record::new(new, events)));
        watched.chunk(Side::Request, &Bytes::from_static(b"abc"));
        watched.body_end(Side::Request, false);
        let mut headers = HeaderMap::new();
        headers.insert("x-a", http::HeaderValue::from_static("b"));
        watched.response_head(StatusCode::CREATED, &headers);
        let snap = watched.0.snapshot();
        assert_eq!(snap.request_body.state(), BodyState::Complete);
        assert_eq!(snap.request.method, "PUT");
        assert_eq!(snap.request.target, "/up?x=1");
        assert_eq!(snap.request.header("content-length"), Some(" 3 "));
        let response = snap.response.expect("a response head");
        assert_eq!(response.status, 201);
        assert_eq!(response.headers, vec![("x-a".into(), "b".into())]);
    }

    #[test]
    fn a_request_body_is_whole_when_it_has_its_content_length() {
        let ten = Bytes::from_static(b"0123456789");
        // Ended cleanly but short of what it announced: not whole.
        let short = watched(&[("content-length", "50")]);
        short.chunk(Side::Request, &ten);
        short.body_end(Side::Request, true);
        assert_eq!(short.0.snapshot().request_body.state(), BodyState::Cut);
        // Dropped by hyper once it had its length, without the end polled: whole.
        let exact = watched(&[("content-length", "10")]);
        exact.chunk(Side::Request, &ten);
        exact.body_end(Side::Request, false);
        assert_eq!(exact.0.snapshot().request_body.state(), BodyState::Complete);
        // Without a length, the end decides.
        let chunked = watched(&[]);
        chunked.chunk(Side::Request, &ten);
        chunked.body_end(Side::Request, true);
        assert_eq!(
            chunked.0.snapshot().request_body.state(),
            BodyState::Complete
        );
    }
}
