//! Serving a service over HTTP/1.1 and h2c, with deadlines for every connection and a
//! graceful shutdown.
//!
//! Every connection is closed when it has nothing to do: a new connection that has not
//! sent its first request within `header_read_timeout` (silent sockets, a partial HTTP/2
//! preface), a connection with no request in flight for `idle_timeout` (HTTP/1 keep-alive
//! and HTTP/2 alike), an HTTP/2 peer that stops answering keep-alive pings. At most
//! `max_connections` are open at once: past that the server stops accepting (the kernel
//! queues the rest) and counts it in `llm_tower_connection_limit_reached_total`.
//! Accept errors (out of file descriptors) back off up to a second and are logged at
//! most every 10 s (`llm_tower_accept_errors_total`).

mod connection;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::Service;

use crate::body::BoxError;
use crate::settings::{setters, SettingsError};
pub use connection::Shutdown;
use connection::{Activity, Deadlines, Tracked};

/// Limits and timeouts towards clients.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Largest request body accepted (413 beyond). Default 4 MiB.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers (slowloris guard), and a new
    /// connection its first request. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Time a client has to send its whole request body once the headers are in (408
    /// beyond). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1 keep-alive
    /// and HTTP/2). Default 60 s.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most connections open at once. Default 10,000.
    pub max_connections: usize,
    /// Most concurrent streams on one HTTP/2 connection (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    /// Default 200.
    pub http2_max_concurrent_streams: u32,
    /// How often an HTTP/2 connection is pinged; one that does not answer within as long
    /// again is closed. Default 20 s.
    #[serde(with = "humantime_serde")]
    pub http2_keep_alive_interval: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests and streams may take to finish. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            http2_max_concurrent_streams: 200,
            http2_keep_alive_interval: Duration::from_secs(20),
            shutdown_grace_period: Duration::from_secs(30),
        }
    }
}

setters!(ServerSettings {
    /// Largest request body accepted (413 beyond).
    max_body_bytes: usize,
    /// Time a client has to send its request headers, and a new connection its first request.
    header_read_timeout: Duration,
    /// Time a client has to send its request body (408 beyond).
    body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    idle_timeout: Duration,
    /// Most connections open at once.
    max_connections: usize,
    /// Most concurrent streams on one HTTP/2 connection.
    http2_max_concurrent_streams: u32,
    /// How often an HTTP/2 connection is pinged (and how long it has to answer).
    http2_keep_alive_interval: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    shutdown_grace_period: Duration,
});

impl ServerSettings {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let positive = [
            ("max_body_bytes", self.max_body_bytes == 0),
            ("max_connections", self.max_connections == 0),
            (
                "http2_max_concurrent_streams",
                self.http2_max_concurrent_streams == 0,
            ),
            ("header_read_timeout", self.header_read_timeout.is_zero()),
            ("body_read_timeout", self.body_read_timeout.is_zero()),
            ("idle_timeout", self.idle_timeout.is_zero()),
            (
                "http2_keep_alive_interval",
                self.http2_keep_alive_interval.is_zero(),
            ),
        ];
        match positive.into_iter().find(|(_, zero)| *zero) {
            Some((field, _)) => Err(SettingsError::new(field, "must be greater than 0")),
            None => Ok(()),
        }
    }
}

/// How long a closing connection with no request in flight may take to close itself.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long cut streams have to send their last event before their connections go.
const CUT_GRACE: Duration = Duration::from_secs(2);

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests (streams included) finish for up to `config.shutdown_grace_period`;
/// streams still open then end with an `error` event (`server_shutting_down`), and every
/// request carries the [`Shutdown`] that tells its layers so.
///
/// HTTP/1.1 with keep-alive and HTTP/2 (prior knowledge, h2c) on the same port, with the
/// connection deadlines of the [module docs](self).
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    config: &ServerSettings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .keep_alive_interval(config.http2_keep_alive_interval)
        .keep_alive_timeout(config.http2_keep_alive_interval);
    let deadlines = Deadlines {
        first_request: config.header_read_timeout,
        idle: config.idle_timeout,
    };
    // Each connection holds a receiver: it is told to close through it, and the server
    // knows they are all gone when the sender's receivers are.
    let (closing, close) = watch::channel(());
    // Told to the connections that outlive even the cut: they are dropped, and with them
    // the requests still waiting for an answer (whose records are then written).
    let (aborting, abort) = watch::channel(());
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let open = metrics::gauge!("llm_tower_connections_open");
    let cut = Shutdown::default();
    let mut accept = Accept::new(listener);
    tokio::pin!(shutdown);

    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics::counter!("llm_tower_connection_limit_reached_total").increment(1);
                accept.log_limited(config.max_connections);
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = accept.next() => accepted,
            () = &mut shutdown => break,
        };
        let activity = Arc::new(Activity::new());
        let connection = builder
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(Tracked::new(
                    service.clone(),
                    Arc::clone(&activity),
                    cut.clone(),
                )),
            )
            .into_owned();
        let mut close = close.clone();
        let mut abort = abort.clone();
        let open = open.clone();
        open.increment(1.0);
        tokio::spawn(async move {
            // The connection (and the requests it still holds, whose records are then
            // submitted) is dropped before the receiver: the server's wait for the
            // receivers is a wait for those records too.
            {
                tokio::pin!(connection);
                let mut closing = false;
                loop {
                    tokio::select! {
                        ended = connection.as_mut() => {
                            if let Err(err) = ended {
                                tracing::debug!(%peer, error = %err, "connection ended with an error");
                            }
                            break;
                        }
                        () = activity.until_idle(deadlines), if !closing => {
                            tracing::debug!(%peer, "closing an idle connection");
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        _ = close.changed(), if !closing => {
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        _ = abort.changed() => break,
                        // A peer that does not take part in closing (an HTTP/2 client that
                        // never acknowledges the GOAWAY's ping) is dropped once idle.
                        () = tokio::time::sleep(CLOSE_GRACE), if closing => {
                            if activity.is_idle() {
                                break;
                            }
                        }
                    }
                }
            }
            open.decrement(1.0);
            drop((slot, close));
        });
    }

    drop(accept);
    drop(close);
    drop(abort);
    tracing::info!(grace = ?config.shutdown_grace_period, "shutting down: waiting for in-flight requests");
    closing.send_replace(());
    if tokio::time::timeout(config.shutdown_grace_period, closing.closed())
        .await
        .is_err()
    {
        // Streams still open end with an error event; their records are written before
        // this returns (the caller flushes the usage next).
        tracing::warn!("grace period over: cutting the remaining streams");
        cut.cut();
        if tokio::time::timeout(CUT_GRACE, closing.closed())
            .await
            .is_err()
        {
            tracing::warn!("dropping the connections still open");
            aborting.send_replace(());
            let _ = tokio::time::timeout(CUT_GRACE, closing.closed()).await;
        }
    }
    Ok(())
}

/// The listener, with back-off and a rate-limited log when accepting fails.
struct Accept {
    listener: TcpListener,
    backoff: Duration,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl Accept {
    const FIRST_BACKOFF: Duration = Duration::from_millis(10);
    const MAX_BACKOFF: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn new(listener: TcpListener) -> Self {
        Self {
            listener,
            backoff: Self::FIRST_BACKOFF,
            last_log: None,
            unlogged: 0,
        }
    }

    async fn next(&mut self) -> (TcpStream, std::net::SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = Self::FIRST_BACKOFF;
                    let _ = stream.set_nodelay(true);
                    return (stream, peer);
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    metrics::counter!("llm_tower_accept_errors_total").increment(1);
                    if self.should_log() {
                        tracing::warn!(error = %err, since_last = self.unlogged, "accept failed");
                        self.unlogged = 0;
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(Self::MAX_BACKOFF);
                }
            }
        }
    }

    fn log_limited(&mut self, max: usize) {
        if self.should_log() {
            tracing::warn!(
                max_connections = max,
                since_last = self.unlogged,
                "connection limit reached: not accepting until a connection closes"
            );
            self.unlogged = 0;
        }
    }

    /// Whether to log now (at most every [`Self::LOG_EVERY`]); counts the lines skipped.
    fn should_log(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|last| now.duration_since(last) < Self::LOG_EVERY)
        {
            self.unlogged += 1;
            return false;
        }
        self.last_log = Some(now);
        true
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: a signal that comes between a "listening" line and
/// the first poll stops the server gracefully too, instead of killing the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (interrupt, terminate) = (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        );
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn a_signal_before_the_first_poll_stops_gracefully() {
        // Before the handlers were installed at the call, this SIGTERM killed the process.
        let shutdown = super::shutdown_signal();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("the signal reached the future");
    }
}
