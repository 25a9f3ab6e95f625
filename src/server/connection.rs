//! One client connection's activity: how many requests are in flight on it and since when
//! it has had none, so that the server can close it when it has nothing to do.
//!
//! [`Tracked`] wraps the service of one connection: a request is in flight from the call
//! until its response body is dropped (sent, failed, or abandoned by the client).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::Service;

use crate::error::{ErrorKind, GatewayError};
use crate::protocol::Protocol;
use crate::request::Endpoint;

/// When a connection with no request in flight is closed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    /// After it was accepted, until its first request.
    pub first_request: Duration,
    /// After its last response.
    pub idle: Duration,
}

/// The requests of one connection.
#[derive(Debug)]
pub(super) struct Activity {
    accepted: Instant,
    started: AtomicU64,
    in_flight: AtomicUsize,
    /// When the last request ended, in nanoseconds since `accepted`.
    idle_since: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            accepted: Instant::now(),
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        }
    }

    /// Resolves when the connection has had no request in flight for its deadline.
    pub async fn until_idle(&self, deadlines: Deadlines) {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                // Busy: look again later (a long stream wakes this once per `idle`).
                tokio::time::sleep(deadlines.idle).await;
                continue;
            }
            let deadline = if self.started.load(Ordering::Acquire) == 0 {
                // A request may start meanwhile: look again within `idle`.
                let first = self.accepted + deadlines.first_request;
                if first > Instant::now() + deadlines.idle {
                    tokio::time::sleep(deadlines.idle).await;
                    continue;
                }
                first
            } else {
                let since = self.idle_since.load(Ordering::Acquire);
                self.accepted + Duration::from_nanos(since) + deadlines.idle
            };
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Whether no request is in flight.
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight, until dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let since = activity.accepted.elapsed().as_nanos();
        activity
            .idle_since
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The end of a server's grace period: the streams still open are cut, each with an
/// `error` event, and their usage is recorded as cut (not as a client that left).
///
/// Every request carries one in its extensions; a layer that records how a request ended
/// asks [`is_cut`](Self::is_cut) when its body is dropped unfinished.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<Cut>);

#[derive(Debug, Default)]
struct Cut {
    cut: AtomicBool,
    notify: Arc<Notify>,
}

impl Shutdown {
    /// Whether the server has cut its remaining streams.
    pub fn is_cut(&self) -> bool {
        self.0.cut.load(Ordering::Acquire)
    }

    /// Cuts every open stream.
    pub(super) fn cut(&self) {
        self.0.cut.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }
}

/// A connection's service, counting its requests in flight.
#[derive(Debug, Clone)]
pub(super) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    shutdown: Shutdown,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>, shutdown: Shutdown) -> Self {
        Self {
            inner,
            activity,
            shutdown,
        }
    }
}

impl<S, ReqBody, B> Service<Request<ReqBody>> for Tracked<S>
where
    S: Service<Request<ReqBody>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let protocol =
            Endpoint::from_path(req.uri().path()).map_or(Protocol::OpenAi, Endpoint::protocol);
        req.extensions_mut().insert(self.shutdown.clone());
        TrackedFuture {
            in_flight: Some(self.activity.begin()),
            shutdown: Some(self.shutdown.clone()),
            protocol,
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of [`Tracked`]: the request stays in flight in its response body.
    pub(super) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
        shutdown: Option<Shutdown>,
        protocol: Protocol,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let in_flight = this.in_flight.take().expect("polled after completion");
        let shutdown = this.shutdown.take().expect("polled after completion");
        // Only streams are cut with an event; other bodies are short and end on their own.
        let cut = crate::sse::is_event_stream(response.headers()).then(|| CutStream {
            notified: Box::pin(Arc::clone(&shutdown.0.notify).notified_owned()),
            shutdown,
            protocol: *this.protocol,
        });
        Poll::Ready(Ok(response.map(|inner| TrackedBody {
            inner,
            cut: cut.map(Box::new),
            ended: false,
            _in_flight: in_flight,
        })))
    }
}

/// How a stream learns that the server cuts it.
struct CutStream {
    shutdown: Shutdown,
    notified: Pin<Box<OwnedNotified>>,
    protocol: Protocol,
}

impl std::fmt::Debug for CutStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CutStream")
    }
}

pin_project! {
    /// A response body that keeps its request in flight until dropped; a stream ends with
    /// an `error` event when the server cuts it.
    pub(super) struct TrackedBody<B> {
        #[pin]
        inner: B,
        cut: Option<Box<CutStream>>,
        ended: bool,
        _in_flight: InFlight,
    }
}

/// The `error` event of a stream cut at the end of the shutdown grace period.
fn cut_event(protocol: Protocol) -> Bytes {
    let error = GatewayError::new(
        ErrorKind::Internal,
        http::StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "The gateway is shutting down: this stream outlived its grace period and was cut.",
    )
    .with_code("server_shutting_down");
    // After a blank line: the cut may fall mid-event.
    Bytes::from(
        [
            b"\n\n".as_slice(),
            &crate::sse::error_event_as(protocol, &error),
        ]
        .concat(),
    )
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        let Some(cut) = this.cut.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        if !cut.shutdown.is_cut() {
            match this.inner.poll_frame(cx) {
                Poll::Pending => {}
                ready => return ready,
            }
            if cut.notified.as_mut().poll(cx).is_pending() && !cut.shutdown.is_cut() {
                return Poll::Pending;
            }
        }
        *this.ended = true;
        Poll::Ready(Some(Ok(Frame::data(cut_event(cut.protocol)))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        first_request: Duration::from_secs(3),
        idle: Duration::from_secs(10),
    };

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_is_idle_after_the_first_request_deadline() {
        let activity = Activity::new();
        let started = Instant::now();
        activity.until_idle(DEADLINES).await;
        assert_eq!(started.elapsed(), DEADLINES.first_request);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_busy_and_its_end_restarts_the_clock() {
        let activity = Arc::new(Activity::new());
        let in_flight = activity.begin();
        let started = Instant::now();
        let idle = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move { activity.until_idle(DEADLINES).await }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished(), "busy for 25 s");
        drop(in_flight);
        idle.await.unwrap();
        // Idle 10 s after the end at 25 s; looked at on the busy check's 10 s ticks.
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_secs(35) && elapsed <= Duration::from_secs(40),
            "{elapsed:?}"
        );
    }
}
