//! The upstream's response body on its way to the client: forwarded frame by frame.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::decode::UpstreamIncoming;
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
        inner: UpstreamIncoming,
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
        // Bytes already read from `inner` (a JSON answer too large to check), sent first.
        prefix: Option<Bytes>,
        // `Some` when the stream must end with its API's last event: the last two frames
        // (where that event is) and how many frames came.
        tail: Option<Box<Tail>>,
        // The last two bytes sent (SSE): whether an error event needs a blank line first.
        ends: [u8; 2],
    }
}

/// The end of a stream, kept to check its last event.
#[derive(Default)]
struct Tail {
    /// The last bytes (at least [`Tail::KEPT`] of them, when there were as many).
    window: BytesMut,
    total: usize,
}

impl Tail {
    /// The last events of chat and Messages streams (`[DONE]`, `message_stop`) are short;
    /// so is the head of the Responses API's `response.completed` when its response is.
    const KEPT: usize = 1024;

    fn push(&mut self, data: &[u8]) {
        self.total += data.len();
        if data.len() >= Self::KEPT {
            self.window.clear();
            self.window
                .extend_from_slice(&data[data.len() - Self::KEPT..]);
            return;
        }
        if self.window.len() + data.len() > 2 * Self::KEPT {
            let excess = self.window.len() + data.len() - Self::KEPT;
            self.window.advance(excess.min(self.window.len()));
        }
        self.window.extend_from_slice(data);
    }

    /// Whether the stream ended with the event that ends its API's streams. A last event
    /// longer than the window cannot be read: it counts as whole.
    fn is_whole(&self) -> bool {
        let end = self.window.trim_ascii_end();
        let bounded = memchr::memmem::rfind(end, b"\n\n").is_some()
            || memchr::memmem::rfind(end, b"\n\r\n").is_some();
        sse::ends_whole(&self.window) || (!bounded && self.total > self.window.len())
    }
}

impl UpstreamBody {
    pub(crate) fn new(
        inner: UpstreamIncoming,
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
            prefix: None,
            tail: None,
            ends: *b"\n\n",
        }
    }

    /// Checks that an SSE body ends with its API's last event (OpenAI's `[DONE]`,
    /// Anthropic's `message_stop`, the Responses API's `response.completed` …): a stream
    /// that stops before it (the upstream closed cleanly mid-answer) ends with an `error`
    /// event instead of passing for whole.
    pub(crate) fn expecting_last_event(mut self) -> Self {
        if self.sse {
            self.tail = Some(Box::default());
        }
        self
    }

    /// Sends `prefix` (already read from the upstream) before the rest of the body.
    pub(crate) fn after(mut self, prefix: Bytes) -> Self {
        self.prefix = Some(prefix).filter(|p| !p.is_empty());
        self
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
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if *this.done {
            return Poll::Ready(None);
        }
        let failure = match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                *this.last_frame = Instant::now();
                if let (true, Some(data)) = (*this.sse, frame.data_ref()) {
                    match data.len() {
                        0 => {}
                        1 => *this.ends = [this.ends[1], data[0]],
                        n => *this.ends = [data[n - 2], data[n - 1]],
                    }
                    if let Some(tail) = this.tail.as_mut() {
                        tail.push(data);
                    }
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => match this.tail.take() {
                Some(tail) if !tail.is_whole() => GatewayError::upstream_protocol(
                    this.provider,
                    "the stream ended before its last event",
                ),
                _ => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
            },
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
            // After the blank line that ends what came before (the upstream may have
            // stopped mid-event), so that the error is an event of its own.
            let event = sse::error_event_as(*this.protocol, &failure);
            let blank: &[u8] = match this.ends {
                [b'\n', b'\n'] => b"",
                [_, b'\n'] => b"\n",
                _ => b"\n\n",
            };
            let event = if blank.is_empty() {
                event
            } else {
                Bytes::from([blank, &event].concat())
            };
            Poll::Ready(Some(Ok(Frame::data(event))))
        } else {
            Poll::Ready(Some(Err(Box::new(failure))))
        }
    }

    fn is_end_stream(&self) -> bool {
        // A stream whose last event is to be checked ends on the poll that checks it.
        self.done || (self.prefix.is_none() && self.tail.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.sse || self.prefix.is_some() {
            // An error event may be appended: never promise an exact length.
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}
