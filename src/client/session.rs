//! A connected client session: binds services, answers the streams the server opens for them,
//! and opens streams for `forward` bindings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use super::connect::connect;
use super::error::ClientError;
use super::options::ClientOptions;
use super::redial::Redial;
use crate::http::local::{serve_stream, LocalService};
use crate::http::tap::Tap;
use crate::mux::{MuxStream, Session, SessionEvent};
use crate::proto::{
    Bind, BindId, BindKind, BindMode, BindRef, ErrorCode, Frame, HelloOk, StreamOpen,
};
use crate::tcp::{proxy_header, ProxyProtocol};

/// What answers the streams of one binding.
#[derive(Clone, Debug)]
pub enum StreamHandler {
    /// HTTP requests, answered by a local port or a handler.
    Http(LocalService),
    /// Raw TCP, spliced to this address (tcp expose and pull).
    Tcp(SocketAddr),
    /// Raw TCP spliced to `to`, each connection opened with a PROXY protocol header naming the
    /// visitor (tcp expose for services that log or filter by client address).
    ProxiedTcp {
        /// The local service.
        to: SocketAddr,
        /// Header version the service expects.
        version: ProxyProtocol,
    },
    /// `forward`: the client opens the streams itself.
    Forward,
}

type BindReply = Result<crate::proto::BindOk, ClientError>;

#[derive(Default)]
struct Registry {
    handlers: HashMap<BindId, StreamHandler>,
    /// Observers of http bindings (the request inspector).
    taps: HashMap<BindId, Arc<dyn Tap>>,
    pending: HashMap<String, oneshot::Sender<BindReply>>,
    revoked: HashMap<BindId, String>,
}

/// The mux serving the session now; a resume replaces it (and bumps the generation).
struct Current {
    session: Session,
    hello: HelloOk,
    generation: u64,
}

struct Inner {
    current: Mutex<Current>,
    registry: Mutex<Registry>,
    next_ref: AtomicU64,
    revoked_tx: watch::Sender<u64>,
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn session(&self) -> Session {
        self.current().session.clone()
    }
}

impl Drop for Inner {
    /// The last handle (session or binding) going away ends the session.
    fn drop(&mut self) {
        self.session()
            .close(ErrorCode::NO_ERROR, "client dropped the session");
    }
}

/// A live session to a server. Clones share it.
#[derive(Clone)]
pub struct ClientSession {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("session_id", &self.session_id())
            .finish()
    }
}

/// One binding. Dropping it (or [`Binding::close`]) unbinds it on the server.
#[derive(Debug)]
pub struct Binding {
    session: ClientSession,
    bind_id: BindId,
    container_port: u16,
    public_url: Option<String>,
    subdomain: Option<String>,
    forward_task: Option<tokio::task::JoinHandle<()>>,
    local_addr: Option<SocketAddr>,
}

impl Binding {
    /// Server-assigned id.
    pub fn bind_id(&self) -> BindId {
        self.bind_id
    }

    /// Server port (the assigned one when 0 was asked for; 0 for a route-only http expose).
    pub fn container_port(&self) -> u16 {
        self.container_port
    }

    /// Public URL reported by the server, if any.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// Host route (`@` = root), for an http expose with one.
    pub fn subdomain(&self) -> Option<&str> {
        self.subdomain.as_deref()
    }

    /// For `forward`: the client-side loopback address that leads to the server port.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Unbinds now.
    pub fn close(self) {}
}

impl Drop for Binding {
    fn drop(&mut self) {
        if let Some(task) = self.forward_task.take() {
            task.abort();
        }
        {
            let mut registry = self.session.inner.registry();
            registry.handlers.remove(&self.bind_id);
            registry.taps.remove(&self.bind_id);
        }
        let _ = self
            .session
            .inner
            .session()
            .send_control(&Frame::Unbind(BindRef {
                bind_id: self.bind_id,
            }));
    }
}

impl ClientSession {
    /// Connects (HELLO, then JOIN for each extra carrier) and starts answering streams.
    pub async fn connect(opts: &ClientOptions) -> Result<Self, ClientError> {
        let (session, hello) = connect(opts).await?;
        let redial = Redial::start(&session, &hello, opts);
        let (revoked_tx, _) = watch::channel(0);
        let client = Self {
            inner: Arc::new(Inner {
                current: Mutex::new(Current {
                    session: session.clone(),
                    hello,
                    generation: 0,
                }),
                registry: Mutex::new(Registry::default()),
                next_ref: AtomicU64::new(1),
                revoked_tx,
            }),
        };
        tokio::spawn(event_loop(
            session,
            0,
            Arc::downgrade(&client.inner),
            redial,
        ));
        Ok(client)
    }

    /// Resumes this session over a new connection after the old one dropped: the server kept
    /// every binding during its grace period, so routes, ports and [`Binding`] handles carry on
    /// unchanged. [`ClientError::ResumeRefused`] means the server no longer has the session
    /// (grace over, or restarted): connect and bind afresh then.
    pub async fn resume(&self, opts: &ClientOptions) -> Result<(), ClientError> {
        let (session, hello) = super::connect::resume(opts, &self.session_id()).await?;
        if !hello.resumed {
            session.close(ErrorCode::NO_ERROR, "not resumed");
            return Err(ClientError::ResumeRefused(
                "the server opened a new session instead".into(),
            ));
        }
        let redial = Redial::start(&session, &hello, opts);
        let generation = {
            let mut c = self.inner.current();
            c.generation += 1;
            c.session = session.clone();
            c.hello = hello;
            c.generation
        };
        tokio::spawn(event_loop(
            session,
            generation,
            Arc::downgrade(&self.inner),
            redial,
        ));
        Ok(())
    }

    /// Session id the server assigned.
    pub fn session_id(&self) -> String {
        self.inner.current().hello.session_id.clone()
    }

    /// The server's HELLO_OK (of the latest connection).
    pub fn hello(&self) -> HelloOk {
        self.inner.current().hello.clone()
    }

    /// The mux serving the session now (stats, RTT, carriers).
    pub fn mux(&self) -> Session {
        self.inner.session()
    }

    /// Resolves when the current connection of the session ends, with the reason.
    pub async fn closed(&self) -> String {
        let (code, reason) = self.inner.session().closed().await;
        format!("{reason} ({code})")
    }

    /// Ends the session with GOAWAY.
    pub fn close(&self) {
        self.inner
            .session()
            .close(ErrorCode::NO_ERROR, "client closing");
    }

    /// Why a binding was revoked (taken over), if it was.
    pub fn revoked(&self, bind_id: BindId) -> Option<String> {
        self.inner.registry().revoked.get(&bind_id).cloned()
    }

    /// Waits until some binding of this session is revoked; returns its id and reason.
    pub async fn next_revocation(&self) -> Option<(BindId, String)> {
        let mut rx = self.inner.revoked_tx.subscribe();
        loop {
            if let Some((id, why)) = self.inner.registry().revoked.iter().next() {
                return Some((*id, why.clone()));
            }
            rx.changed().await.ok()?;
        }
    }

    /// Sends BIND and waits for the answer; `handler` then answers the binding's streams. A
    /// `forward` binding listens on an ephemeral client loopback port (see
    /// [`forward`](Self::forward) to choose it).
    pub async fn bind(&self, bind: Bind, handler: StreamHandler) -> Result<Binding, ClientError> {
        self.bind_with_local_port(bind, handler, 0).await
    }

    pub(super) async fn bind_with_local_port(
        &self,
        mut bind: Bind,
        handler: StreamHandler,
        forward_local_port: u16,
    ) -> Result<Binding, ClientError> {
        // A forward listens before binding so a busy local port fails without touching the server.
        let forward_listener = if bind.mode == BindMode::Forward {
            Some(
                tokio::net::TcpListener::bind(("127.0.0.1", forward_local_port))
                    .await
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot listen on 127.0.0.1:{forward_local_port}: {e}"),
                        )
                    })?,
            )
        } else {
            None
        };
        let reference = format!("r{}", self.inner.next_ref.fetch_add(1, Ordering::Relaxed));
        bind.client_bind_ref = Value::String(reference.clone());
        let (tx, rx) = oneshot::channel();
        self.inner.registry().pending.insert(reference.clone(), tx);
        if let Err(e) = self
            .inner
            .session()
            .send_control(&Frame::Bind(bind.clone()))
        {
            self.inner.registry().pending.remove(&reference);
            return Err(ClientError::Closed(e.to_string()));
        }
        let ok = rx
            .await
            .map_err(|_| ClientError::Closed("session ended while binding".into()))??;
        self.inner
            .registry()
            .handlers
            .insert(ok.bind_id, handler.clone());
        let mut binding = Binding {
            session: self.clone(),
            bind_id: ok.bind_id,
            container_port: ok.container_port,
            public_url: ok.public_url,
            subdomain: ok.subdomain,
            forward_task: None,
            local_addr: None,
        };
        if let Some(listener) = forward_listener {
            binding.local_addr = Some(listener.local_addr()?);
            let weak = Arc::downgrade(&self.inner);
            binding.forward_task = Some(tokio::spawn(forward_loop(listener, weak, ok.bind_id)));
        }
        Ok(binding)
    }

    /// Lets `tap` observe every HTTP exchange of `binding` from now on.
    pub(super) fn set_tap(&self, binding: &Binding, tap: Arc<dyn Tap>) {
        self.inner.registry().taps.insert(binding.bind_id, tap);
    }

    /// Sends a raw control frame (tests of protocol edge cases).
    pub fn send_control(&self, frame: &Frame) -> Result<(), ClientError> {
        self.inner
            .session()
            .send_control(frame)
            .map_err(|e| ClientError::Closed(e.to_string()))
    }

    /// Opens a stream for a binding (used by `forward`).
    pub fn open_tcp(&self, bind_id: BindId) -> Result<MuxStream, ClientError> {
        self.inner
            .session()
            .open(&StreamOpen::tcp(bind_id))
            .map_err(|e| ClientError::Closed(e.to_string()))
    }
}

/// Each local connection becomes a stream on the session's current mux (a resume swaps it);
/// while the session is reconnecting, new connections are dropped.
async fn forward_loop(listener: tokio::net::TcpListener, inner: Weak<Inner>, bind_id: BindId) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Some(session) = inner.upgrade().map(|i| i.session()) else {
            return;
        };
        crate::tcp::tune(&tcp);
        match session.open(&StreamOpen::tcp(bind_id)) {
            Ok(stream) => {
                tokio::spawn(async move {
                    if let Err(e) = crate::tcp::splice(tcp, stream).await {
                        tracing::debug!(%peer, error = %e, "forwarded connection ended");
                    }
                });
            }
            Err(e) => tracing::info!(%peer, error = %e, "forward refused: session unavailable"),
        }
    }
}

fn reference_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Answers the events of one mux of the session. Holds the session state weakly so that
/// dropping every handle ends the session instead of keeping it alive from here.
async fn event_loop(session: Session, generation: u64, weak: Weak<Inner>, redial: Arc<Redial>) {
    while let Some(event) = session.next_event().await {
        let Some(inner) = weak.upgrade() else { break };
        handle_event(&inner, &redial, event);
    }
    // Anyone still waiting for a BIND answer learns that the session is gone, unless a resume
    // already moved the session to a newer mux.
    if let Some(inner) = weak.upgrade() {
        if inner.current().generation == generation {
            inner.registry().pending.clear();
        }
    }
}

fn handle_event(inner: &Inner, redial: &Redial, event: SessionEvent) {
    match event {
        SessionEvent::Incoming(stream, open) => {
            let (handler, tap) = {
                let registry = inner.registry();
                let handler = registry.handlers.get(&open.bind_id).cloned();
                (handler, registry.taps.get(&open.bind_id).cloned())
            };
            dispatch(stream, open, handler, tap);
        }
        SessionEvent::Control(Frame::BindOk(ok)) => {
            let reference = reference_of(&ok.client_bind_ref);
            if let Some(tx) = inner.registry().pending.remove(&reference) {
                let _ = tx.send(Ok(ok));
            }
        }
        SessionEvent::Control(Frame::BindErr(err)) => {
            let reference = reference_of(&err.client_bind_ref);
            if let Some(tx) = inner.registry().pending.remove(&reference) {
                let _ = tx.send(Err(ClientError::Bind {
                    code: err.code,
                    message: err.message,
                }));
            }
        }
        SessionEvent::Control(Frame::BindRevoked(revoked)) => {
            tracing::warn!(bind_id = revoked.bind_id, reason = %revoked.reason, "binding revoked");
            {
                let mut reg = inner.registry();
                reg.handlers.remove(&revoked.bind_id);
                reg.revoked.insert(revoked.bind_id, revoked.reason);
            }
            inner.revoked_tx.send_modify(|n| *n += 1);
        }
        SessionEvent::Control(Frame::Ticket(ticket)) => redial.ticket(ticket),
        SessionEvent::Control(_) => {}
        SessionEvent::CarrierLost { index, cause } => {
            if index != 0 {
                tracing::warn!(carrier = index, cause, "carrier lost; re-dialling it");
            }
            redial.carrier_lost(index);
        }
        SessionEvent::GoAway(g) => {
            tracing::warn!(code = %g.code, message = %g.message, "server is ending the session");
        }
    }
}

fn dispatch(
    mut stream: MuxStream,
    open: StreamOpen,
    handler: Option<StreamHandler>,
    tap: Option<Arc<dyn Tap>>,
) {
    match (handler, open.kind) {
        (Some(StreamHandler::Http(service)), BindKind::Http) => {
            tokio::spawn(serve_stream(stream, open, service, tap));
        }
        (Some(StreamHandler::Tcp(addr)), BindKind::Tcp) => {
            tokio::spawn(crate::tcp::connect_and_splice(
                addr,
                stream,
                "local service",
                Bytes::new(),
            ));
        }
        (Some(StreamHandler::ProxiedTcp { to, version }), BindKind::Tcp) => {
            let parse = |a: &Option<String>| a.as_deref().and_then(|a| a.parse().ok());
            let header = proxy_header(version, parse(&open.visitor_addr), parse(&open.server_addr));
            tokio::spawn(crate::tcp::connect_and_splice(
                to,
                stream,
                "local service",
                Bytes::from(header),
            ));
        }
        _ => stream.reset(ErrorCode::REFUSED_STREAM, "no binding for this stream"),
    }
}
