//! Serving HTTP with the caps `axum::serve` lacks: a cap on open
//! connections, a header-read timeout, an idle keep-alive timeout (the
//! whole-request timeout is a layer of the router, `request_timeout`).
//!
//! A connection is admitted only with a place under the cap, taken before
//! any work is done for it. Past the cap, a connection is answered `503`
//! with `Retry-After` and closed (a small, bounded number of such answers run
//! at once; beyond those the connection is simply closed), so a flood of
//! half-open connections holds at most `max_connections` descriptors and the
//! SMTP listener, which shares the process's descriptor limit, keeps
//! accepting.
//!
//! hyper's `header_read_timeout` closes a connection whose request head has
//! not arrived in time, counted from the connection's start or from the end
//! of the previous response; a connection with no request in flight and no
//! byte read for `keep_alive` is closed too; and a client that stops reading
//! our answer (so a write makes no progress for `write_timeout`) loses its
//! connection.

use crate::shutdown::Shutdown;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// The caps one listener enforces.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub keep_alive: Duration,
    /// Longest a write may wait for the client to take bytes.
    pub write_timeout: Duration,
}

/// Connections past the cap answered `503` at once; beyond these, closed
/// unanswered.
const REFUSALS_AT_ONCE: usize = 64;

/// How long a refused connection is given to take its `503`.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// At shutdown, how long open connections may take to finish.
const DRAIN: Duration = Duration::from_secs(10);

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 44\r\n\
    Retry-After: 5\r\n\
    Cache-Control: no-store\r\n\
    X-Content-Type-Options: nosniff\r\n\
    Connection: close\r\n\r\n\
    Too many connections; try again in a moment.";

/// Serves `router` on `listener` until `shutdown`, then lets open
/// connections finish (at most `DRAIN`).
///
/// # Errors
/// None today: accept errors (a descriptor limit reached) are logged and
/// waited out. The `Result` keeps the signature of a server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    let places = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset before accept:
                    // wait a little rather than spin.
                    tracing::warn!(error.message = %error, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match Arc::clone(&places).try_acquire_owned() {
            Ok(place) => {
                let connection = Connection {
                    router: router.clone(),
                    http: http.clone(),
                    keep_alive: limits.keep_alive,
                    write_timeout: limits.write_timeout,
                    shutdown: shutdown.clone(),
                    _place: place,
                };
                tokio::spawn(connection.serve(stream, peer));
            }
            Err(_) => refuse(stream, &refusals),
        }
    }
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, places.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the drain; closing them");
    }
    Ok(())
}

/// Answers a connection past the cap with `503` and closes it, reading what
/// the client sent meanwhile so the close does not reset the answer away.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(turn) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _turn = turn;
        let mut stream = stream;
        let answer = async {
            stream.write_all(BUSY).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(REFUSAL_TIME, answer).await;
    });
}

/// One admitted connection; its place under the cap is freed when it ends.
struct Connection {
    router: Router,
    http: http1::Builder,
    keep_alive: Duration,
    write_timeout: Duration,
    shutdown: Shutdown,
    _place: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            stream,
            activity: Arc::clone(&activity),
            write_timeout: self.write_timeout,
            stalled: None,
        });
        let router = self.router;
        let requests = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = requests.begin();
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                drop(in_flight);
                response
            }
        });
        let connection = self.http.serve_connection(io, service);
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            let idle_check = activity.next_idle_check(self.keep_alive);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        // A client that stalls, resets or sends garbage.
                        tracing::debug!(error.message = %error, "HTTP connection ended");
                    }
                    break;
                }
                () = self.shutdown.wait(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = tokio::time::sleep_until(idle_check), if !closing => {
                    if activity.idle_for(self.keep_alive) {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// When a connection last read a byte or finished a request, and how many
/// requests it is serving now.
struct Activity {
    start: Instant,
    /// Milliseconds since `start`.
    last: AtomicU64,
    in_flight: AtomicUsize,
}

/// A request being served; the connection is not idle while it lives.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(elapsed, Ordering::AcqRel);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    fn last_seen(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Acquire))
    }

    /// When the connection would have been idle for `keep_alive`.
    fn next_idle_check(&self, keep_alive: Duration) -> Instant {
        let due = self.last_seen() + keep_alive;
        due.max(Instant::now() + Duration::from_millis(10))
    }

    /// No request in flight and nothing read for `keep_alive`.
    fn idle_for(&self, keep_alive: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.last_seen().elapsed() >= keep_alive
    }
}

/// The connection's stream, noting every read that brings bytes and
/// failing a write that makes no progress for `write_timeout`.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    write_timeout: Duration,
    /// Running while a write waits for the client to take bytes.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Watched {
    /// `polled`, unless the write has waited too long: then an error that
    /// ends the connection.
    fn bound_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.bound_write(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.bound_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.bound_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
