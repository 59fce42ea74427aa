//! The HTTP server: our own accept loop around hyper, because `poem::Server` has no header-read
//! timeout, no connection cap and no keep-alive limit. Slow or silent clients are closed at a
//! deadline instead of holding a socket (and, before, an in-flight slot) for as long as they like.
//!
//! - At most [`HttpLimits::max_connections`] connections are served; further clients wait in the
//!   listen backlog until one closes.
//! - Request headers must arrive within [`HttpLimits::header_timeout`] (the first byte included);
//!   the same limit ends a keep-alive connection that sends no next request.
//! - A connection with no read or write for [`HttpLimits::idle_timeout`] is shut down gracefully
//!   (the request in progress may finish within [`HttpLimits::grace`]).
//! - The body-read deadline lives in the request middleware ([`crate::api::context`]), where the
//!   body is read.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the server allows a connection (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long requests in progress may take to finish at shutdown or idle close.
    pub grace: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub http2_max_streams: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            http2_max_streams: 100,
        }
    }
}

/// Serves `endpoint` on `listener` until `shutdown` is cancelled, then lets every connection
/// finish its request within the grace period and returns.
pub async fn serve(
    listener: TcpListener,
    endpoint: impl Endpoint + 'static,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let endpoint: Arc<BoxEndpoint<'static, poem::Response>> =
        Arc::new(endpoint.map_to_response().boxed());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams);
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Every connection task holds a clone; when all are dropped, every connection is done
    // (mini-redis's shutdown_complete channel).
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        // The permit first: beyond the cap, clients wait in the backlog rather than in memory.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning; the connection cap should
                // keep us below the file limit.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoint = endpoint.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            serve_connection(tcp, local, peer, endpoint, &builder, limits, shutdown).await;
            drop(permit);
            drop(done);
        });
    }
    drop(done_tx);
    let _ = done_rx.recv().await;
    Ok(())
}

async fn serve_connection(
    tcp: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    endpoint: Arc<BoxEndpoint<'static, poem::Response>>,
    builder: &Builder<TokioExecutor>,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    // The auto builder reads the protocol preface before hyper's header timer starts: without
    // this a connection that never sends a byte would stay open forever.
    let mut first = [0u8; 1];
    match tokio::time::timeout(limits.header_timeout, tcp.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return,
    }
    let started = Instant::now();
    let last_io = Arc::new(AtomicU64::new(0));
    let io = Tracked {
        inner: tcp,
        started,
        last_io: last_io.clone(),
    };
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let endpoint = endpoint.clone();
        async move {
            let req: poem::Request = (
                req,
                LocalAddr(local.into()),
                RemoteAddr(peer.into()),
                Scheme::HTTP,
            )
                .into();
            let response = match endpoint.call(req).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            };
            Ok::<_, Infallible>(hyper::Response::from(response))
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    loop {
        let idle_until =
            started + Duration::from_millis(last_io.load(Ordering::Relaxed)) + limits.idle_timeout;
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, error = %error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(idle_until) => {
                let idle_since = started + Duration::from_millis(last_io.load(Ordering::Relaxed));
                if idle_since.elapsed() >= limits.idle_timeout {
                    tracing::debug!(%peer, "closing an idle connection");
                    break;
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.grace, connection).await;
}

/// A TCP stream that records when it last read or wrote, for the idle timeout.
struct Tracked {
    inner: TcpStream,
    started: Instant,
    last_io: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises this process's open-file soft limit to its hard limit, so the connection cap, not the
/// file limit, is what refuses clients. Returns the soft limit now in force.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Ok(limit.rlim_cur)
}
