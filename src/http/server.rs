//! The accept loop and the connections: what `axum::serve` does, plus the limits it lacks.
//!
//! - **A cap on connections** (`max_connections`): each connection holds a permit. Past the cap a
//!   new connection is still accepted, answered `503` JSON at once (with `Retry-After: 1`) and
//!   closed, rather than left in the kernel's backlog: a client or load balancer learns at once
//!   that this replica is full and can go elsewhere. At most `REFUSALS_IN_FLIGHT` such answers
//!   are written at a time; past that a connection is closed without one.
//! - **Header read timeout**: a connection has `header_read_timeout` from its accept, or from
//!   the first byte of its next request, to deliver the request's headers; a slowloris client is
//!   disconnected then (without an answer, as nginx and Go do).
//! - **Idle timeout**: a keep-alive connection waiting for its next request is closed after
//!   `idle_timeout`. hyper cannot do both: its `header_read_timeout` starts as soon as it waits
//!   for a head, so on a keep-alive connection it runs from the end of the previous response and
//!   is the idle timeout as well. It is therefore off, and a watchdog per connection keeps the
//!   phase (`Head` → `Busy` while requests run → `Idle` → `Head` at the next byte) and its
//!   deadline.
//! - **Request (body) timeout**: every request body fails after `request_timeout` from the end of
//!   its headers (`limits::DeadlineBody`), which the handlers answer with 408 and close.
//! - **hyper's own answers** to a request it cannot parse (400 bad request line, 414, 431 headers
//!   over `MAX_HEAD`) are bare status lines written before any handler runs; the connection's
//!   I/O recognises them and writes the same status as our JSON error with an `x-request-id`.
//! - **Graceful shutdown**: when `shutdown` completes the listener closes, idle connections
//!   close, and in-flight requests finish before `serve` returns.
//! - Handlers still see the peer address as `ConnectInfo<SocketAddr>`.

use super::limits::DeadlineBody;
use crate::metrics::{HTTP_CONNECTIONS_OPEN, HTTP_CONNECTIONS_REFUSED, HTTP_CONNECTIONS_TIMED_OUT};
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// Refusal answers (past the connection cap) being written at once.
const REFUSALS_IN_FLIGHT: usize = 64;
/// File descriptors kept free for everything but client connections: the database pool, the
/// SQLite files, the refusal answers, logs.
const FD_HEADROOM: u64 = 128;
/// The default cap never exceeds this, however high the open-file limit.
const DEFAULT_MAX_CONNECTIONS: u64 = 4096;
/// The largest request line plus headers hyper reads (more is answered 431).
const MAX_HEAD: usize = 64 * 1024;

/// Timeouts and the connection cap (from `Settings`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        let max_connections = match settings.max_connections {
            Some(configured) => {
                let configured = u64::from(configured);
                if let Some(limit) = open_file_limit() {
                    if configured + FD_HEADROOM > limit {
                        tracing::warn!(
                            max_connections = configured,
                            open_file_limit = limit,
                            "MCP_MAX_CONNECTIONS leaves fewer than {FD_HEADROOM} file descriptors \
                             free: connections may fail with 'Too many open files' \
                             (raise `ulimit -n`)"
                        );
                    }
                }
                configured
            }
            None => default_max_connections(open_file_limit()),
        };
        Self {
            header_read_timeout: settings.header_read_timeout,
            request_timeout: settings.request_timeout,
            idle_timeout: settings.idle_timeout,
            max_connections: max_connections as usize,
        }
    }
}

/// The open-file limit less the headroom, at most `DEFAULT_MAX_CONNECTIONS` (at least 16).
fn default_max_connections(open_file_limit: Option<u64>) -> u64 {
    open_file_limit
        .map(|limit| limit.saturating_sub(FD_HEADROOM))
        .unwrap_or(1024 - FD_HEADROOM)
        .clamp(16, DEFAULT_MAX_CONNECTIONS)
}

/// The soft `RLIMIT_NOFILE` of this process.
fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct we hand it.
        let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        (read == 0).then_some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(stream, &refusals);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(Watch::new(limits.header_read_timeout, limits.idle_timeout));
        let io = TokioIo::new(Watched::new(stream, watch.clone()));
        let service = ConnectionService {
            router: router.clone(),
            peer,
            watch: watch.clone(),
            request_timeout: limits.request_timeout,
        };
        let connection = graceful.watch(builder.serve_connection(io, service).into_owned());
        tokio::spawn(async move {
            metrics::gauge!(HTTP_CONNECTIONS_OPEN).increment(1.0);
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "a connection ended with an error");
                    }
                }
                reason = watch.expired() => {
                    metrics::counter!(HTTP_CONNECTIONS_TIMED_OUT, "reason" => reason).increment(1);
                    tracing::debug!(%peer, reason, "closing a connection: timed out");
                }
            }
            metrics::gauge!(HTTP_CONNECTIONS_OPEN).decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Accept errors are the machine's (out of file descriptors, memory): say so and slow down
/// rather than spin; a connection reset before it was accepted is the client's and nothing.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A JSON error response written straight to a socket (no request was, or will be, parsed).
fn raw_response(status: u16, reason: &str, message: &str, code: &str, extra: &str) -> Vec<u8> {
    let body = serde_json::json!({ "message": message, "error": code }).to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-request-id: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len(),
        uuid::Uuid::new_v4()
    )
    .into_bytes()
}

/// Past the connection cap: answer 503 and close, without reading a request.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    metrics::counter!(HTTP_CONNECTIONS_REFUSED).increment(1);
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return; // dropping the stream closes it
    };
    tokio::spawn(async move {
        let _permit = permit;
        let answer = raw_response(
            503,
            "Service Unavailable",
            "Service Unavailable",
            "unavailable",
            "retry-after: 1\r\n",
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            stream.write_all(&answer).await?;
            stream.shutdown().await?;
            // Read what the client sent, so that closing does not reset the connection, which
            // could discard the answer before the client reads it.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// Where a connection is, and until when it may stay there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers (from the accept, or the first byte after idling).
    Head,
    /// Requests are being answered; their bodies have deadlines of their own.
    Busy,
    /// Waiting for the next request on a keep-alive connection.
    Idle,
}

struct WatchState {
    phase: Phase,
    in_flight: usize,
    deadline: Option<Instant>,
    generation: u64,
}

/// One connection's phase and deadline; `expired` completes when a deadline passes.
struct Watch {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<WatchState>,
    /// Mirrors `phase == Idle`, so reads need no lock unless the connection was idle.
    idle: AtomicBool,
    changed: Notify,
    /// Requests handed to the router; response heads written (see `Watched::poll_write`).
    requests: AtomicU64,
    heads: AtomicU64,
}

impl Watch {
    fn new(header_read_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            header_read_timeout,
            idle_timeout,
            state: Mutex::new(WatchState {
                phase: Phase::Head,
                in_flight: 0,
                deadline: Some(Instant::now() + header_read_timeout),
                generation: 0,
            }),
            idle: AtomicBool::new(false),
            changed: Notify::new(),
            requests: AtomicU64::new(0),
            heads: AtomicU64::new(0),
        }
    }

    fn update(&self, change: impl FnOnce(&mut WatchState, &Self)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state, self);
        state.generation += 1;
        self.idle
            .store(state.phase == Phase::Idle, Ordering::Relaxed);
        drop(state);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection starts a request, whose headers now have a deadline.
    fn bytes_read(&self) {
        if self.idle.load(Ordering::Relaxed) {
            self.update(|state, watch| {
                if state.phase == Phase::Idle {
                    state.phase = Phase::Head;
                    state.deadline = Some(Instant::now() + watch.header_read_timeout);
                }
            });
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.update(|state, _| {
            state.in_flight += 1;
            state.phase = Phase::Busy;
            state.deadline = None;
        });
        InFlight(self.clone())
    }

    fn request_finished(&self) {
        self.update(|state, watch| {
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                state.phase = Phase::Idle;
                state.deadline = Some(Instant::now() + watch.idle_timeout);
            }
        });
    }

    /// Completes when the connection has stayed in one phase past its deadline; tells which.
    async fn expired(&self) -> &'static str {
        loop {
            let (phase, deadline, generation) = {
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                (state.phase, state.deadline, state.generation)
            };
            let Some(deadline) = deadline else {
                self.changed.notified().await;
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    if state.generation == generation {
                        return match phase {
                            Phase::Idle => "idle",
                            _ => "header",
                        };
                    }
                }
                () = self.changed.notified() => {}
            }
        }
    }
}

/// A request being answered; dropped with its response body (once written) or if abandoned.
struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The per-connection service: the router, with the peer address, a body deadline and the
/// watchdog told when requests start and end.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    watch: Arc<Watch>,
    request_timeout: Duration,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnectionService {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = self.watch.request_started();
        let deadline = Instant::now() + self.request_timeout;
        let mut request =
            request.map(|body| axum::body::Body::new(DeadlineBody::new(body, deadline)));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let router = self.router.clone();
        Box::pin(async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _in_flight: in_flight,
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that ends its request's `InFlight` when hyper drops it.
    struct TrackedBody {
        #[pin]
        inner: axum::body::Body,
        _in_flight: InFlight,
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A connection's socket, telling its watchdog about reads, and replacing hyper's bare
    /// answers to unparsable requests with JSON ones.
    struct Watched {
        #[pin]
        inner: TcpStream,
        watch: Arc<Watch>,
        // Our answer in place of hyper's, and how much of it is written; once set, everything
        // else hyper writes is dropped (it closes the connection after such an answer).
        replacement: Option<(Vec<u8>, usize)>,
    }
}

impl Watched {
    fn new(inner: TcpStream, watch: Arc<Watch>) -> Self {
        Self {
            inner,
            watch,
            replacement: None,
        }
    }
}

/// hyper's answer to a request it could not parse, as ours: same status, JSON, request id.
fn json_error_for(head: &[u8]) -> Option<Vec<u8>> {
    let status = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?
        .get(..3)?;
    Some(match status {
        b"400" => raw_response(400, "Bad Request", "Bad Request", "bad_request", ""),
        b"414" => raw_response(414, "URI Too Long", "URI Too Long", "uri_too_long", ""),
        b"431" => raw_response(
            431,
            "Request Header Fields Too Large",
            "Request Header Fields Too Large",
            "headers_too_large",
            "",
        ),
        _ => return None,
    })
}

impl Watched {
    /// Writes what is left of the replacement answer.
    fn poll_replacement(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        if let Some((bytes, written)) = this.replacement.as_mut() {
            while *written < bytes.len() {
                let n = std::task::ready!(this.inner.as_mut().poll_write(cx, &bytes[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let read = this.inner.poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.bytes_read();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacement.is_some() {
            std::task::ready!(self.as_mut().poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if !buf.starts_with(b"HTTP/1.") {
            return self.project().inner.poll_write(cx, buf);
        }
        // A response head. One written when every request handed to the router already had
        // its head written is hyper's own answer to a request it could not parse.
        let watch = self.watch.clone();
        if watch.heads.load(Ordering::Relaxed) >= watch.requests.load(Ordering::Relaxed) {
            if let Some(ours) = json_error_for(buf) {
                self.replacement = Some((ours, 0));
                std::task::ready!(self.as_mut().poll_replacement(cx))?;
                return Poll::Ready(Ok(buf.len()));
            }
        }
        let written = std::task::ready!(self.project().inner.poll_write(cx, buf))?;
        if written > 0 {
            watch.heads.fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.as_mut().poll_replacement(cx))?;
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.as_mut().poll_replacement(cx))?;
        self.project().inner.poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each response from one buffer, head first, which is what
    // recognising its own answers relies on.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_headroom_below_the_open_file_limit() {
        assert_eq!(default_max_connections(Some(1024)), 1024 - FD_HEADROOM);
        assert_eq!(
            default_max_connections(Some(1 << 20)),
            DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(default_max_connections(Some(100)), 16);
        assert_eq!(default_max_connections(None), 1024 - FD_HEADROOM);
    }

    #[test]
    fn hypers_bare_answers_become_json() {
        let ours = json_error_for(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n").unwrap();
        let text = String::from_utf8(ours).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(
            text.contains("content-type: application/json\r\n"),
            "{text}"
        );
        assert!(text.contains("x-request-id: "), "{text}");
        assert!(
            text.ends_with(
                r#"{"error":"headers_too_large","message":"Request Header Fields Too Large"}"#
            ),
            "{text}"
        );
        assert!(json_error_for(b"HTTP/1.1 200 OK\r\n").is_none());
    }
}
