//! Metering's side of the response body: an [`Observer`] of the one [`Tap`](crate::tap::Tap)
//! that keeps a bounded copy of the body (read when it ends, off the request path), and
//! [`StripUsage`], the only inline work: removing the usage chunk the gateway asked for on
//! the client's behalf.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::record::{Unfinished, MAX_CAPTURE};
use super::usage::is_usage_chunk;
use super::writer::Meter;
use crate::server::Shutdown;
use crate::tap::{End, Observer};

/// What the body still has to record when it ends.
pub(crate) struct UsageTap {
    pub(crate) unfinished: Box<Unfinished>,
    pub(crate) meter: Meter,
    pub(crate) started: Instant,
    /// The server's, to tell a stream it cut at shutdown from a client that left.
    pub(crate) shutdown: Option<Shutdown>,
}

impl Observer for UsageTap {
    fn frame(&mut self, data: &Bytes) {
        let record = &mut self.unfinished.record;
        if record.ttft_ms.is_none() {
            record.ttft_ms = Some(self.started.elapsed().as_secs_f64() * 1e3);
        }
        capture(&mut self.unfinished.body, data);
    }

    fn end(mut self, end: End) {
        let record = &mut self.unfinished.record;
        record.latency_ms = self.started.elapsed().as_secs_f64() * 1e3;
        record.outcome = match end {
            End::Complete if record.status < 400 => "ok",
            End::Complete | End::ErrorEvent | End::Failed => "error",
            End::Cancelled if self.shutdown.as_ref().is_some_and(Shutdown::is_cut) => {
                record.error_type = Some("server_shutting_down".to_owned());
                "error"
            }
            End::Cancelled => "cancelled",
        };
        if let Some(hook) = &self.unfinished.hook {
            hook.0.ended();
        }
        self.meter.submit(self.unfinished);
    }
}

/// Appends `data` to the copy of the body, within [`MAX_CAPTURE`]: past it, the oldest
/// half is dropped, so the end (where usage is) is always kept.
fn capture(body: &mut BytesMut, data: &[u8]) {
    if body.len() + data.len() > MAX_CAPTURE {
        let keep = (MAX_CAPTURE / 2).min(body.len());
        let drop = body.len() - keep;
        let _ = body.split_to(drop);
        if data.len() > MAX_CAPTURE / 2 {
            body.clear();
            body.extend_from_slice(&data[data.len() - MAX_CAPTURE / 2..]);
            return;
        }
    }
    body.extend_from_slice(data);
}

pin_project! {
    /// An SSE body without the usage chunk the gateway asked for (the client did not):
    /// every other byte passes, in order.
    pub(crate) struct StripUsage<B> {
        #[pin]
        inner: B,
        // The part of a frame after a removed event, and an unfinished event held back
        // until it is complete (copied only when an event spans frames).
        ready: Option<Bytes>,
        carry: BytesMut,
        // The inner body has ended (what was held back may still be going out).
        ended: bool,
    }
}

impl<B> StripUsage<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner,
            ready: None,
            carry: BytesMut::new(),
            ended: false,
        }
    }
}

impl<B> http_body::Body for StripUsage<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if let Some(ready) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(ready))));
        }
        if *this.ended {
            return Poll::Ready(None);
        }
        loop {
            match std::task::ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let data = match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    if let Some(out) = strip_usage(data, this.carry, this.ready) {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    // The whole frame was held back or removed.
                    if this.inner.is_end_stream() {
                        *this.ended = true;
                        return Poll::Ready(take_carry(this.carry));
                    }
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    *this.ended = true;
                    // Whatever was held back (a stream that ended mid-event) goes out as is.
                    return Poll::Ready(take_carry(this.carry));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.carry.is_empty() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

fn take_carry<E>(carry: &mut BytesMut) -> Option<Result<Frame<Bytes>, E>> {
    (!carry.is_empty()).then(|| Ok(Frame::data(carry.split().freeze())))
}

/// The bytes of `data` the client gets: complete events only, without the usage chunk.
/// An unfinished trailing event waits in `carry`; when a removed event sits mid-frame,
/// what follows it waits in `ready`.
fn strip_usage(data: Bytes, carry: &mut BytesMut, ready: &mut Option<Bytes>) -> Option<Bytes> {
    let mut data = if carry.is_empty() {
        data
    } else {
        carry.extend_from_slice(&data);
        carry.split().freeze()
    };
    // Hold back a trailing unfinished event.
    // Searchers built once: `memmem::find` would build one per frame, per event of a stream.
    use memchr::memmem::{Finder, FinderRev};
    use std::sync::LazyLock;
    static BLANK: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
    static BLANK_REV: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(b"\n\n"));
    static EMPTY_CHOICES: LazyLock<Finder<'static>> =
        LazyLock::new(|| Finder::new(b"\"choices\":[]"));
    let complete = BLANK_REV.rfind(&data).map_or(0, |i| i + 2);
    if complete < data.len() {
        carry.extend_from_slice(&data[complete..]);
        data.truncate(complete);
    }
    if data.is_empty() {
        return None;
    }
    let Some(at) = EMPTY_CHOICES.find(&data) else {
        return Some(data);
    };
    let start = BLANK_REV.rfind(&data[..at]).map_or(0, |i| i + 2);
    let end = BLANK.find(&data[at..]).map_or(data.len(), |i| at + i + 2);
    if !is_usage_chunk(&data[start..end]) {
        return Some(data);
    }
    let mut after = data.split_off(end);
    data.truncate(start);
    match (data.is_empty(), after.is_empty()) {
        (true, true) => None,
        (true, false) => Some(std::mem::take(&mut after)),
        (false, true) => Some(data),
        (false, false) => {
            *ready = Some(after.copy_to_bytes(after.remaining()));
            Some(data)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";
    const WITHOUT: &[u8] =
        b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";

    fn run(frames: &[&[u8]]) -> Vec<u8> {
        let (mut carry, mut ready, mut out) = (BytesMut::new(), None, Vec::new());
        for frame in frames {
            if let Some(b) = strip_usage(Bytes::copy_from_slice(frame), &mut carry, &mut ready) {
                out.extend_from_slice(&b);
            }
            if let Some(b) = ready.take() {
                out.extend_from_slice(&b);
            }
        }
        out.extend_from_slice(&carry);
        out
    }

    #[test]
    fn the_capture_is_bounded_and_keeps_the_end() {
        let mut body = BytesMut::new();
        for i in 0..100_000u32 {
            capture(&mut body, format!("data: {i}\n\n").as_bytes());
            assert!(body.len() <= MAX_CAPTURE);
        }
        capture(
            &mut body,
            br#"data: {"choices":[],"usage":{"prompt_tokens":1}}"#,
        );
        assert!(body.ends_with(br#""usage":{"prompt_tokens":1}}"#));
        capture(&mut body, &vec![b'x'; MAX_CAPTURE * 2]);
        assert_eq!(body.len(), MAX_CAPTURE / 2);
    }

    #[test]
    fn the_usage_chunk_is_removed_however_the_stream_is_split() {
        assert_eq!(run(&[STREAM]), WITHOUT);
        for size in 1..STREAM.len() {
            let frames: Vec<&[u8]> = STREAM.chunks(size).collect();
            assert_eq!(run(&frames), WITHOUT, "frames of {size} bytes");
        }
        let no_usage = b"data: {\"choices\":[]}\n\n";
        assert_eq!(run(&[no_usage]), no_usage, "only a chunk with usage goes");
    }
}
