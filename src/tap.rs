//! The one body tap: a response body passed through untouched, frame by frame, to an
//! [`Observer`] that sees every data frame and is told exactly once how the body ended.
//!
//! Metering, cache capture and idempotency recording are observers; they differ in what
//! they keep, never in how they find the end. The end is:
//!
//! - [`End::Complete`]: the inner body returned `None`, or said `is_end_stream()` after a
//!   frame (hyper stops polling a body that says so, so that is the end too);
//! - [`End::ErrorEvent`]: the same, for an SSE body whose stream carried an `event: error`
//!   (an upstream failure mid-stream, told to the client in band), when the tap was asked
//!   to notice ([`Tap::error_events`]: a scan of every frame, so only for observers that
//!   tell the two apart);
//! - [`End::Failed`]: the inner body returned an error (the client's connection is aborted);
//! - [`End::Cancelled`]: the body was dropped before any of these (the client went away).
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use llm_tower::tap::{End, Observer, Tap};
//!
//! struct Count(usize);
//! impl Observer for Count {
//!     fn frame(&mut self, data: &Bytes) { self.0 += data.len(); }
//!     fn end(self, end: End) { assert_eq!((self.0, end), (5, End::Complete)); }
//! }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let body = Tap::new(Full::new(Bytes::from("hello")), Count(0));
//! assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
//! # });
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

/// How a tapped body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Whole.
    Complete,
    /// Whole as bytes, but an SSE stream that reported a failure in an `event: error`.
    ErrorEvent,
    /// The body failed with an error.
    Failed,
    /// Dropped before its end: the client went away.
    Cancelled,
}

/// What a [`Tap`] reports to.
pub trait Observer {
    /// One data frame on its way to the client (clone it to keep it: no copy).
    fn frame(&mut self, data: &Bytes) {
        let _ = data;
    }

    /// The end of the body, exactly once.
    fn end(self, end: End);
}

pin_project! {
    /// A body passed through to the client untouched, reported to an [`Observer`].
    pub struct Tap<B, O: Observer> {
        #[pin]
        inner: B,
        observer: Option<O>,
        sse: bool,
        error_event: bool,
    }

    impl<B, O: Observer> PinnedDrop for Tap<B, O> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(observer) = this.project().observer.take() {
                observer.end(End::Cancelled);
            }
        }
    }
}

impl<B, O: Observer> Tap<B, O> {
    /// Taps `inner`.
    pub fn new(inner: B, observer: O) -> Self {
        Self {
            inner,
            observer: Some(observer),
            sse: false,
            error_event: false,
        }
    }

    /// Notices `event: error` in an SSE body (`sse`), to end with [`End::ErrorEvent`].
    #[must_use]
    pub fn error_events(mut self, sse: bool) -> Self {
        self.sse = sse;
        self
    }
}

/// Whether an SSE frame holds an `event: error` line (the gateway writes its own error
/// events as `event: error\ndata: …`, at the start of a frame or after other events).
fn has_error_event(data: &[u8]) -> bool {
    // Built once: `memmem::find` would build a searcher for every frame.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\nevent: error\n"));
    data.starts_with(b"event: error\n") || FINDER.find(data).is_some()
}

impl<B, O> http_body::Body for Tap<B, O>
where
    B: http_body::Body<Data = Bytes>,
    O: Observer,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        let Some(observer) = this.observer.as_mut() else {
            return Poll::Ready(polled);
        };
        let end = match &polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if *this.sse && !*this.error_event && has_error_event(data) {
                        *this.error_event = true;
                    }
                    observer.frame(data);
                }
                this.inner.is_end_stream().then_some(End::Complete)
            }
            Some(Err(_)) => Some(End::Failed),
            None => Some(End::Complete),
        };
        if let Some(mut end) = end {
            if end == End::Complete && *this.error_event {
                end = End::ErrorEvent;
            }
            this.observer.take().expect("present").end(end);
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<(Vec<u8>, Vec<End>)>>);

    impl Observer for Seen {
        fn frame(&mut self, data: &Bytes) {
            self.0.lock().unwrap().0.extend_from_slice(data);
        }
        fn end(self, end: End) {
            self.0.lock().unwrap().1.push(end);
        }
    }

    type FrameResult = Result<Frame<Bytes>, std::io::Error>;
    type Frames = Vec<FrameResult>;
    type FrameStream = StreamBody<futures_util::stream::Iter<std::vec::IntoIter<FrameResult>>>;

    fn body(frames: Frames) -> FrameStream {
        StreamBody::new(futures_util::stream::iter(frames))
    }

    fn data(s: &'static str) -> FrameResult {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    async fn run(frames: Frames, sse: bool) -> (Vec<u8>, Vec<End>, Result<Bytes, String>) {
        let seen = Seen::default();
        let out = Tap::new(body(frames), seen.clone())
            .error_events(sse)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string());
        let (bytes, ends) = seen.0.lock().unwrap().clone();
        (bytes, ends, out)
    }

    #[tokio::test]
    async fn every_end_is_reported_once() {
        // Every byte reaches the client and the observer, the last event without its
        // blank line included.
        let (bytes, ends, out) = run(vec![data("data: a\n\n"), data("data: [DONE]")], true).await;
        assert_eq!(out.unwrap(), "data: a\n\ndata: [DONE]");
        assert_eq!(
            (bytes.as_slice(), ends.as_slice()),
            (&b"data: a\n\ndata: [DONE]"[..], &[End::Complete][..])
        );

        let (_, ends, _) = run(vec![data("data: a\n\nevent: error\ndata: {}\n\n")], true).await;
        assert_eq!(ends, [End::ErrorEvent]);
        let (_, ends, _) = run(vec![data("{\"x\":\"\nevent: error\n\"}")], false).await;
        assert_eq!(ends, [End::Complete], "only SSE bodies have events");

        let broken = vec![data("data: a\n\n"), Err(std::io::Error::other("reset"))];
        let (_, ends, out) = run(broken, true).await;
        assert_eq!(ends, [End::Failed]);
        assert!(out.is_err());

        let seen = Seen::default();
        let mut tap = Box::pin(Tap::new(body(vec![data("a"), data("b")]), seen.clone()));
        let first = tap.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        drop(tap);
        assert_eq!(seen.0.lock().unwrap().1, [End::Cancelled]);
    }

    #[tokio::test]
    async fn a_body_that_says_it_ended_is_ended_without_another_poll() {
        let seen = Seen::default();
        let mut tap = Box::pin(Tap::new(
            http_body_util::Full::new(Bytes::from_static(b"{}")),
            seen.clone(),
        ));
        tap.frame().await.unwrap().unwrap();
        assert_eq!(seen.0.lock().unwrap().1, [End::Complete]);
        drop(tap);
        assert_eq!(
            seen.0.lock().unwrap().1,
            [End::Complete],
            "not again on drop"
        );
    }
}
