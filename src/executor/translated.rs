//! What the translating executors (Anthropic, Gemini) share: the client's response built
//! from a translation, and the body of a translated stream (native SSE in, OpenAI
//! `chat.completion.chunk` events out, re-framed event by event as frames arrive).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Response};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};
use crate::error::GatewayError;
use crate::sse::Decoder;
use crate::translate::stream::{feed, finish, Fed, StreamTranslator};
use crate::upstream::{clean_response_headers, HttpUpstream, UpstreamIncoming};

/// The client's JSON response: the upstream's headers (cleaned) and the translation.
pub(super) fn json_response(mut parts: http::response::Parts, json: Vec<u8>) -> Response<Body> {
    fix_headers(&mut parts.headers, false);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::full(json))
}

/// The client's SSE response: the upstream's body translated event by event. Reads until
/// the first translated output, so an error the upstream reports first becomes an HTTP
/// error.
pub(super) async fn stream_response<T>(
    upstream: &HttpUpstream,
    response: Response<UpstreamIncoming>,
    translator: T,
) -> Result<Response<Body>, GatewayError>
where
    T: StreamTranslator + Send + 'static,
{
    let (mut parts, incoming) = response.into_parts();
    fix_headers(&mut parts.headers, true);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    let name = upstream.name().clone();
    let mut body = Box::pin(TranslatedBody::new(
        upstream.body(incoming, false),
        translator,
        name,
    ));
    body.prime().await?;
    Ok(Response::from_parts(parts, Body::new(body)))
}

fn fix_headers(headers: &mut HeaderMap, stream: bool) {
    clean_response_headers(headers, stream);
    headers.remove(CONTENT_LENGTH);
    headers.remove(http::header::CONTENT_ENCODING);
    for id in ["request-id", "x-goog-request-id"] {
        if let Some(value) = headers.remove(id) {
            headers.insert(HeaderName::from_static("x-upstream-request-id"), value);
        }
    }
}

pin_project! {
    /// Wraps an upstream body (an [`UpstreamBody`](crate::upstream::UpstreamBody), or any
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
        // For a protocol with a keep-alive event: when output last went out, and the timer
        // that sends the keep-alive after `KEEPALIVE` of silence (re-armed only when the
        // upstream is found silent, so a busy stream pays one clock read per frame).
        last_output: Instant,
        keepalive: Option<Pin<Box<Sleep>>>,
    }
}

/// Silence after which a keep-alive event goes to the client (where its protocol has one).
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(10);

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
            last_output: Instant::now(),
            keepalive: None,
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
                    // Translated events are about twice the size of the upstream's.
                    out.reserve(2 * data.len() + 256);
                    match feed(this.decoder, this.translator, &data, &mut out) {
                        Fed::More if out.is_empty() => continue,
                        Fed::More => {}
                        Fed::Failed(err) if out.is_empty() => return Err(err),
                        Fed::Failed(err) => {
                            this.translator.fail(&err, &mut out);
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
                Poll::Pending => {
                    let Some(ping) = this.translator.keepalive() else {
                        return Poll::Pending;
                    };
                    let due = *this.last_output + KEEPALIVE;
                    let timer = this
                        .keepalive
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                    if timer.deadline() != due {
                        timer.as_mut().reset(due);
                    }
                    std::task::ready!(timer.as_mut().poll(cx));
                    *this.last_output = Instant::now();
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(ping)))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    // Translated events are about twice the size of the upstream's.
                    out.reserve(2 * data.len() + 256);
                    match feed(this.decoder, this.translator, &data, &mut out) {
                        Fed::More => {}
                        Fed::Failed(err) => {
                            this.translator.fail(&err, &mut out);
                            *this.done = true;
                        }
                        Fed::Ended => *this.done = true,
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    let err = body_error(err.into(), this.provider);
                    tracing::warn!(provider = %this.provider, error = %err, "upstream failed mid-stream");
                    this.translator.fail(&err, &mut out);
                    *this.done = true;
                }
                Poll::Ready(None) => {
                    finish(this.decoder, this.translator, &mut out);
                    *this.done = true;
                }
            }
            if !out.is_empty() {
                if this.translator.keepalive().is_some() {
                    *this.last_output = Instant::now();
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::messages::MessagesStream;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    struct Channel(mpsc::Receiver<Bytes>);

    impl http_body::Body for Channel {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
        }
    }

    fn chunk(text: &str) -> Bytes {
        Bytes::from(format!(
            "data: {{\"id\":\"c1\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n"
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_upstream_gets_the_client_anthropic_pings() {
        let (tx, rx) = mpsc::channel(4);
        let translator = MessagesStream::new("m", "p".into());
        let mut body = Box::pin(TranslatedBody::new(Channel(rx), translator, "p".into()));
        // Nothing before the stream starts (message_start comes first).
        let waited = tokio::time::timeout(KEEPALIVE * 2, body.frame()).await;
        assert!(waited.is_err(), "no ping before message_start");
        tx.send(chunk("Hel")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(first.starts_with(b"event: message_start"));
        // Data flowing faster than the interval: no ping in between.
        for _ in 0..3 {
            tokio::time::advance(KEEPALIVE / 2).await;
            tx.send(chunk("lo")).await.unwrap();
            let next = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert!(next.starts_with(b"event: content_block_delta"), "{next:?}");
        }
        // Silence: a ping after the interval, and again after another.
        let started = Instant::now();
        for _ in 0..2 {
            let ping = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(&ping[..], b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
        }
        assert_eq!(started.elapsed(), KEEPALIVE * 2);
        drop(tx);
        let mut rest = Vec::new();
        while let Some(frame) = body.frame().await {
            rest.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert!(
            String::from_utf8(rest).unwrap().contains("event: error"),
            "cut short"
        );
    }
}
