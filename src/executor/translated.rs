//! The body of a translated stream: native SSE in, OpenAI `chat.completion.chunk` events
//! out, re-framed event by event as frames arrive.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use super::decode::Decoder;
use super::StreamTranslator;
use crate::body::BoxError;
use crate::error::GatewayError;
use crate::sse;

pin_project! {
    /// Wraps an upstream body (an [`UpstreamBody`](crate::executor::UpstreamBody), or any
    /// body of `Bytes`) and translates each native event as it arrives. Nothing is buffered
    /// but the unfinished tail of the last frame. Each upstream frame yields at most one
    /// frame holding every event it completed; frames that complete none yield nothing.
    ///
    /// A failure of the upstream body, or an error event in the stream, becomes an
    /// OpenAI-style `error` event, after which the stream ends (without `[DONE]`).
    pub struct TranslatedBody<B, T> {
        #[pin]
        inner: B,
        translator: T,
        decoder: Decoder,
        // Output produced before the body was first polled (see `prime`).
        ready: Option<Bytes>,
        done: bool,
        provider: std::sync::Arc<str>,
    }
}

/// What [`TranslatedBody::feed`] left.
pub(super) enum Fed {
    More,
    Failed(GatewayError),
    Ended,
}

impl<B, T> TranslatedBody<B, T>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    T: StreamTranslator,
{
    pub(crate) fn new(inner: B, translator: T, provider: std::sync::Arc<str>) -> Self {
        Self {
            inner,
            translator,
            decoder: Decoder::default(),
            ready: None,
            done: false,
            provider,
        }
    }

    /// Reads the upstream until the translation has produced its first output, so that an
    /// error the upstream reports before any content (Anthropic's `event: error` right
    /// after HTTP 200) can still be answered as an HTTP error rather than mid-stream.
    pub(crate) async fn prime(self: &mut Pin<Box<Self>>) -> Result<(), GatewayError> {
        use http_body_util::BodyExt;
        let mut out = BytesMut::new();
        loop {
            let mut this = self.as_mut().project();
            match this.inner.frame().await {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    match feed(this.decoder, this.translator, &data, &mut out) {
                        Fed::More if out.is_empty() => continue,
                        Fed::More => {}
                        Fed::Failed(err) if out.is_empty() => return Err(err),
                        Fed::Failed(err) => {
                            out.extend_from_slice(&sse::error_event(&err));
                            *this.done = true;
                        }
                        Fed::Ended => *this.done = true,
                    }
                    *this.ready = Some(out.freeze());
                    return Ok(());
                }
                Some(Err(err)) => return Err(body_error(err.into(), this.provider)),
                None => {
                    // Ended before any output: let the translator say what that means.
                    finish(this.decoder, this.translator, &mut out);
                    *this.done = true;
                    if out.is_empty() {
                        return Err(GatewayError::upstream_protocol(
                            this.provider,
                            "the stream ended before any event",
                        ));
                    }
                    *this.ready = Some(out.freeze());
                    return Ok(());
                }
            }
        }
    }
}

fn body_error(err: BoxError, provider: &str) -> GatewayError {
    match err.downcast::<GatewayError>() {
        Ok(err) => *err,
        Err(err) => GatewayError::upstream_protocol(provider, format_args!("stream broken: {err}")),
    }
}

pub(super) fn feed<T: StreamTranslator>(
    decoder: &mut Decoder,
    translator: &mut T,
    data: &[u8],
    out: &mut BytesMut,
) -> Fed {
    let mut failure = None;
    let mut ended = false;
    decoder.feed(
        data,
        &mut |event| match translator.event(event.name, &event.data, out) {
            Ok(true) => true,
            Ok(false) => {
                ended = true;
                false
            }
            Err(err) => {
                failure = Some(err);
                false
            }
        },
    );
    match failure {
        Some(err) => Fed::Failed(err),
        None if ended => Fed::Ended,
        None => Fed::More,
    }
}

pub(super) fn finish<T: StreamTranslator>(
    decoder: &mut Decoder,
    translator: &mut T,
    out: &mut BytesMut,
) {
    let mut failure = None;
    let mut ended = false;
    decoder.finish(
        &mut |event| match translator.event(event.name, &event.data, out) {
            Ok(more) => {
                ended = !more;
                more
            }
            Err(err) => {
                failure = Some(err);
                false
            }
        },
    );
    if let Some(err) = failure {
        out.extend_from_slice(&sse::error_event(&err));
    } else if !ended {
        if let Err(err) = translator.end(out) {
            out.extend_from_slice(&sse::error_event(&err));
        }
    }
}

impl<B, T> http_body::Body for TranslatedBody<B, T>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    T: StreamTranslator,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(ready) = this.ready.take() {
            if !ready.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(ready))));
            }
        }
        if *this.done {
            return Poll::Ready(None);
        }
        let mut out = BytesMut::new();
        loop {
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    match feed(this.decoder, this.translator, &data, &mut out) {
                        Fed::More => {}
                        Fed::Failed(err) => {
                            out.extend_from_slice(&sse::error_event(&err));
                            *this.done = true;
                        }
                        Fed::Ended => *this.done = true,
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    let err = body_error(err.into(), this.provider);
                    tracing::warn!(provider = %this.provider, error = %err, "upstream failed mid-stream");
                    out.extend_from_slice(&sse::error_event(&err));
                    *this.done = true;
                }
                Poll::Ready(None) => {
                    finish(this.decoder, this.translator, &mut out);
                    *this.done = true;
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.ready.as_ref().is_none_or(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
