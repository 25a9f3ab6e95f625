//! Serving a service over HTTP/1.1 and h2c, with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Service;

use crate::body::BoxError;
use serde::Deserialize;

use crate::settings::{setters, SettingsError};

/// Limits and timeouts towards clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerSettings {
    /// Largest request body accepted (413 beyond). Default 4 MiB.
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers (slowloris guard). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// On SIGINT/SIGTERM, how long in-flight requests and streams may take to finish. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace_period: Duration::from_secs(30),
        }
    }
}

setters!(ServerSettings {
    /// Largest request body accepted (413 beyond).
    max_body_bytes: usize,
    /// Time a client has to send its request headers.
    header_read_timeout: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    shutdown_grace_period: Duration,
});

impl ServerSettings {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_body_bytes == 0 {
            return Err(SettingsError::new(
                "max_body_bytes",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests (streams included) finish for up to `config.shutdown_grace_period`.
///
/// HTTP/1.1 with keep-alive and HTTP/2 (prior knowledge, h2c) on the same port; clients get
/// `config.header_read_timeout` to send their request headers.
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
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!(grace = ?config.shutdown_grace_period, "shutting down: waiting for in-flight requests");
    if tokio::time::timeout(config.shutdown_grace_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over: closing the remaining connections");
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
