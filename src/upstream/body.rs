//! The upstream's response body on its way to the client: forwarded frame by frame.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
use crate::error::GatewayError;
use crate::protocol::Protocol;
use crate::sse;

pin_project! {
    /// An upstream body passed through untouched (zero-copy: the upstream's `Bytes` frames
    /// are the client's frames), with an idle timeout between frames.
    ///
    /// If the upstream fails mid-body (connection lost, idle timeout), an SSE response ends
    /// with an `error` event (OpenAI's shape, or the one [`speaking`](Self::speaking) names) and then closes cleanly; any other response ends
    /// with the error, which aborts the client's connection rather than pass off a
    /// truncated body as whole. Dropping the body (the client went away) drops the upstream
    /// connection, which cancels the upstream request.
    pub struct UpstreamBody {
        #[pin]
        inner: Incoming,
        // Armed lazily: a frame only records when it arrived; the timer is re-armed when it
        // fires, so the per-frame cost is one clock read.
        #[pin]
        idle: Sleep,
        idle_timeout: Duration,
        last_frame: Instant,
        sse: bool,
        protocol: Protocol,
        done: bool,
        provider: Arc<str>,
    }
}

impl UpstreamBody {
    pub(crate) fn new(
        inner: Incoming,
        idle_timeout: Duration,
        sse: bool,
        provider: Arc<str>,
    ) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle: tokio::time::sleep_until(now + idle_timeout),
            idle_timeout,
            last_frame: now,
            sse,
            protocol: Protocol::OpenAi,
            done: false,
            provider,
        }
    }

    /// Ends a failed SSE body with an error event in `protocol`'s shape (OpenAI's unless
    /// told).
    pub fn speaking(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let failure = match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.last_frame = Instant::now();
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => {
                *this.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(err))) => {
                GatewayError::upstream_protocol(this.provider, format_args!("stream broken: {err}"))
            }
            Poll::Pending => loop {
                if this.idle.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let deadline = *this.last_frame + *this.idle_timeout;
                if deadline <= Instant::now() {
                    break GatewayError::upstream_timeout(
                        this.provider,
                        "data",
                        *this.idle_timeout,
                    );
                }
                this.idle.as_mut().reset(deadline);
            },
        };
        *this.done = true;
        tracing::warn!(provider = %this.provider, error = %failure, "upstream failed mid-response");
        if *this.sse {
            Poll::Ready(Some(Ok(Frame::data(sse::error_event_as(
                *this.protocol,
                &failure,
            )))))
        } else {
            Poll::Ready(Some(Err(Box::new(failure))))
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.sse {
            // An error event may be appended: never promise an exact length.
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}
